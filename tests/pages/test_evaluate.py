from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck import ui
from promptdeck.model.types import CallResult, Usage
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from promptdeck.store.settings import Settings, save_settings
from tests.helpers import shown
from tests.llm_server import LLMServer, Scenario
from tests.pages.conftest import ROOT


def open_evaluate() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("pages/evaluate.py").run()
    return at


def plan_sample(at: AppTest) -> None:
    at.radio(key="ev_source").set_value("A dataset").run()
    datasets = at.selectbox(key="ev_dataset")  # by name: the workspace may hold others
    datasets.select_index(datasets.options.index("support_sample.csv")).run()
    at.multiselect(key="ev_variants").set_value(["t/alpha", "t/beta"]).run()
    at.number_input(key="ev_n:support_sample.csv").set_value(10).run()
    at.text_input(key="ev_judge_model").input("fake/judge").run()


def test_plan_then_run_a_ten_row_sample(workspace: Path, llm_server: LLMServer) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=['{"reasoning": "Clear.", "score": 5}']))
    at = open_evaluate()
    assert not at.exception
    plan_sample(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "10" and metrics["Model calls"] == "40"  # 20 answers + 20 verdicts
    assert metrics["Cost"] == "≤ $0"  # the test provider is declared free
    assert metrics["Time"] == "no history yet"
    at.button[0].click().run()
    run_id = at.session_state["ev_run"]
    job = ui.jobs().get(run_id)  # the page's job registry: one per server process
    assert job is not None and job.wait(30)
    at.run()
    assert not at.exception
    grid = at.dataframe[-1].value
    assert len(grid) == 10 and {"t/alpha", "t/beta"} <= set(grid.columns)
    assert all(str(v).startswith("Echo: ") for v in grid["t/alpha"])
    assert set(grid["t/alpha · judge"]) == {"5"} and set(grid["t/alpha · checks"]) == {"1/1"}
    at.selectbox(key="ev_detail_row").select_index(0).run()
    assert any(shown(m.value).startswith("**Judge: 5** — Clear.") for m in at.markdown)
    assert any("Done: 20 cells, 0 errors." in s.value for s in at.success)
    [link] = [e for e in at.get("page_link") if e.proto.label == "Open this run in Results"]
    assert link.proto.page.endswith("results") and f"run={run_id}" in link.proto.query_string
    assert len(Store(workspace / ".promptdeck" / "promptdeck.sqlite").results(run_id)) == 20
    assert llm_server.request_count("alpha") == 10
    # The next plan of this kind is timed from this run, as a measured range.
    help_text = {m.label: m.proto.help for m in at.metric}["Time"]
    assert help_text.startswith("Measured: seconds per cell of the last 1 finished run")


def test_missing_template_variable_is_named_before_any_call(
    workspace: Path, llm_server: LLMServer
) -> None:
    (workspace / "prompts" / "t" / "needs.yaml").write_text(
        "model: fake/needs\nuser: '{{ input }} {{ customer_name }}'\n"
    )
    at = open_evaluate()
    plan_sample(at)
    at.multiselect(key="ev_variants").set_value(["t/alpha", "t/needs"]).run()
    errors = " ".join(shown(e.value) for e in at.error)
    assert "t/needs uses {{ customer_name }}" in errors
    assert "support_sample.csv" in errors
    assert len(llm_server.requests) == 0


def test_the_settings_page_defaults_prefill_the_plan(workspace: Path) -> None:
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    save_settings(store, Settings("fake/judge", 7, use_cache=True))
    at = open_evaluate()
    at.radio(key="ev_source").set_value("A dataset").run()
    at.multiselect(key="ev_variants").set_value(["t/alpha", "t/beta"]).run()
    assert not at.exception
    assert at.text_input(key="ev_judge_model").value == "fake/judge"  # the suite names no judge
    assert at.slider(key="ev_conc").value == 7


def test_the_variant_tagged_baseline_is_the_default_baseline(workspace: Path) -> None:
    beta = workspace / "prompts" / "t" / "beta.yaml"
    beta.write_text(beta.read_text() + "tags: [baseline]\n")
    at = open_evaluate()
    at.radio(key="ev_source").set_value("A dataset").run()
    at.multiselect(key="ev_variants").set_value(["t/alpha", "t/beta"]).run()
    assert at.selectbox(key="ev_baseline").value == "t/beta"


def test_a_bad_gate_refuses_the_suite_before_any_call(
    workspace: Path, llm_server: LLMServer
) -> None:
    (workspace / "datasets" / "bad.suite.yaml").write_text(
        "dataset: support_sample.csv\nvariants: [t/alpha, t/beta]\nbaseline: t/alpha\n"
        "gates:\n  - {metric: judge_scor, max_drop: 0.2}\n"
    )
    at = open_evaluate()
    at.radio(key="ev_source").set_value("A suite file").run()
    at.selectbox(key="ev_suite").set_value(workspace / "datasets" / "bad.suite.yaml").run()
    assert not at.exception
    [error] = [shown(e.value) for e in at.error]
    assert error.startswith("datasets/bad.suite.yaml, line 5: 'gates[0].metric': unknown metric")
    assert not [b for b in at.button if b.label == "Run"]  # nothing to start
    assert llm_server.requests == []


def test_run_until_decided_from_the_page(workspace: Path, llm_server: LLMServer) -> None:
    llm_server.set_scenario("judge", Scenario(tokens=['{"reasoning": "Fine.", "score": 4}']))
    (workspace / "datasets" / "grow.suite.yaml").write_text(
        "dataset: support_tickets.csv\nvariants: [t/alpha, t/beta]\nbaseline: t/alpha\n"
        "judge: {model: fake/judge, rubric: Be fair.}\n"
        "gates:\n  - {metric: judge_score, max_drop: 1.0}\n"
    )
    at = open_evaluate()
    at.radio(key="ev_source").set_value("A suite file").run()
    at.selectbox(key="ev_suite").set_value(workspace / "datasets" / "grow.suite.yaml").run()
    assert any("to decide it you need about" in shown(i.value) for i in at.info)
    at.toggle(key="ev_grow").set_value(True).run()
    at.number_input(key="ev_grow_batch").set_value(5).run()
    next(b for b in at.button if b.label == "Run").click().run()
    run_id = at.session_state["ev_run"]
    job = ui.jobs().get(run_id)
    assert job is not None and job.budget is not None and job.wait(60), job and job.error
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    stop = store.get_run(run_id).snapshot["sequential"]
    # 6 categories: the first look has a row of each, then 5 rows per look until decided
    assert stop["stopped"] == "decided" and [look["rows"] for look in stop["looks"]] == [
        6, 11, 16, 21,
    ]  # fmt: skip
    at.switch_page("pages/results.py").run()
    assert any("stopped after 21 rows (4 looks)" in shown(s.value) for s in at.success)


def test_a_malformed_dataset_leaves_the_run_on_screen(
    workspace: Path, llm_server: LLMServer
) -> None:
    """A dataset that does not parse is said in the plan; the run below still shows."""
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    run_id = store.create_run({"suite": {}, "cases": []}, name="earlier", total_cells=0)
    store.set_run_status(run_id, "done")
    for path in (workspace / "datasets").iterdir():
        path.unlink()
    (workspace / "datasets" / "broken.csv").write_text('id,input\nr1,"a"b"\n')
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.query_params["run"] = run_id
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert any("broken.csv: line 2" in shown(e.value) for e in at.error)
    assert any(f"Run {run_id}" in shown(h.value) for h in at.subheader)


def test_a_cell_not_answered_yet_shows_an_ellipsis_not_none(workspace: Path) -> None:
    """Newcomer bug 6: the grid of a partly answered run showed a literal "None"."""
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    cases = [{"id": "r1", "category": "a"}, {"id": "r2", "category": "a"}]
    run_id = store.create_run({"suite": {}, "cases": cases}, name="partial", total_cells=4)
    answered = [("r1", "t/alpha"), ("r1", "t/beta"), ("r2", "t/alpha")]  # r2 · t/beta: not yet
    for row_id, name in answered:
        result = CallResult("fake/m", f"answer {row_id}", Usage(3, 4), 5.0, 20.0, 0.0)
        store.add_result(run_id, CellRecord(row_id, name, 0, "a", result), [])
    store.set_run_status(run_id, "cancelled")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.query_params["run"] = run_id
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    grid = at.dataframe[-1].value
    row = grid[grid["row_id"] == "r2"].iloc[0]
    assert row["t/alpha"] == "answer r2" and row["t/beta"] == "…"
    assert "None" not in grid.astype(str).to_numpy().ravel().tolist()
