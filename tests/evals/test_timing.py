"""Time estimates from finished runs of the same kind on this machine (evals.timing)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from promptdeck.evals.start import RunOptions, open_run, run_in_foreground
from promptdeck.evals.timing import TimeRange, estimate_time, run_kind
from promptdeck.store.db import Store
from tests.evals.test_runner import make_plan
from tests.helpers import server_registry, variant
from tests.llm_server import LLMServer, Scenario

OPTIONS = RunOptions(concurrency=2, use_cache=False)


def finished_run(llm_server: LLMServer, store: Store, rows: int) -> str:
    plan = make_plan([variant("t/a", "fake/a")], rows)
    opened = open_run(store, plan, resume=False, concurrency=OPTIONS.concurrency)
    run_in_foreground(server_registry(llm_server), store, opened, plan, OPTIONS)
    return opened.run_id


def wall_s(store: Store, run_id: str) -> float:
    record = store.get_run(run_id)
    assert record.finished is not None
    return (
        datetime.fromisoformat(record.finished) - datetime.fromisoformat(record.created)
    ).total_seconds()


def test_a_finished_run_of_the_same_kind_sets_the_range(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    llm_server.set_scenario("a", Scenario(tokens=["x"], first_token_delay=0.05))
    store = Store(tmp_path / "s.sqlite")
    plan = make_plan([variant("t/a", "fake/a")], 12)
    assert estimate_time(store, plan, 2, {"fake/a": None}, 0) is None  # nothing timed yet
    run_id = finished_run(llm_server, store, 6)
    took = estimate_time(store, plan, 2, {}, 0)
    assert took is not None and took.runs == 1 and took.low <= took.high
    # The run's own pace, scaled to twice the cells, lies inside the range.
    per_cell = wall_s(store, run_id) / 6
    assert took.low <= 12 * per_cell <= took.high
    # Another concurrency is another kind of run: its time is not known from this one.
    assert estimate_time(store, plan, 4, {}, 0) is None


def test_without_a_run_of_its_kind_the_estimate_is_rough(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    plan = make_plan([variant("t/a", "fake/a")], 10)
    took = estimate_time(store, plan, 2, {"fake/a": 400.0}, 0)
    assert took == TimeRange(2.0, 2.0, 0) and took.text() == "~2 s"


def test_cached_and_paused_runs_are_not_read(llm_server: LLMServer, tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    plan = make_plan([variant("t/a", "fake/a")], 6)
    cached = finished_run(llm_server, store, 6)
    with store._tx() as db:  # one cell came from the cache
        db.execute("UPDATE results SET cached = 1 WHERE run_id = ? AND row_id = 'r0'", (cached,))
    assert estimate_time(store, plan, 2, {}, 0) is None
    paused = finished_run(llm_server, store, 6)
    later = (datetime.fromisoformat(store.get_run(paused).created) + timedelta(hours=2)).isoformat()
    with store._tx() as db:  # resumed two hours later
        db.execute(
            "UPDATE results SET created = ? WHERE run_id = ? AND row_id = 'r5'", (later, paused)
        )
        db.execute("UPDATE runs SET finished = ? WHERE id = ?", (later, paused))
    assert estimate_time(store, plan, 2, {}, 0) is None


def test_the_kind_names_models_limits_judge_and_concurrency() -> None:
    plan = make_plan([variant("t/a", "fake/a")], 3)
    snapshot = plan.snapshot()
    assert run_kind(snapshot, 2) != run_kind(snapshot, 3)
    longer = replace(plan.variants[0], params={"max_tokens": 999})
    assert run_kind(replace(plan, variants=(longer,)).snapshot(), 2) != run_kind(snapshot, 2)
    assert TimeRange(50, 130, 2).text() == "~1.5 min (50 s – 2.2 min)"
