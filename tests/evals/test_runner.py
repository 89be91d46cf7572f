"""The eval runner against the local SSE test server, on both store engines (every test
that takes `store_target` runs on a SQLite file and on a real PostgreSQL database)."""

import threading
import time
from dataclasses import replace
from pathlib import Path

from promptdeck.evals.plan import EvalPlan
from promptdeck.evals.runner import Progress, Runner
from promptdeck.evals.suite import Suite
from promptdeck.model.http import run_with_client
from promptdeck.scoring.judge import JudgeSpec
from promptdeck.store.db import Store
from promptdeck.workspace.datasets import Case, Dataset
from promptdeck.workspace.prompts import PromptVariant
from tests.helpers import server_registry, variant
from tests.llm_server import LLMServer, Scenario


def make_plan(variants: list[PromptVariant], rows: int, repeats: int = 1) -> EvalPlan:
    cases = tuple(
        Case(f"r{i}", {"category": "abc"[i % 3], "input": f"q{i}", "expected": f"Echo: q{i}"})
        for i in range(rows)
    )
    dataset = Dataset("d", Path("d.csv"), ("id", "category", "input", "expected"), cases)
    suite = Suite(None, Path("d.csv"), tuple(v.name for v in variants), repeats=repeats)
    return EvalPlan(suite, dataset, cases, tuple(variants))


def run(
    runner: Runner, plan: EvalPlan, run_id: str | None = None, **kw: object
) -> tuple[str, Progress]:
    run_id = run_id or runner.store.create_run(
        plan.snapshot(), name="t", total_cells=len(plan.cells())
    )
    return run_id, run_with_client(runner.run(run_id, plan, **kw))  # type: ignore[arg-type]


def test_concurrency_bound_holds(llm_server: LLMServer, tmp_path: Path, store_target: str) -> None:
    llm_server.set_scenario("m", Scenario(tokens=["a ", "b"], first_token_delay=0.05))
    store = Store(store_target)
    runner = Runner(server_registry(llm_server), store, concurrency=4)
    run_id, progress = run(runner, make_plan([variant("t/v", "fake/m")], 24))
    assert (progress.done, progress.total, progress.errors) == (24, 24, 0)
    assert llm_server.max_in_flight == 4
    assert llm_server.request_count("m") == 24
    assert store.get_run(run_id).status == "done"
    assert {r["output"] for r in store.results(run_id)} == {"a b"}


def test_retry_after_429_then_success(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    llm_server.set_scenario("m", Scenario(fail_statuses=[429], retry_after=0.01))
    runner = Runner(server_registry(llm_server), Store(store_target), concurrency=1)
    run_id, _ = run(runner, make_plan([variant("t/v", "fake/m")], 1))
    [row] = runner.store.results(run_id)
    assert (row["error"], row["attempts"], row["output"]) == (None, 2, "Echo: q0")
    assert llm_server.request_count("m") == 2


def test_unchanged_rerun_makes_zero_calls(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    runner = Runner(server_registry(llm_server), Store(store_target), concurrency=4)
    plan = make_plan([variant("t/a", "fake/a"), variant("t/b", "fake/b")], 10)
    run(runner, plan)
    before = len(llm_server.requests)
    run_id, progress = run(runner, plan)  # a new run of the same plan
    assert len(llm_server.requests) == before == 20
    assert progress.cached == 20 and progress.spend_usd == 0
    assert all(r["cached"] == 1 for r in runner.store.results(run_id))


def test_fallback_answers_when_the_primary_fails(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    llm_server.set_scenario("down", Scenario(fail_statuses=[503] * 10))
    runner = Runner(server_registry(llm_server), Store(store_target), max_retries=0)
    plan = make_plan([variant("t/v", "fake/down", fallback="fake/backup")], 3)
    run_id, progress = run(runner, plan)
    rows = runner.store.results(run_id)
    assert progress.errors == 0
    assert {(r["model"], r["fallback_used"], r["output"][:5]) for r in rows} == {
        ("fake/backup", 1, "Echo:")
    }
    assert llm_server.request_count("down") == 3 and llm_server.request_count("backup") == 3


def test_resume_after_cancel_requests_no_cell_twice(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    llm_server.set_scenario("m", Scenario(tokens=["x"], first_token_delay=0.02))
    store = Store(store_target)
    runner = Runner(server_registry(llm_server), store, concurrency=2, use_cache=False)
    plan = make_plan([variant("t/v", "fake/m")], 30)
    cancel = threading.Event()

    def stop_early(p: Progress) -> None:
        if p.done >= 10:
            cancel.set()

    run_id, first = run(runner, plan, cancel=cancel, on_progress=stop_early)
    assert 10 <= first.done < 30 and store.get_run(run_id).status == "cancelled"
    _, second = run(Runner(server_registry(llm_server), store, use_cache=False), plan, run_id)
    assert second.done == 30 and store.get_run(run_id).status == "done"
    stored = len(store.results(run_id))
    # A request cancelled while its body was on the way reaches the server without one.
    asked = [r.body["messages"][-1]["content"] for r in llm_server.requests if r.body]
    # Cells cancelled in flight were asked once and never stored; every other cell once.
    assert stored == 30 and len(set(asked)) == 30
    assert len(asked) - 30 <= 2  # at most the two calls that were in flight at the cancel


def test_a_failing_cell_is_a_row_and_checks_are_scores(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    runner = Runner(server_registry(llm_server), Store(store_target))
    plan = make_plan(
        [
            variant("t/ok", "fake/m", checks=[{"type": "equals"}]),
            variant("t/tmpl", "fake/m", user="{{ nope }}"),
        ],
        2,
    )
    run_id, progress = run(runner, plan)
    rows = {(r["row_id"], r["variant"]): r for r in runner.store.results(run_id)}
    assert progress.done == 4 and progress.errors == 2
    assert rows[("r0", "t/tmpl")]["error_kind"] == "template"
    assert "'nope'" in rows[("r0", "t/tmpl")]["error"]
    scores = runner.store.scores(run_id)
    assert {(s["row_id"], s["scorer"], s["passed"]) for s in scores} == {
        ("r0", "check:equals", 1),
        ("r1", "check:equals", 1),
    }


def test_repeats_keep_every_answer(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    runner = Runner(server_registry(llm_server), Store(store_target))  # cache on
    plan = make_plan([variant("t/v", "fake/m")], 2, repeats=3)
    run_id, progress = run(runner, plan)
    assert (progress.total, progress.cached, llm_server.request_count("m")) == (6, 0, 6)
    _, again = run(runner, plan)  # an unchanged re-run: every repeat from the cache
    assert (again.cached, llm_server.request_count("m")) == (6, 6)
    assert sorted((r["row_id"], r["repeat"]) for r in runner.store.results(run_id)) == [
        ("r0", 0),
        ("r0", 1),
        ("r0", 2),
        ("r1", 0),
        ("r1", 1),
        ("r1", 2),
    ]


def judged_plan(variants: list[PromptVariant], rows: int, judge: JudgeSpec) -> EvalPlan:
    plan = make_plan(variants, rows)
    return replace(plan, suite=replace(plan.suite, judge=judge, baseline=variants[0].name))


def test_pointwise_judge_scores_every_answer(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    llm_server.set_scenario(
        "judge", Scenario(tokens=['{"reasoning": "Polite and correct.", ', '"score": 4}'])
    )
    llm_server.set_scenario("mute", Scenario(tokens=["I cannot grade this."]))
    runner = Runner(server_registry(llm_server), Store(store_target))
    for model, value, reason in (
        ("judge", 4.0, "Polite and correct."),
        ("mute", None, "unscored: no verdict found"),
    ):
        plan = judged_plan([variant("t/v", "fake/m")], 3, JudgeSpec(f"fake/{model}", "Be fair."))
        run_id, progress = run(runner, plan)
        judge = [s for s in runner.store.scores(run_id) if s["scorer"] == "judge"]
        assert progress.done == 3 and len(judge) == 3
        assert {(s["value"], s["reason"], s["judge_model"]) for s in judge} == {
            (value, reason, f"fake/{model}")
        }
        assert all(
            '"Be fair."' in s["prompt_json"] or "Be fair." in s["prompt_json"] for s in judge
        )
        assert all(s["latency_ms"] > 0 and s["raw"] for s in judge)
    asked = [r.body for r in llm_server.requests if r.model == "judge"]
    assert len(asked) == 3 and all(b["temperature"] == 0 for b in asked)
    assert asked[0]["response_format"]["type"] == "json_schema"


def test_pairwise_judge_asks_both_orders(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    # A judge that always prefers the first answer shown: position bias, so a tie.
    llm_server.set_scenario(
        "pj", Scenario(tokens=['{"reasoning": "A reads better", "winner": "A"}'])
    )
    llm_server.set_scenario("b", Scenario(tokens=["the baseline answer"]))
    llm_server.set_scenario("n", Scenario(tokens=["the new answer"]))
    runner = Runner(server_registry(llm_server), Store(store_target))
    plan = judged_plan(
        [variant("t/base", "fake/b"), variant("t/new", "fake/n")],
        4,
        JudgeSpec("fake/pj", "Which is better?", mode="pairwise"),
    )
    run_id, progress = run(runner, plan)
    pair = [s for s in runner.store.scores(run_id) if s["scorer"] == "pairwise"]
    assert (progress.pairs_done, progress.pairs_total) == (4, 4)
    assert {(s["variant"], s["value"]) for s in pair} == {("t/new", 0.5)}
    assert len(pair) == 4 and llm_server.request_count("pj") == 8
    bodies = [r.body["messages"][-1]["content"] for r in llm_server.requests if r.model == "pj"]
    assert not any("t/new" in b or "t/base" in b for b in bodies)  # names hidden from the judge
    assert runner.store.get_run(run_id).status == "done"


def test_a_run_beats_while_a_slow_cell_is_out(
    llm_server: LLMServer, tmp_path: Path, store_target: str
) -> None:
    """Another machine takes a run for dead when its heartbeat is old: a run whose only cell
    takes a long time still beats, although it stores nothing."""
    llm_server.set_scenario("m", Scenario(first_token_delay=1.0))
    store = Store(store_target)
    runner = Runner(server_registry(llm_server), store, beat_s=0.05)
    plan = make_plan([variant("t/v", "fake/m")], 1)
    run_id = store.create_run(plan.snapshot(), name="t", total_cells=1)
    beats: set[str] = set()
    worker = threading.Thread(target=run, args=(runner, plan, run_id))
    worker.start()
    while worker.is_alive() and not store.done_cells(run_id):
        row = store._read_one("SELECT heartbeat FROM runs WHERE id = ?", (run_id,))
        beats.add(row["heartbeat"] if row else "")
        time.sleep(0.01)  # a poll interval, not a wait: the loop ends when the cell is stored
    worker.join()
    assert len(beats) >= 3  # it beat several times while its one cell was out
