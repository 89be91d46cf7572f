from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck.store.sqlite import Store
from tests.helpers import shown
from tests.llm_server import LLMServer, Scenario
from tests.pages.conftest import ROOT


def open_playground() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("pages/playground.py").run()
    return at


def finish(at: AppTest) -> None:
    run = at.session_state["pg_run"]
    assert run.wait(20)
    at.run()  # the fragment does not poll in AppTest: one rerun draws the final state


def test_two_variants_stream_against_the_server(workspace: Path, llm_server: LLMServer) -> None:
    at = open_playground()
    assert not at.exception
    at.multiselect(key="pg_variants").set_value(["t/alpha", "t/beta"]).run()
    at.text_area(key="pg_in_input").input("Where is my parcel?").run()
    at.button[0].click().run()
    finish(at)
    assert not at.exception
    texts = [m.value for m in at.markdown]
    assert texts.count("Echo: Customer message: Where is my parcel?") == 2
    metrics = [m.value for m in at.markdown if "TTFT" in m.value]
    assert len(metrics) == 2 and all("cost **$0**" in m for m in metrics)
    assert sum("✅ contains" in c.value for c in at.caption) == 2
    # Both calls were recorded, with the system prompt of each variant.
    rows = Store(workspace / ".promptdeck" / "promptdeck.sqlite").recent_calls()
    assert sorted(r["variant"] for r in rows) == ["t/alpha", "t/beta"]
    assert {r["error"] for r in rows} == {None}


def test_thumbs_are_stored(workspace: Path) -> None:
    at = open_playground()
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("hi").run()
    at.button[0].click().run()
    finish(at)
    [view] = at.session_state["pg_run"].snapshot()
    at.feedback(key=f"pg_thumbs_{view.call_id}").set_value(0).run()
    assert Store(workspace / ".promptdeck" / "promptdeck.sqlite").thumbs(view.call_id) == -1


def test_error_in_one_column_and_broken_prompt_file(workspace: Path, llm_server: LLMServer) -> None:
    llm_server.set_scenario("beta", Scenario(fail_statuses=[401]))
    broken = workspace / "prompts" / "t" / "broken.yaml"
    broken.write_text("model: fake/x\nuser: hi\ncolour: red\n")
    at = open_playground()
    errors = [shown(e.value) for e in at.error]
    assert any("broken.yaml, line 3" in e and "colour" in e for e in errors), errors
    at.multiselect(key="pg_variants").set_value(["t/alpha", "t/beta"]).run()
    at.text_area(key="pg_in_input").input("hi").run()
    at.button[0].click().run()
    finish(at)
    assert not at.exception
    assert any("refused the API key (HTTP 401)" in shown(e.value) for e in at.error)
    assert "Echo: Customer message: hi" in [m.value for m in at.markdown]


def test_fill_inputs_from_a_dataset_row(workspace: Path) -> None:
    at = open_playground()
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    row = at.selectbox(key="pg_row")
    row.select_index(0).run()
    first = at.session_state["pg_row"]
    assert at.text_area(key="pg_in_input").value == first.values["input"]
