"""Run until decided: add rows in seeded, stratified batches until every gate is decided.

The rows come in `sampling.stratified_order` (every prefix is a stratified sample, so a row
once drawn stays drawn). After each batch the suite's gates are evaluated with the anytime
rule (`evaluate_gates(..., anytime=True)`: a confidence sequence, valid however often it is
looked at), and the run stops at the first look where no gate has "insufficient evidence",
or when the row or cost budget is spent, or when the dataset has no rows left. The run's
snapshot records every look and why it stopped, and the Results page reads it from there.

The batches are one run that grows; it is not resumed by `promptdeck run` (its plan changes
with every batch), and a killed one keeps every finished cell.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from promptdeck.errors import ConfigError
from promptdeck.evals.plan import EvalPlan, every_case, whole
from promptdeck.evals.runner import Progress, Runner
from promptdeck.workspace.sampling import count_strata, stratified_order

DEFAULT_BATCH = 10


@dataclass(frozen=True)
class Budget:
    max_rows: int | None = None  # stop before using more rows than this
    max_cost: float | None = None  # USD: stop once this much was spent
    batch: int = DEFAULT_BATCH  # rows added per look


@dataclass(frozen=True)
class Outcome:
    run_id: str
    rows: int
    looks: int
    stopped: str  # "decided" | "max rows" | "max cost" | "cost unknown" | "dataset" | "cancelled"
    why: str  # for a PM
    progress: Progress | None


def grown_plan(plan: EvalPlan, rows: int) -> EvalPlan:
    """`plan` with the first `rows` rows of the dataset's stratified order."""
    sample = plan.suite.sample
    order = stratified_order(every_case(plan), seed=sample.seed, stratify=sample.stratify)
    return replace(plan, cases=tuple(order[:rows]))


def first_rows(plan: EvalPlan, budget: Budget) -> int:
    """The first look: one batch, and at least one row of every category."""
    strata = len(count_strata(every_case(plan), plan.suite.sample.stratify))
    rows = max(budget.batch, strata)
    return min(rows, budget.max_rows or rows, plan.dataset.rows)


def start_sequential(runner: Runner, plan: EvalPlan, budget: Budget, *, name: str) -> str:
    """Create the run (its first batch planned); `run_until_decided` then runs it."""
    if not plan.suite.gates:
        raise ConfigError(
            f"{plan.suite.name}: run until decided needs gates to decide; the suite has none"
        )
    plan = whole(plan)  # read every row once
    first = grown_plan(plan, first_rows(plan, budget))
    snapshot = _snapshot(first, budget, looks=[])
    return runner.store.create_run(snapshot, name=name, total_cells=len(first.cells()))


async def run_until_decided(
    runner: Runner,
    run_id: str,
    plan: EvalPlan,
    budget: Budget,
    *,
    cancel: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Outcome:
    """Run batch after batch (module docstring); every finished cell is stored at once."""
    store = runner.store
    plan = whole(plan)  # read every row once, not at every look
    total_rows = plan.dataset.rows
    rows, spent, unpriced = first_rows(plan, budget), 0.0, 0
    looks: list[dict[str, Any]] = []
    progress: Progress | None = None
    stopped: tuple[str, str] | None = None
    while True:
        current = grown_plan(plan, rows)
        store.update_run_plan(
            run_id, _snapshot(current, budget, looks), total_cells=len(current.cells())
        )
        progress = await runner.run(run_id, current, cancel=cancel, on_progress=on_progress)
        spent, unpriced = spent + progress.spend_usd, unpriced + progress.unpriced
        if (cancel is not None and cancel.is_set()) or progress.done != progress.total:
            stopped = ("cancelled", "the run was stopped before its gates were decided")
            break
        undecided = _undecided(store, run_id, current)
        looks.append({"rows": rows, "undecided": len(undecided), "spent_usd": spent})
        stopped = _stop(undecided, rows, total_rows, spent, unpriced, budget)
        if stopped is not None:
            break
        rows = min(rows + budget.batch, budget.max_rows or total_rows, total_rows)
    assert stopped is not None
    final = _snapshot(current, budget, looks, stopped=stopped, rows=rows)
    store.update_run_plan(run_id, final, total_cells=len(current.cells()))
    return Outcome(run_id, rows, len(looks), stopped[0], stopped[1], progress)


def _undecided(store: Any, run_id: str, plan: EvalPlan) -> list[str]:
    """The gates (with their variant) the anytime rule cannot decide yet."""
    # Imported at the first look, not with this module: they bring pandas and numpy, which
    # `promptdeck run` must not wait for before its first call (evals.start imports us).
    from promptdeck.analysis.cells import load_cells, run_judge_scale
    from promptdeck.analysis.gates import INSUFFICIENT, evaluate_gates

    cells = load_cells(store, run_id)
    order = {case.id: i for i, case in enumerate(plan.cases)}
    cells = cells.assign(batch=[order.get(str(r), len(order)) for r in cells["row_id"]])
    scale = run_judge_scale({"suite": plan.suite.to_dict()})
    results = evaluate_gates(
        cells, plan.suite.baseline, plan.suite.gates, scale=scale, anytime=True
    )
    return [f"{r.gate} ({r.variant})" for r in results if r.status == INSUFFICIENT]


def _stop(
    undecided: list[str],
    rows: int,
    total: int,
    spent: float,
    unpriced: int,
    budget: Budget,
) -> tuple[str, str] | None:
    if not undecided:
        return "decided", f"every gate was decided after {rows} rows"
    left = f"{len(undecided)} gate(s) still undecided: {', '.join(undecided[:3])}"
    if budget.max_cost is not None and unpriced:
        return "cost unknown", f"a model's price is unknown, so the cost budget cannot hold; {left}"
    if budget.max_cost is not None and spent >= budget.max_cost:
        return "max cost", f"the cost budget (${budget.max_cost:g}) was spent; {left}"
    if rows >= total:
        return "dataset", f"the dataset has no more rows ({total}); {left}"
    if budget.max_rows is not None and rows >= budget.max_rows:
        return "max rows", f"the row budget ({budget.max_rows}) was reached; {left}"
    return None


def _snapshot(
    plan: EvalPlan,
    budget: Budget,
    looks: list[dict[str, Any]],
    *,
    stopped: tuple[str, str] | None = None,
    rows: int | None = None,
) -> dict[str, Any]:
    data = plan.snapshot()
    # Never matched by `promptdeck run`'s resume: this plan changes with every batch.
    data["fingerprint"] = "sequential:" + str(data["fingerprint"])
    data["sequential"] = {
        "batch": budget.batch,
        "max_rows": budget.max_rows,
        "max_cost": budget.max_cost,
        "looks": list(looks),
        "rows": rows if rows is not None else len(plan.cases),
        "stopped": stopped[0] if stopped else None,
        "why": stopped[1] if stopped else None,
    }
    return data
