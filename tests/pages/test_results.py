import json
import random
from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck.call import CallResult
from promptdeck.providers.base import Usage
from promptdeck.store import CellRecord, ScoreRecord, Store
from tests.pages.conftest import ROOT

GATES = [{"metric": "judge_score", "max_drop": 0.2}, {"metric": "error_rate", "max": 0.1}]


def stored_run(workspace: Path, rows: int = 30) -> str:
    """A finished run with known scores: t/new beats t/base by ~1 point on every category."""
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    cases = [
        {"id": f"r{i}", "category": "ab"[i % 2], "input": f"question {i}", "expected": ""}
        for i in range(rows)
    ]
    snapshot = {"suite": {"baseline": "t/base", "gates": GATES}, "cases": cases}
    run_id = store.create_run(snapshot, name="demo", total_cells=2 * rows)
    rng = random.Random(1)
    for i, case in enumerate(cases):
        for variant, base in (("t/base", 3), ("t/new", 4)):
            score = float(min(5, max(1, base + rng.choice([-1, 0, 0, 1]))))
            result = CallResult("fake/m", f"{variant} answer {i}", Usage(10, 5), 50.0, 200.0, 0.0)
            record = CellRecord(case["id"], variant, 0, case["category"], result)
            store.add_result(
                run_id,
                record,
                [
                    ScoreRecord("judge", score, None, f"reason {i}", "fake/judge"),
                    ScoreRecord("check:max_chars 500", 1.0, True, "ok"),
                ],
            )
    store.set_run_status(run_id, "done")
    store.close()
    return run_id


def open_results() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("pages/results.py").run()
    return at


def test_empty_state_says_what_to_do(workspace: Path) -> None:
    at = open_results()
    assert not at.exception
    assert "No eval runs yet" in at.info[0].value


def test_headline_gates_and_every_chart(workspace: Path) -> None:
    stored_run(workspace)
    at = open_results()
    assert not at.exception
    page = " ".join(m.value for m in at.markdown)
    assert "t/new</b> vs t/base" in page and ">better<" in page
    assert "Gates: **pass**" in at.success[0].value
    specs = [json.loads(c.proto.spec) for c in at.get("arrow_vega_lite_chart")] or [
        json.loads(c.proto.spec) for c in at.get("vega_lite_chart")
    ]
    assert len(specs) == 5
    assert any("category_pick" in json.dumps(s) for s in specs)


def test_drill_down_and_override_change_the_statistics(workspace: Path) -> None:
    run_id = stored_run(workspace, rows=12)
    at = open_results()
    before = at.caption[0].value
    at.selectbox(key="res_case").select("r0").run()
    assert any(m.value.startswith("**Judge:") for m in at.markdown)
    at.number_input[0].set_value(1.0)  # inside a form: sent with the submit
    next(b for b in at.button if b.label == "Save review").click().run()
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    assert store.score_overrides(run_id) == {("r0", "t/new", 0): 1.0}
    assert any("(human override)" in m.value for m in at.markdown)
    assert at.caption[0].value != before  # the headline statistics moved
    for i in range(1, 12):  # a reviewer scores every other answer of t/new 1 as well
        store.review_cell(run_id, f"r{i}", "t/new", 0, score=1.0, note="wrong")
    at.run()
    assert ">worse<" in " ".join(m.value for m in at.markdown)


def test_a_run_with_one_variant_says_so(workspace: Path) -> None:
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    run_id = store.create_run(
        {"suite": {}, "cases": [{"id": "r0", "input": "q"}]}, name="solo", total_cells=1
    )
    result = CallResult("fake/m", "answer", Usage(1, 1), 5.0, 9.0, 0.0)
    store.add_result(run_id, CellRecord("r0", "t/only", 0, "", result), [])
    at = open_results()
    assert not at.exception
    assert "Only the baseline is in this run" in at.warning[0].value
