"""Providers added, edited and removed from Settings: providers.yaml written back by ruamel
round trip and splice (one block in `git diff`, the rest byte for byte), checked like
loading, refused when changed meanwhile, recorded in the file history; keys for this
session (memory) or in `.env`, never anywhere else."""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from promptdeck.errors import ConfigError, FileConflictError
from promptdeck.model.local import default_model_path
from promptdeck.model.pricing import Price
from promptdeck.model.secrets import Secrets, SessionKeys
from promptdeck.store.db import Store
from promptdeck.workspace.dotenv_file import dotenv_git_warning, save_key_in_dotenv
from promptdeck.workspace.fileio import MISSING, fingerprint_file
from promptdeck.workspace.providers_edit import (
    ProviderEntry,
    add_provider,
    format_prices,
    parse_prices,
    provider_entry,
    read_providers,
    remove_provider,
    update_provider,
)
from promptdeck.workspace.providers_file import open_registry, set_local_model_path

KEY = "sk-EDITTEST-0123456789abcdefXYZ"
STAGING = ProviderEntry(
    "staging",
    "openai",
    "http://127.0.0.1:8000/v1",
    "STAGING_KEY",
    ("127.0.0.1:8000",),
    6,
    False,
    "",
    {"m": Price(0.15, 0.6)},
)

FLOW = """# Providers of the support team: ask Ana before changing them
providers:
  fake: {kind: openai, base_url: 'http://127.0.0.1:9/v1', free: true}  # the test server
"""
BLOCK_WITH_PRICES = """# Team providers
providers:
  fake:
    kind: openai   # OpenAI wire format
    base_url: "http://127.0.0.1:9/v1"
    headers: {X-Team: support}
    send_key_to:
    - 127.0.0.1

  # keep prices in USD per million tokens

prices:
  fake/m: {input: 1, output: 2}  # list price
  # end of file
"""
FOUR_SPACES = """providers:
    fake:
        kind: openai
        base_url: http://127.0.0.1:9/v1
        send_key_to:
            - 127.0.0.1
"""
FILES = {
    "flow entries and a comment": FLOW,
    "block entries, comments, prices": BLOCK_WITH_PRICES,
    "four-space indentation": FOUR_SPACES,
    "CRLF line endings": FLOW.replace("\n", "\r\n"),
    "a byte-order mark": "\ufeff" + FLOW,
    "no providers section": "prices:\n  openai/gpt-x: {input: 1, output: 2}\n",
    "comments only": "# nothing here yet\n",
}


def hunks(before: str, after: str) -> list[list[str]]:
    """The changed lines of each hunk of a diff without context (as `git diff -U0`)."""
    out: list[list[str]] = []
    diff = difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
    for line in list(diff)[2:]:
        if line.startswith("@@"):
            out.append([])
        else:
            out[-1].append(line)
    return out


def store_at(tmp_path: Path) -> Store:
    return Store(str(tmp_path / ".promptdeck" / "promptdeck.sqlite"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("name", list(FILES))
def test_adding_a_provider_is_one_block_and_the_rest_stays(root: Path, name: str) -> None:
    path = root / "providers.yaml"
    before = FILES[name]
    path.write_bytes(before.encode())
    entry = (
        STAGING if "prices" not in before else ProviderEntry(**{**STAGING.__dict__, "prices": {}})
    )
    message = add_provider(store_at(root), root, path, entry, fingerprint_file(path))
    assert message == f"Added provider 'staging' to {path}: use it as staging/<model>."
    after = path.read_bytes().decode()
    (block,) = hunks(before, after)  # one block, only additions
    assert all(line.startswith("+") for line in block), block
    assert after.startswith("\ufeff") == before.startswith("\ufeff")
    assert after.count("\r\n") == (after.count("\n") if "\r\n" in before else 0)
    config = open_registry(path, Secrets()).config("staging")
    assert (config.kind, config.base_url, config.api_key_env) == (
        "openai",
        "http://127.0.0.1:8000/v1",
        "STAGING_KEY",
    )
    assert (config.key_hosts, config.max_concurrency, config.requires_key, config.free) == (
        ("127.0.0.1:8000",),
        6,
        True,
        False,
    )


def test_the_added_block_reads_as_the_form_said(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text(FLOW)
    add_provider(store_at(root), root, path, STAGING, fingerprint_file(path))
    assert path.read_text() == FLOW + (
        "  staging:\n"
        "    kind: openai\n"
        "    base_url: http://127.0.0.1:8000/v1\n"
        "    api_key_env: STAGING_KEY\n"
        "    send_key_to: [127.0.0.1:8000]\n"
        "    max_concurrency: 6\n"
        "prices:\n"
        "  staging/m: {input: 0.15, output: 0.6}\n"
    )
    registry = open_registry(path, Secrets())
    assert registry.prices.price("staging/m") == Price(0.15, 0.6)
    assert read_providers(path).entries["staging"] == STAGING


def test_a_new_file_is_created_with_the_provider(root: Path) -> None:
    path = root / "providers.yaml"
    add_provider(store_at(root), root, path, STAGING, MISSING)
    assert path.read_text().startswith("providers:\n  staging:\n    kind: openai\n")
    with pytest.raises(FileConflictError):  # "no file yet" no longer holds
        add_provider(store_at(root), root, path, STAGING, MISSING)


def test_editing_keeps_the_entrys_comments_and_other_keys(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text(BLOCK_WITH_PRICES)
    doc = read_providers(path)
    fake = doc.entries["fake"]
    assert (fake.send_key_to, fake.prices) == (("127.0.0.1",), {"m": Price(1, 2)})
    edited = ProviderEntry(
        "fake", "openai", fake.base_url, "FAKE_KEY", ("127.0.0.1", "localhost"), 2, True, "",
        {"m": Price(1, 2), "n": Price(3, 4)},
    )  # fmt: skip
    update_provider(store_at(root), root, path, edited, doc.fingerprint)
    after = path.read_text()
    assert "kind: openai   # OpenAI wire format" in after
    assert 'base_url: "http://127.0.0.1:9/v1"' in after  # unchanged: its quotes kept
    assert "headers: {X-Team: support}" in after  # a key the form does not edit
    assert "  fake/m: {input: 1, output: 2}  # list price\n  fake/n:" in after
    assert "# keep prices in USD per million tokens" in after and after.endswith("# end of file\n")
    assert read_providers(path).entries["fake"] == edited
    removed_lines = [
        line for hunk in hunks(BLOCK_WITH_PRICES, after) for line in hunk if line[0] == "-"
    ]
    assert removed_lines == []  # only additions: the list grew, new keys, a new price


def test_removing_takes_the_entry_and_its_prices_only(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text(
        BLOCK_WITH_PRICES.replace("prices:\n", "prices:\n  openai/x: {input: 1, output: 1}\n")
    )
    before = path.read_text()
    remove_provider(store_at(root), root, path, "fake", fingerprint_file(path))
    after = path.read_text()
    assert "fake" not in after
    assert "# Team providers" in after and "# keep prices in USD" in after
    assert "openai/x: {input: 1, output: 1}" in after
    assert all(line[0] == "-" for hunk in hunks(before, after) for line in hunk)
    assert read_providers(path).entries == {}
    with pytest.raises(ConfigError, match="no provider 'fake' to remove"):
        remove_provider(store_at(root), root, path, "fake", fingerprint_file(path))


def test_every_save_is_in_the_file_history(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text(FLOW)
    store = store_at(root)
    add_provider(store, root, path, STAGING, fingerprint_file(path))
    edited = ProviderEntry(**{**STAGING.__dict__, "max_concurrency": 2})
    update_provider(store, root, path, edited, fingerprint_file(path))
    remove_provider(store, root, path, "staging", fingerprint_file(path))
    versions = store.versions("providers.yaml")
    assert [v["action"] for v in versions] == [
        "remove provider staging",
        "edit provider staging",
        "add provider staging",
        "original",
    ]
    assert versions[-1]["content"] == FLOW and versions[0]["content"] == path.read_text()
    assert "max_concurrency: 2" in versions[1]["content"]


def test_a_file_changed_meanwhile_is_refused_and_nothing_is_recorded(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text(FLOW)
    loaded = read_providers(path).fingerprint
    path.write_text(FLOW + "  other: {kind: openai, base_url: 'http://h/v1'}\n")  # an editor saved
    changed = path.read_text()
    store = store_at(root)
    for save in (
        lambda: add_provider(store, root, path, STAGING, loaded),
        lambda: update_provider(
            store, root, path, ProviderEntry("fake", base_url="http://x"), loaded
        ),
        lambda: remove_provider(store, root, path, "fake", loaded),
    ):
        with pytest.raises(FileConflictError):
            save()
    assert path.read_text() == changed
    assert store.versions("providers.yaml") == []


def test_a_name_taken_or_built_in_is_refused(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text(FLOW)
    taken = ProviderEntry("fake", "openai", "http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match=r"^Name: providers\.yaml has a provider 'fake' already"):
        add_provider(store_at(root), root, path, taken, fingerprint_file(path))
    builtin = ProviderEntry("openai", "openai", "http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match=r"^Name: 'openai' is a built-in provider"):
        add_provider(store_at(root), root, path, builtin, fingerprint_file(path))
    assert path.read_text() == FLOW


def test_a_broken_file_is_not_changed(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text("providers:\n  fake: {kind: openai\n")
    with pytest.raises(ConfigError, match="not valid YAML, so it was not changed"):
        add_provider(store_at(root), root, path, STAGING, fingerprint_file(path))
    path.write_text("providers:\n  bad: {kind: openai, base_url: 'x'}\n")  # loads as invalid
    with pytest.raises(ConfigError, match="provider 'bad': 'base_url' 'x' is not an http"):
        add_provider(store_at(root), root, path, STAGING, fingerprint_file(path))
    assert "bad" in path.read_text() and "staging" not in path.read_text()


FORM = {"name": "staging", "kind": "openai", "base_url": "http://127.0.0.1:8000/v1"}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "my provider"}, "name", "Name: letters, digits, '-', '_' and '.'"),
        ({"name": "a/b"}, "name", "Name: letters, digits"),
        ({"kind": "bedrock"}, "kind", "Kind: one of openai, azure, anthropic, local"),
        ({"base_url": ""}, "base_url", "Base URL: required for kind openai"),
        ({"base_url": "127.0.0.1:8000"}, "base_url", "Base URL: it starts with http"),
        (
            {"base_url": "http://u:pw123@h:99999/v1"},
            "base_url",
            "Base URL: 'http://***@h:99999/v1'",
        ),
        (
            {"key_variable": "MY KEY"},
            "api_key_env",
            "Key variable: give the NAME of an environment",
        ),
        ({"key_variable": "K"}, "send_key_to", "Send key to: the hosts the key in K may be sent"),
        (
            {"key_variable": "K", "send_key_to": "http://h/"},
            "send_key_to",
            "Send key to: 'http://h/' is not a host",
        ),
        ({"max_concurrency": 0}, "max_concurrency", "Max concurrency: from 1 to 256"),
        ({"max_concurrency": 2.5}, "max_concurrency", "Max concurrency: a whole number"),
        ({"api_version": "2024-10-21"}, "api_version", "API version: only for kind azure"),
        ({"kind": "azure"}, "api_version", "API version: required for kind azure"),
        ({"prices": "m 1"}, "prices", "Prices, line 1: write `model input output`"),
        ({"prices": "m 1 2\nm 3 4"}, "prices", "Prices, line 2: m has a price already"),
        ({"prices": "\n m one two"}, "prices", "Prices, line 2: the prices of m are not numbers"),
        ({"prices": "m -1 2"}, "prices", "Prices, line 1: prices are 0 or more"),
    ],
)
def test_a_wrong_field_is_named(fields: dict[str, object], field: str, message: str) -> None:
    values = {**FORM, **fields}
    with pytest.raises(ConfigError) as caught:
        provider_entry(str(values.pop("name")), str(values.pop("kind")), **values)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message), str(caught.value)
    assert caught.value.field == field
    assert "pw123" not in str(caught.value)


def test_a_key_pasted_as_the_variable_is_refused_without_being_repeated() -> None:
    with pytest.raises(ConfigError) as caught:
        provider_entry("staging", "openai", base_url=FORM["base_url"], key_variable=KEY)
    assert KEY not in str(caught.value) and KEY[3:-4] not in str(caught.value)


def test_the_form_reads_hosts_and_prices() -> None:
    entry = provider_entry(
        " staging ", "openai", base_url=" http://127.0.0.1:8000/v1 ", key_variable="STAGING_KEY",
        send_key_to="127.0.0.1:8000, localhost\n*.example.com", max_concurrency=3.0,
        prices="# model input output\nm 0.15 0.60\nbig/model: $2 $8  # per Mtok\n",
    )  # fmt: skip
    assert entry.name == "staging" and entry.max_concurrency == 3
    assert entry.send_key_to == ("127.0.0.1:8000", "localhost", "*.example.com")
    assert entry.prices == {"m": Price(0.15, 0.6), "big/model": Price(2, 8)}
    assert parse_prices(format_prices(entry.prices)) == entry.prices
    assert format_prices(entry.prices) == "m 0.15 0.6\nbig/model 2 8"


# --- keys ------------------------------------------------------------------------------


def test_a_session_key_comes_first_and_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("STAGING_KEY=from-dotenv\n")
    monkeypatch.setenv("STAGING_KEY", "from-environment")
    keys = SessionKeys()
    secrets = Secrets(tmp_path / ".env", session=keys)
    assert secrets.lookup("STAGING_KEY") == ("from-environment", "environment")
    version = keys.version
    keys.set("STAGING_KEY", f"  {KEY}\n")
    assert keys.version == version + 1
    assert secrets.lookup("STAGING_KEY") == (KEY, "this session")
    assert KEY not in repr(keys) + repr(secrets) and "STAGING_KEY" in repr(keys)
    assert keys.forget("STAGING_KEY") and not keys.forget("STAGING_KEY")
    monkeypatch.delenv("STAGING_KEY")
    assert secrets.lookup("STAGING_KEY") == ("from-dotenv", ".env")
    assert secrets.lookup("NOTHING") == (None, "missing")


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "Key: type or paste the key first"), ("sk-abc def", "Key: it has a space"),
     ("sk-é1234567", "Key: it has a space"), ("sk-1\n2", "Key: it has a space")],
)  # fmt: skip
def test_a_key_that_cannot_be_sent_is_refused_unquoted(
    tmp_path: Path, value: str, message: str
) -> None:
    for save in (
        lambda: SessionKeys().set("K", value),
        lambda: save_key_in_dotenv(tmp_path, "K", value),
    ):
        with pytest.raises(ConfigError) as caught:
            save()
        assert str(caught.value).startswith(message)
        assert not value.strip() or value.strip() not in str(caught.value)
    assert not (tmp_path / ".env").exists()


def test_a_key_in_dotenv_replaces_its_line_and_keeps_the_others(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(
        b"# my keys\r\nOTHER=1\r\nexport STAGING_KEY=old\r\nLAST='x'\r\nSTAGING_KEY=dup"
    )
    tricky = KEY + "'\\q"
    message, _ = save_key_in_dotenv(tmp_path, "STAGING_KEY", tricky)
    assert env.read_bytes() == (
        b"# my keys\r\nOTHER=1\r\nexport STAGING_KEY='"
        + (KEY + "\\'\\\\q").encode()
        + b"'\r\nLAST='x'\r\n"
    )
    assert Secrets(env).get("STAGING_KEY") == tricky
    assert message == f"STAGING_KEY saved in {env} (sk-…Z'\\q)."
    assert KEY[3:-4] not in message


def test_a_new_dotenv_is_private(tmp_path: Path) -> None:
    save_key_in_dotenv(tmp_path, "STAGING_KEY", KEY)
    env = tmp_path / ".env"
    assert env.read_text() == f"STAGING_KEY='{KEY}'\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    save_key_in_dotenv(tmp_path, "OTHER_KEY", KEY + "2")  # appended; mode kept
    assert env.read_text() == f"STAGING_KEY='{KEY}'\nOTHER_KEY='{KEY}2'\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_the_environment_shadowing_dotenv_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGING_KEY", "set-outside")
    message, _ = save_key_in_dotenv(tmp_path, "STAGING_KEY", KEY)
    assert "also set in the environment PromptDeck was started with" in message


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_seeing_dotenv_is_warned_about(tmp_path: Path) -> None:
    assert dotenv_git_warning(tmp_path) is None  # not a repository

    def git(*args: str) -> None:
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
        subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, env=env
        )

    git("init", "-q")
    assert dotenv_git_warning(tmp_path) == (
        ".env is not in this repository's .gitignore: add a line `.env` to it, so that "
        "`git add .` never picks up the key."
    )
    (tmp_path / ".gitignore").write_text(".env\n")
    assert dotenv_git_warning(tmp_path) is None
    _, warning = save_key_in_dotenv(tmp_path, "STAGING_KEY", KEY)
    assert warning is None
    git("add", "-f", ".env")  # tracked anyway
    warning = dotenv_git_warning(tmp_path)
    assert warning is not None and warning.startswith(".env is tracked by git")


def test_keys_are_never_in_the_history_or_providers_file(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    store = store_at(tmp_path)
    add_provider(store, tmp_path, path, STAGING, MISSING)
    save_key_in_dotenv(tmp_path, "STAGING_KEY", KEY)
    SessionKeys().set("STAGING_KEY", KEY)
    update_provider(store, tmp_path, path, STAGING, fingerprint_file(path))
    assert KEY not in path.read_text()
    assert all(KEY not in v["content"] for v in store.versions("providers.yaml"))
    assert store.versions(".env") == []
    store.close()
    assert KEY.encode() not in (tmp_path / ".promptdeck" / "promptdeck.sqlite").read_bytes()


def test_prices_below_an_existing_prices_section_are_a_second_block(root: Path) -> None:
    """The one case that is not one block: the file's `prices:` section is elsewhere."""
    path = root / "providers.yaml"
    path.write_text(BLOCK_WITH_PRICES)
    add_provider(store_at(root), root, path, STAGING, fingerprint_file(path))
    blocks = hunks(BLOCK_WITH_PRICES, path.read_text())
    assert [len(b) for b in blocks] == [6, 1]
    assert blocks[1] == ["+  staging/m: {input: 0.15, output: 0.6}\n"]


@pytest.mark.skipif(default_model_path() is None, reason="needs the bundled model")
def test_the_local_model_file_is_saved_with_history(root: Path) -> None:
    path = root / "providers.yaml"
    path.write_text(FLOW)
    store = store_at(root)
    set_local_model_path(path, str(default_model_path()), store=store, root=root)
    set_local_model_path(path, "", store=store, root=root)
    assert path.read_text() == FLOW
    assert [v["action"] for v in store.versions("providers.yaml")] == [
        "local model: the bundled one",
        "local model file",
        "original",
    ]
