from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from promptdeck.model.local import default_model_path
from promptdeck.model.secrets import mask_secret
from promptdeck.model.types import CallResult
from promptdeck.store.sqlite import Store
from tests.llm_server import MODELS_LIST, LLMServer, Scenario
from tests.pages.conftest import open_page

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
