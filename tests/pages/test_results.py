import json
import random
import re
import shutil
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from promptdeck import ui
from promptdeck.model.types import CallResult, Usage
from promptdeck.scoring.judge import LOCAL_JUDGE_NOTICE
from promptdeck.scoring.scorers import Score
from promptdeck.store.db import Store
from promptdeck.store.rows import CellRecord
from tests.helpers import shown
from tests.pages.conftest import ROOT

GATES = [{"metric": "judge_score", "max_drop": 0.2}, {"metric": "error_rate", "max": 0.1}]


def stored_run(
    workspace: Path, rows: int = 30, judge: str | None = None, scale: tuple[int, int] = (1, 5)
) -> str:
    """A finished run with known scores: t/new beats t/base by ~1 point on every category."""
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    cases = [
        {"id": f"r{i}", "category": "ab"[i % 2], "input": f"question {i}", "expected": ""}
        for i in range(rows)
    ]
    judged = {"model": judge or "fake/judge", "scale": list(scale)}
    suite = {
        "baseline": "t/base",
        "gates": GATES,
        "judge": judged if judge or scale != (1, 5) else None,
    }
    snapshot = {"suite": suite, "cases": cases}
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
                    Score("judge", score, None, f"reason {i}", "fake/judge"),
                    Score("check:max_chars 500", 1.0, True, "ok"),
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
    at = open_results()  # the demo suite is here, but not the demo prompts it compares
    assert not at.exception
    assert "No eval runs yet" in at.info[0].value
    assert "support/production: no prompts/support/production.yaml" in shown(at.warning[0].value)
    assert not [b for b in at.button if b.label == "Run the demo eval"]


def test_without_the_demo_suite_the_empty_state_points_to_evaluate(workspace: Path) -> None:
    (workspace / "datasets" / "support_tickets.suite.yaml").unlink()  # a team's own repository
    at = open_results()
    assert not at.exception
    assert "Plan one on the Evaluate page" in at.info[0].value
    assert not [b for b in at.button if b.label == "Run the demo eval"]


def test_one_click_runs_the_demo_eval_on_the_embedded_model(workspace: Path) -> None:
    shutil.copytree(ROOT / "prompts" / "support", workspace / "prompts" / "support")
    at = open_results()
    assert not at.exception
    assert "No eval runs yet" in at.info[0].value and "6 tickets" in at.info[0].value
    next(b for b in at.button if b.label == "Run the demo eval").click().run()
    run_id = at.session_state["ev_run"]  # Evaluate reattaches to the same run
    assert at.query_params["run"] == run_id  # so do a refresh and a shared link
    job = ui.jobs().get(run_id)  # the same job registry as the Evaluate page
    assert job is not None
    assert job.plan.category_counts() == {
        c: 1 for c in ("account", "billing", "other", "product", "returns", "shipping")
    }
    assert [v.name for v in job.plan.variants] == [
        "support/production",
        "support/concise",
        "support/empathetic",
    ]
    assert job.plan.suite.judge is not None and job.plan.suite.judge.model == "local/smollm2"
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    try:
        while job.running and not store.results(run_id):  # real llama.cpp: a few seconds
            time.sleep(0.2)
        assert job.running, job.error  # 18 cells take about a minute: still going
        at.run()
        assert not at.exception
        progress = at.get("progress")[0].proto
        assert re.fullmatch(r"\d+/18 cells · 0 errors · .*", progress.text), progress.text
        assert LOCAL_JUDGE_NOTICE in [i.value for i in at.info]
        first = store.results(run_id)[0]
        assert first["error"] is None and first["output"]
        verdicts = [s for s in store.scores(run_id) if s["scorer"] == "judge"]
        assert verdicts and verdicts[0]["judge_model"] == "local/smollm2"
    finally:
        job.cancel.set()
        assert job.wait(60)
    at.run()  # cancelled: the page shows what the run finished
    assert not at.exception
    assert store.get_run(run_id).status == "cancelled"
    assert not at.get("progress")
    assert any(w.value.startswith("This run is cancelled: ") for w in at.warning)
    store.close()


def test_a_run_judged_by_the_embedded_model_says_its_scores_are_not_reliable(
    workspace: Path,
) -> None:
    stored_run(workspace, rows=6, judge="local/smollm2")
    at = open_results()
    assert not at.exception
    assert LOCAL_JUDGE_NOTICE in [i.value for i in at.info]
    # The checks are the result to read, so they come first, before the judge's headline.
    assert [h.value for h in at.subheader][:1] == ["Checks: read these first"]
    assert any(
        "t/new** passes every check on **100%** of 6 answers" in shown(m.value) for m in at.markdown
    )
    stored_run(workspace, rows=6, judge="openai/gpt-4o-mini")  # the newest run is shown
    at = open_results()
    assert LOCAL_JUDGE_NOTICE not in [i.value for i in at.info]
    assert "Checks: read these first" not in [h.value for h in at.subheader]


def test_headline_gates_and_every_chart(workspace: Path) -> None:
    stored_run(workspace)
    at = open_results()
    assert not at.exception
    page = " ".join(h.proto.body for h in at.get("html"))
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
    assert ">worse<" in " ".join(h.proto.body for h in at.get("html"))


def test_a_case_that_a_stopped_run_did_not_answer_for_every_variant(workspace: Path) -> None:
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    cases = [{"id": f"r{i}", "input": f"q{i}"} for i in range(3)]
    run_id = store.create_run(
        {"suite": {"baseline": "t/base"}, "cases": cases}, name="stopped", total_cells=6
    )
    result = CallResult("fake/m", "answer", Usage(1, 1), 5.0, 9.0, 0.0)
    for row, variants in (("r0", ["t/base", "t/new"]), ("r1", ["t/new"]), ("r2", ["t/base"])):
        for name in variants:
            store.add_result(run_id, CellRecord(row, name, 0, "", result), [])
    store.set_run_status(run_id, "cancelled")
    at = open_results()
    for row, missing in (("r1", "t/base"), ("r2", "t/new")):
        at.selectbox(key="res_case").select(row).run()
        assert not at.exception
        assert f"This case has no answer from {missing} in this run." in [i.value for i in at.info]


def test_a_run_with_one_variant_says_so(workspace: Path) -> None:
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    run_id = store.create_run(
        {"suite": {}, "cases": [{"id": "r0", "input": "q"}]}, name="solo", total_cells=1
    )
    result = CallResult("fake/m", "answer", Usage(1, 1), 5.0, 9.0, 0.0)
    store.add_result(run_id, CellRecord("r0", "t/only", 0, "", result), [])
    at = open_results()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert warnings[0].startswith("This run is not finished (running elsewhere, or interrupted)")
    assert "Only the baseline is in this run" in warnings[1]


def test_home_offers_the_same_click_and_opens_results(workspace: Path) -> None:
    shutil.copytree(ROOT / "prompts" / "support", workspace / "prompts" / "support")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    assert not at.exception
    next(b for b in at.button if b.label == "Run the demo eval").click().run()
    job = ui.jobs().get(at.session_state["ev_run"])
    assert job is not None
    job.cancel.set()  # the click started the real run; its progress is tested above
    assert job.wait(60)
    assert not at.exception
    assert at.title[0].value == "Results" and at.query_params["run"] == job.run_id


def test_a_note_or_thumbs_alone_is_not_a_score_override(workspace: Path) -> None:
    run_id = stored_run(workspace, rows=12)
    at = open_results()
    at.selectbox(key="res_case").select("r0").run()
    assert at.number_input[0].value is None  # empty: the judge's score is only a hint
    next(t for t in at.text_input if t.label == "Note").input("Tone is off, the facts are right")
    at.radio[0].set_value("👎")
    next(b for b in at.button if b.label == "Save review").click().run()
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    assert store.score_overrides(run_id) == {}  # no human score, so none to count
    [review] = store.reviews(run_id).values()
    assert (review["note"], review["thumbs"], review["score_override"]) == (
        "Tone is off, the facts are right", -1, None,
    )  # fmt: skip
    assert not any("(human override)" in m.value for m in at.markdown)


def test_the_review_form_takes_the_run_s_own_scale(workspace: Path) -> None:
    run_id = stored_run(workspace, rows=12, scale=(1, 10))
    at = open_results()
    at.selectbox(key="res_case").select("r0").run()
    field = at.number_input[0]
    assert (field.min, field.max) == (1.0, 10.0) and field.label == "Your score (1–10)"
    field.set_value(8.0)
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception
    store = Store(workspace / ".promptdeck" / "promptdeck.sqlite")
    assert store.score_overrides(run_id) == {("r0", "t/new", 0): 8.0}
