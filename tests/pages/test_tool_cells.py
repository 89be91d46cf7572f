"""An eval cell's tool calls and thinking, next to its answer, on Evaluate and Results."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck.model.types import CallResult, ToolStep, Usage
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from tests.helpers import shown
from tests.pages.conftest import ROOT

THOUGHT = "The order id is in the message: look it up first."
PAYLOAD = "<img src=x onerror=alert(1)>"  # a mock's result is untrusted text too


def tool_run(workspace: Path) -> str:
    """A finished run of two rows: t/tools called get_order and thought, t/plain did neither."""
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    cases = [{"id": f"r{i}", "category": "a", "input": f"where is A{i}?"} for i in range(2)]
    snapshot = {"suite": {"baseline": "t/plain"}, "cases": cases}
    run_id = store.create_run(snapshot, name="tools", total_cells=4)
    for case in cases:
        steps = (
            ToolStep(1, "c1", "get_order", {"order_id": case["id"]}, f'{{"status": "{PAYLOAD}"}}'),
            ToolStep(2, "c2", "refund", "{not json", "Error: not JSON", "arguments are not JSON"),
        )
        usage = Usage(10, 20, reasoning_tokens=12)
        thought = CallResult(
            "fake/m", f"shipped {case['id']}", usage, 300.0, 900.0, 0.0,
            thinking=THOUGHT, thinking_ms=120.0,
        )  # fmt: skip
        plain = CallResult("fake/m", f"plain {case['id']}", Usage(10, 5), 50.0, 200.0, 0.0)
        for name, result, made in (("t/tools", thought, steps), ("t/plain", plain, ())):
            record = CellRecord(case["id"], name, 0, "a", result, steps=made)
            store.add_result(run_id, record, [Score("judge", 4.0, None, "fine", "fake/judge")])
    store.set_run_status(run_id, "done")
    store.close()
    return run_id


def open_page(page: str, run_id: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.query_params["run"] = run_id
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def assert_tool_calls_and_thinking(at: AppTest) -> None:
    lines = [shown(m.value) for m in at.markdown if m.value.startswith(":material/build:")]
    assert lines == [
        f':material/build: ` get_order({{"order_id": "r0"}}) ` → ` {{"status": "{PAYLOAD}"}} `',
        ":material/build: ` refund({not json) ` → :material/warning: arguments are not JSON",
    ]
    [thinking] = [e for e in at.expander if e.label.startswith("Thinking")]
    assert thinking.label == "Thinking · first thought after 120 ms"
    assert shown(thinking.caption[0].value) == THOUGHT
    assert not any(THOUGHT in m.value for m in at.markdown)  # never in the answer


def test_evaluate_marks_tool_cells_in_the_grid_and_shows_them_in_a_case(workspace: Path) -> None:
    at = open_page("pages/evaluate.py", tool_run(workspace))
    grid = at.dataframe[-1].value
    assert list(grid["t/tools · tools"]) == ["get_order ×1, refund ×1"] * 2
    assert list(grid["t/plain · tools"]) == ["", ""]
    at.selectbox(key="ev_detail_row").select("r0").run()
    assert not at.exception, at.exception
    assert_tool_calls_and_thinking(at)


def test_evaluate_grid_has_no_tools_column_without_tools(workspace: Path) -> None:
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    run_id = store.create_run({"suite": {}, "cases": [{"id": "r1"}]}, name="p", total_cells=1)
    result = CallResult("fake/m", "answer", Usage(3, 4), 5.0, 20.0, 0.0)
    store.add_result(run_id, CellRecord("r1", "t/alpha", 0, "a", result), [])
    store.set_run_status(run_id, "done")
    store.close()
    at = open_page("pages/evaluate.py", run_id)
    assert not [c for c in at.dataframe[-1].value.columns if "tools" in c]


def test_results_shows_a_case_with_its_tool_calls_and_thinking(workspace: Path) -> None:
    at = open_page("pages/results.py", tool_run(workspace))
    at.selectbox(key="res_case").select("r0").run()
    assert not at.exception, at.exception
    assert_tool_calls_and_thinking(at)
