from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck.store.db import Store
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
    assert sum(":green[✓ passed] contains" in m.value for m in at.markdown) == 2
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


def test_the_selection_survives_a_page_switch(workspace: Path) -> None:
    at = open_playground()
    at.multiselect(key="pg_variants").set_value(["t/beta"]).run()
    at.toggle(key="pg_scratch").set_value(True).run()
    at.switch_page("pages/results.py").run()
    at.switch_page("pages/playground.py").run()
    assert not at.exception
    assert at.multiselect(key="pg_variants").value == ["t/beta"]
    assert at.toggle(key="pg_scratch").value is True


def test_the_last_run_is_labelled_when_the_selection_changed(
    workspace: Path, llm_server: LLMServer
) -> None:
    at = open_playground()
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("hi").run()
    at.button[0].click().run()
    finish(at)
    assert not any("from your last run" in i.value for i in at.info)
    at.multiselect(key="pg_variants").set_value(["t/beta"]).run()
    assert any("from your last run (t/alpha)" in shown(i.value) for i in at.info)


def test_run_with_an_empty_input_says_so_and_sends_nothing(
    workspace: Path, llm_server: LLMServer
) -> None:
    at = open_playground()
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.button[0].click().run()
    assert any("Fill in ` input ` first" in w.value for w in at.warning)
    assert "pg_run" not in at.session_state and llm_server.requests == []


def test_an_answer_cut_off_by_max_tokens_is_flagged(workspace: Path, llm_server: LLMServer) -> None:
    llm_server.set_scenario("alpha", Scenario(tokens=[f"w{i} " for i in range(80)]))
    at = open_playground()  # alpha's params: max_tokens 50, so the server stops at 50
    at.multiselect(key="pg_variants").set_value(["t/alpha", "t/beta"]).run()
    at.text_area(key="pg_in_input").input("hi").run()
    at.button[0].click().run()
    finish(at)
    flagged = [m.value for m in at.markdown if "Cut off" in m.value]
    assert len(flagged) == 1 and "(50 tokens)" in flagged[0]  # beta's short echo is not


def test_run_settings_override_the_params_and_say_so(
    workspace: Path, llm_server: LLMServer
) -> None:
    llm_server.set_scenario("alpha", Scenario(tokens=[f"w{i} " for i in range(80)]))
    at = open_playground()
    at.multiselect(key="pg_variants").set_value(["t/alpha"]).run()
    at.text_area(key="pg_in_input").input("hi").run()
    at.number_input(key="pg_temperature").set_value(0.3).run()
    at.number_input(key="pg_max_tokens").set_value(5).run()
    at.number_input(key="pg_seed").set_value(7).run()
    at.button[0].click().run()
    finish(at)
    [request] = llm_server.requests
    assert (request.body["temperature"], request.body["max_tokens"], request.body["seed"]) == (
        0.3,
        5,
        7,
    )
    assert any(
        "override: temperature 0.3, max_tokens 5, seed 7" in shown(c.value) for c in at.caption
    )
    # The cut-off flag counts against the limit that was sent, not the file's 50.
    assert any("Cut off" in m.value and "(5 tokens)" in m.value for m in at.markdown)
    # The file is untouched: the next run without settings sends the variant's own params.
    assert "max_tokens: 50" in (workspace / "prompts" / "t" / "alpha.yaml").read_text()


def test_an_earlier_run_can_be_reopened_and_run_again(
    workspace: Path, llm_server: LLMServer
) -> None:
    at = open_playground()
    at.multiselect(key="pg_variants").set_value(["t/alpha", "t/beta"]).run()
    at.text_area(key="pg_in_input").input("first question").run()
    at.button[0].click().run()
    finish(at)
    at.multiselect(key="pg_variants").set_value(["t/gamma"]).run()
    at.text_area(key="pg_in_input").input("second question").run()
    at.button[0].click().run()
    finish(at)
    history = at.selectbox(key="pg_history")
    assert len(history.options) == 1 and "t/alpha, t/beta" in history.options[0]
    assert '"first question"' in history.options[0]
    history.select_index(0).run()
    answers = [m.value for m in at.markdown]
    assert "Echo: Customer message: first question" in answers  # shown under the new run
    assert "Echo: Customer message: second question" in answers
    at.button(key="pg_history_reuse").click().run()
    assert at.multiselect(key="pg_variants").value == ["t/alpha", "t/beta"]
    assert at.text_area(key="pg_in_input").value == "first question"


def test_the_scratch_prompt_is_saved_as_a_variant(workspace: Path, llm_server: LLMServer) -> None:
    at = open_playground()
    at.toggle(key="pg_scratch").set_value(True).run()
    at.text_input(key="pg_s_model").input("fake/alpha").run()
    at.text_area(key="pg_s_system").input("Answer in one line.").run()
    at.number_input(key="pg_temperature").set_value(0.2).run()
    at.text_input(key="pg_s_name").input("t/oneline").run()
    at.button(key="pg_s_save").click().run()
    assert not at.exception
    assert any("Saved as t/oneline" in s.value for s in at.success)
    saved = (workspace / "prompts" / "t" / "oneline.yaml").read_text()
    assert "model: fake/alpha" in saved and "Answer in one line." in saved
    assert "temperature: 0.2" in saved and "max_tokens: 200" in saved
    assert "t/oneline" in at.multiselect(key="pg_variants").options
    # An existing file is never overwritten.
    at.text_input(key="pg_s_name").input("t/alpha").run()
    at.button(key="pg_s_save").click().run()
    assert any("alpha.yaml" in shown(e.value) for e in at.error)
    assert "max_tokens: 50" in (workspace / "prompts" / "t" / "alpha.yaml").read_text()
