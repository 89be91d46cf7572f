import difflib
import re
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptdeck.model.local import default_model_path
from promptdeck.model.secrets import SESSION_KEYS, mask_secret
from promptdeck.model.types import CallResult
from promptdeck.store.db import Store
from promptdeck.workspace.fileio import fingerprint_file
from tests.llm_server import MODELS_LIST, LLMServer, Scenario
from tests.pages.conftest import ROOT, open_page
from tests.test_secrets import PREFIX, encoded_forms, rendered

KEY = "sk-test-page-0123456789abcdef"
SMOLLM2 = default_model_path()


def open_settings() -> AppTest:
    return open_page("pages/settings.py")


def every_text(at: AppTest) -> str:
    """Everything the page shows as text, tables included."""
    parts = [
        str(e.value)
        for kind in ("markdown", "success", "error", "warning", "caption")
        for e in getattr(at, kind)
    ]
    parts += [df.value.to_csv() for df in at.dataframe]
    return "\n".join(parts)


def test_keys_are_masked_and_a_connection_test_shows_its_result(
    workspace: Path, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGE_TEST_KEY", KEY)
    (workspace / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{llm_server.openai_url}',"
        f" api_key_env: PAGE_TEST_KEY, send_key_to: ['127.0.0.1:{llm_server.port}']}}\n"
    )
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=KEY))
    at = open_settings()
    providers = at.dataframe[0].value.set_index("provider")
    assert providers.loc["fake", "key"] == mask_secret(KEY) == "sk-…cdef"
    assert providers.loc["fake", "key variable"] == "PAGE_TEST_KEY"
    assert providers.loc["local", "key"] == "not needed"

    at.selectbox(key="set_test_provider").set_value("fake").run()
    at.button(key="set_test").click().run()
    assert not at.exception
    (shown,) = at.success[:1]
    assert shown.value.startswith("**fake** · Connected to http://127.0.0.1:")
    assert " ms: the key in PAGE_TEST_KEY was accepted" in shown.value
    assert KEY not in every_text(at) and KEY[3:-4] not in every_text(at)


def test_a_failed_connection_test_is_a_message(workspace: Path, llm_server: LLMServer) -> None:
    llm_server.set_scenario(MODELS_LIST, Scenario(fail_statuses=[503]))
    at = open_settings()
    at.selectbox(key="set_test_provider").set_value("fake").run()
    at.button(key="set_test").click().run()
    assert not at.exception
    assert any(
        e.value.startswith("**fake** · Server error: fake: the server answered HTTP 503")
        and e.value.endswith(" ms)")
        for e in at.error
    )


def test_saving_the_default_judge_changes_the_stored_setting(workspace: Path) -> None:
    at = open_settings()
    at.text_input(key="set_judge").input("fake/judge")  # a form: sent on submit
    at.button(key="set_save").click().run()
    assert not at.exception
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    assert store.settings() == {"judge_model": "fake/judge", "concurrency": 3, "use_cache": True}
    assert any(s.value.startswith("Saved:") for s in at.success)

    at.text_input(key="set_judge").input("just-a-name")
    at.button(key="set_save").click().run()
    assert any("Not saved: default judge model 'just-a-name'" in e.value for e in at.error)
    assert store.get_setting("judge_model") == "fake/judge"


def test_clear_cache_asks_first_then_empties_it(workspace: Path) -> None:
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    for n in range(3):
        store.cache_put(f"key{n}", CallResult("fake/alpha", f"answer {n}", None, 5.0, 9.0, 0.0))
    at = open_settings()
    assert any(m.label == "Cached answers" and m.value == "3" for m in at.metric)
    at.button(key="set_clear").click().run()
    assert any("Delete all 3 cached answers?" in w.value for w in at.warning)
    at.button(key="set_clear_no").click().run()
    assert store.cache_size() == 3 and not at.warning

    at.button(key="set_clear").click().run()
    at.button(key="set_clear_yes").click().run()
    assert not at.exception
    assert store.cache_size() == 0
    assert any(s.value == "Cleared 3 cached answers." for s in at.success)
    assert any(m.label == "Cached answers" and m.value == "0" for m in at.metric)


def test_local_model_path_is_validated_then_saved(workspace: Path) -> None:
    not_gguf = workspace / "notes.gguf"
    not_gguf.write_text("just text")
    at = open_settings()
    at.text_input(key="set_model_path").input(str(not_gguf)).run()
    at.button(key="set_model_save").click().run()
    assert any("is not a GGUF model file" in e.value for e in at.error)
    assert "model_path" not in (workspace / "providers.yaml").read_text()

    assert SMOLLM2 is not None
    at.text_input(key="set_model_path").input(str(SMOLLM2))  # typed and saved in one go
    at.button(key="set_model_save").click().run()
    assert not at.exception
    assert any(s.value.startswith(f"The local provider now uses {SMOLLM2}") for s in at.success)
    assert f"model_path: {SMOLLM2}" in (workspace / "providers.yaml").read_text()
    assert "fake:" in (workspace / "providers.yaml").read_text()


def test_a_password_in_a_base_url_is_not_shown(workspace: Path, llm_server: LLMServer) -> None:
    url = llm_server.openai_url.replace("http://", "http://user:hunter2-secret@")
    (workspace / "providers.yaml").write_text(
        f"providers:\n  gw: {{kind: openai, base_url: '{url}'}}\n"
    )
    at = open_settings()
    providers = at.dataframe[0].value.set_index("provider")
    assert providers.loc["gw", "base URL"].startswith("http://***@127.0.0.1:")
    assert "hunter2" not in every_text(at)


def test_the_table_says_where_each_key_goes_and_a_refused_test_sends_nothing(
    workspace: Path, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENAI_API_KEY moved to another host by providers.yaml: the table says "refused",
    and Test connection refuses before sending, naming what to add."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (workspace / "providers.yaml").write_text(
        f"providers:\n  openai: {{base_url: '{llm_server.openai_url}'}}\n"
        f"  mine: {{kind: openai, base_url: '{llm_server.openai_url}',"
        " api_key_env: PAGE_TEST_KEY}\n"
    )
    at = open_settings()
    providers = at.dataframe[0].value.set_index("provider")
    host = f"127.0.0.1:{llm_server.port}"
    refused = f"refused: OPENAI_API_KEY not sent to {host}; add send_key_to: [{host}]"
    assert providers.loc["openai", "key goes to"] == refused
    assert not providers.loc["openai", "ready"]
    assert providers.loc["mine", "key goes to"].startswith("refused: PAGE_TEST_KEY not sent")
    assert providers.loc["anthropic", "key goes to"] == "api.anthropic.com"
    assert providers.loc["local", "key goes to"] == ""

    at.selectbox(key="set_test_provider").set_value("openai").run()
    at.button(key="set_test").click().run()
    assert not at.exception
    (shown,) = at.error[:1]
    assert shown.value.startswith("**openai** · Not sent: provider 'openai': refused before")
    assert f"add `send_key_to: [{host}]` to provider 'openai'" in shown.value
    assert llm_server.requests == []
    assert KEY not in every_text(at)


# --- Providers added, edited and removed here; keys set for the session or in .env -------

SESSION_KEY = PREFIX + "SETTINGS-SESSION-" + secrets.token_hex(16)
DOTENV_KEY = PREFIX + "SETTINGS-DOTENV-" + secrets.token_hex(16)


@pytest.fixture(autouse=True)
def no_session_keys() -> Iterator[None]:
    """A key set "for this session" lives in the process: none outlives its test."""
    yield
    for name in SESSION_KEYS.names():
        SESSION_KEYS.forget(name)


def shown(text: str) -> str:
    """Markdown escaped by ui.plain, as the reader sees it."""
    return re.sub(r"\\(.)", r"\1", text)


def messages(at: AppTest, kind: str) -> list[str]:
    return [shown(str(e.value)) for e in getattr(at, kind)]


def add_provider_form(at: AppTest, **fields: object) -> None:
    """Fill the "Add a provider" form (field: set_add_<field>) and press Add provider."""
    for name, value in fields.items():
        key = f"set_add_{name}"
        if name == "conc":
            at.number_input(key=key).set_value(value)
        elif name == "prices":
            at.text_area(key=key).input(str(value))
        elif name == "kind":
            at.selectbox(key=key).set_value(value)
        else:
            at.text_input(key=key).input(str(value))
    at.button(key="set_add").click().run()
    assert not at.exception, at.exception


def staging_fields(server: LLMServer, **more: object) -> dict[str, object]:
    return {
        "name": "staging",
        "url": server.openai_url,
        "key_env": "STAGING_KEY",
        "send_to": "127.0.0.1",
        **more,
    }


def one_block_added(before: str, after: str) -> list[str]:
    """The lines added, when the diff is one block of additions (else an assertion fails)."""
    diff = list(difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm=""))
    blocks = [line for line in diff[2:] if line.startswith("@@")]
    changed = [line for line in diff[2:] if not line.startswith("@@")]
    assert len(blocks) == 1 and all(line.startswith("+") for line in changed), diff
    return [line[1:] for line in changed]


def test_a_provider_added_here_is_in_the_table_and_one_block_of_the_file(
    workspace: Path, llm_server: LLMServer
) -> None:
    path = workspace / "providers.yaml"
    before = path.read_text()
    at = open_settings()
    add_provider_form(at, **staging_fields(llm_server, conc=2, prices="m 0.15 0.60"))
    assert messages(at, "success")[0] == (
        "Added provider 'staging' to providers.yaml: use it as staging/<model>. "
        "Set its key (STAGING_KEY) below."
    )
    assert one_block_added(before, path.read_text()) == [
        "  staging:",
        "    kind: openai",
        f"    base_url: {llm_server.openai_url}",
        "    api_key_env: STAGING_KEY",
        "    send_key_to: [127.0.0.1]",
        "    max_concurrency: 2",
        "prices:",
        "  staging/m: {input: 0.15, output: 0.6}",
    ]
    row = at.dataframe[0].value.set_index("provider").loc["staging"]
    assert (row["kind"], row["key variable"], row["key"], row["ready"]) == (
        "openai",
        "STAGING_KEY",
        "missing",
        False,
    )
    assert row["key goes to"] == f"127.0.0.1:{llm_server.port}"
    assert "staging" in at.selectbox(key="set_test_provider").options
    assert at.text_input(key="set_add_name").value == ""  # an empty form for the next one
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    assert [v["action"] for v in store.versions("providers.yaml")] == [
        "add provider staging",
        "original",
    ]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"name": "fake"}, "Not added. Name: providers.yaml has a provider 'fake' already"),
        ({"name": "my staging"}, "Not added. Name: letters, digits, '-', '_' and '.'"),
        ({"url": "localhost:8000"}, "Not added. Base URL: it starts with http:// or https://"),
        ({"send_to": ""}, "Not added. Send key to: the hosts the key in STAGING_KEY may be"),
        ({"key_env": KEY}, "Not added. Key variable: give the NAME of an environment variable"),
        ({"prices": "m 0.15"}, "Not added. Prices, line 1: write `model input output`"),
    ],
)
def test_a_wrong_field_is_named_and_nothing_is_written(
    workspace: Path, llm_server: LLMServer, fields: dict[str, object], error: str
) -> None:
    path = workspace / "providers.yaml"
    before = path.read_text()
    at = open_settings()
    add_provider_form(at, **staging_fields(llm_server, **fields))
    assert any(m.startswith(error) for m in messages(at, "error")), messages(at, "error")
    assert path.read_text() == before
    assert at.text_input(key="set_add_url").value  # what was typed stays, to be fixed
    assert KEY not in every_text(at) and KEY[3:-4] not in every_text(at)


def test_editing_a_provider_changes_its_entry_only(workspace: Path, llm_server: LLMServer) -> None:
    path = workspace / "providers.yaml"
    before = path.read_text()
    at = open_settings()
    assert at.selectbox(key="set_edit_pick").value == "fake"
    prefix = f"set_edit_fake_{fingerprint_file(path)}_"
    assert at.text_input(key=prefix + "url").value == llm_server.openai_url
    at.number_input(key=prefix + "conc").set_value(3)
    at.checkbox(key=prefix + "free").uncheck()
    at.button(key="set_edit_save").click().run()
    assert not at.exception
    assert messages(at, "success")[0] == "Saved provider 'fake' in providers.yaml."
    assert path.read_text() == before.replace("free: true}", "free: false, max_concurrency: 3}")
    prefix = f"set_edit_fake_{fingerprint_file(path)}_"  # the form now shows the file
    assert at.number_input(key=prefix + "conc").value == 3


def test_removing_a_provider_asks_first(workspace: Path) -> None:
    path = workspace / "providers.yaml"
    at = open_settings()
    at.button(key="set_remove").click().run()
    assert any(
        w.startswith("Remove ` fake ` and its prices from ` providers.yaml `?")
        for w in messages(at, "warning")
    )
    at.button(key="set_remove_no").click().run()
    assert not any("Remove" in w for w in messages(at, "warning"))
    assert "fake:" in path.read_text()

    at.button(key="set_remove").click().run()
    at.button(key="set_remove_yes").click().run()
    assert not at.exception
    assert messages(at, "success")[0].startswith("Removed provider 'fake' from providers.yaml")
    assert "fake" not in path.read_text()
    assert "fake" not in set(at.dataframe[0].value["provider"])
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    assert store.versions("providers.yaml")[0]["action"] == "remove provider fake"


def test_a_file_changed_since_the_page_was_drawn_is_not_overwritten(
    workspace: Path, llm_server: LLMServer
) -> None:
    path = workspace / "providers.yaml"
    at = open_settings()
    changed = path.read_text() + "  other: {kind: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
    path.write_text(changed)  # an editor saved meanwhile
    add_provider_form(at, **staging_fields(llm_server))
    assert any("changed on disk since this page was drawn" in m for m in messages(at, "error"))
    assert path.read_text() == changed
    at.button(key="set_add").click().run()  # the page now shows the file as it is
    assert "staging:" in path.read_text() and "other:" in path.read_text()


def set_key(at: AppTest, name: str, value: str, where: str = "session") -> None:
    at.selectbox(key="set_key_env").set_value(name)
    at.text_input(key="set_key_value").input(value)
    options = at.radio(key="set_key_where").options
    at.radio(key="set_key_where").set_value(options[0 if where == "session" else 1])
    at.button(key="set_key_save").click().run()
    assert not at.exception, at.exception


def test_a_key_entered_here_is_used_and_never_written_or_shown(
    workspace: Path, llm_server: LLMServer
) -> None:
    """The key typed in Settings, both ways: then providers.yaml, every file of the workspace
    but .env (the store, its -wal, its file history), the store's rows and every rendered
    page are scanned for it, raw and encoded (tests/test_secrets.py's scanner)."""
    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=SESSION_KEY))
    at = open_settings()
    add_provider_form(at, **staging_fields(llm_server))
    set_key(at, "STAGING_KEY", f" {SESSION_KEY} ")
    assert messages(at, "success")[0] == (
        f"STAGING_KEY is set for this session ({mask_secret(SESSION_KEY)}): kept in this "
        "PromptDeck process's memory until it stops, written nowhere, and used by "
        "everyone this PromptDeck serves."
    )
    assert at.text_input(key="set_key_value").value == ""  # not kept in the page's state
    assert (
        at.dataframe[0].value.set_index("provider").loc["staging", "key"]
        == "sk-…" + (SESSION_KEY[-4:])
    )
    at.selectbox(key="set_test_provider").set_value("staging").run()
    at.button(key="set_test").click().run()
    assert "the key in STAGING_KEY was accepted" in messages(at, "success")[0]
    pages = {"Settings (session key)": rendered(at)}
    assert not (workspace / ".env").exists()

    llm_server.set_scenario(MODELS_LIST, Scenario(require_key=DOTENV_KEY))
    set_key(at, "STAGING_KEY", DOTENV_KEY, where=".env")
    saved = f"STAGING_KEY saved in .env ({mask_secret(DOTENV_KEY)})."
    assert saved in messages(at, "success")
    assert SESSION_KEYS.names() == ()  # the session key gave way to the one in .env
    assert (workspace / ".env").read_text() == f"STAGING_KEY='{DOTENV_KEY}'\n"
    at.button(key="set_test").click().run()
    assert "the key in STAGING_KEY was accepted" in messages(at, "success")[0]
    pages["Settings (.env key)"] = rendered(at)
    pages["Home"] = rendered(home_page())

    forms = {
        f"{label} {form}": pattern
        for label, key in (("session key", SESSION_KEY), ("dotenv key", DOTENV_KEY))
        for form, pattern in encoded_forms(key).items()
    }

    def found(data: bytes) -> list[str]:
        return [name for name, pattern in forms.items() if pattern in data]

    files = [p for p in workspace.rglob("*") if p.is_file() and p.name != ".env"]
    assert workspace / "providers.yaml" in files
    assert any(p.name == "promptdeck.sqlite" for p in files)
    assert {str(p): hit for p in files if (hit := found(p.read_bytes()))} == {}
    db = sqlite3.connect(workspace / ".promptdeck" / "promptdeck.sqlite")
    try:
        dump = "\n".join(db.iterdump()).encode()
        history = [row[0] for row in db.execute("SELECT content FROM file_versions")]
    finally:
        db.close()
    assert found(dump) == []
    assert len(history) == 2 and all(found(text.encode()) == [] for text in history)
    assert {page: hit for page, data in pages.items() if (hit := found(data))} == {}
    in_dotenv = found((workspace / ".env").read_bytes())  # the one file that holds a key
    assert "dotenv key raw" in in_dotenv
    assert not any(name.startswith("session key") for name in in_dotenv)


def home_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    return at


def test_a_session_key_can_be_forgotten(workspace: Path) -> None:
    at = open_settings()
    set_key(at, "OPENAI_API_KEY", SESSION_KEY)
    assert any("is set for this session" in m for m in messages(at, "markdown"))
    at.button(key="set_forget_OPENAI_API_KEY").click().run()
    assert SESSION_KEYS.get("OPENAI_API_KEY") is None
    assert messages(at, "success")[0] == "OPENAI_API_KEY is no longer set for this session."


def test_a_key_that_cannot_be_sent_is_refused_without_being_shown(workspace: Path) -> None:
    at = open_settings()
    set_key(at, "OPENAI_API_KEY", "sk-with space-inside-0123456789")
    assert messages(at, "error")[0].startswith("Not saved: Key: it has a space")
    assert "inside" not in every_text(at)
    assert SESSION_KEYS.names() == ()
