"""How long a planned eval will take, from how long the same kind of run took on this machine.

A cell's wall time depends less on the model's latency than on what runs beside it: three
calls of the embedded model in flight on two cores take about three times as long each, and
a long judge rubric costs more than the answer it grades. So the estimate does not add up
single-call latencies; it reads finished runs of the same *kind* (the same answering models
and max_tokens, the same judge and mode, the same concurrency) and their measured seconds per
cell, wall clock from the run's start to its end (pairwise judging included), cached cells
left out. Each earlier run gives two samples, its first and second half (a slow start shows
there); the range is their lowest and highest, times the cells planned. A run that was
paused and resumed (a gap of more than ten minutes between two cells) is not read.

With no such run yet the estimate falls back to the models' median single-call latencies,
said to be rough; the live ETA (elapsed per finished cell) then takes over once cells finish.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from promptdeck.evals.plan import EvalPlan
from promptdeck.model.types import DEFAULT_MAX_TOKENS
from promptdeck.store.db import Store

RUNS_READ = 5  # the latest runs of the same kind that are read
PAUSE_S = 600.0  # a longer gap between two cells: the run was stopped and resumed


@dataclass(frozen=True)
class TimeRange:
    """Seconds the plan should take: `low`..`high`; `runs` is how many earlier runs of the
    same kind measured it (0: a rough figure from single-call latencies)."""

    low: float
    high: float
    runs: int

    def text(self) -> str:
        middle = (self.low + self.high) / 2
        if self.runs == 0 or self.high - self.low < max(1.0, 0.05 * self.high):
            return f"~{_duration(middle)}"
        return f"~{_duration(middle)} ({_duration(self.low)} – {_duration(self.high)})"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:,.0f} s"
    return f"{seconds / 60:,.1f} min"


def run_kind(snapshot: Mapping[str, Any], concurrency: int | None) -> str:
    """What makes two runs take the same time per cell (the key `past_rates` matches on)."""
    variants = snapshot.get("variants", {})
    answering = sorted(
        (v["model"], int(v.get("params", {}).get("max_tokens", DEFAULT_MAX_TOKENS)))
        for v in variants.values()
    )
    judge = snapshot.get("suite", {}).get("judge") or {}
    return json.dumps(
        {
            "answers": answering,
            "judge": [judge.get("model"), judge.get("mode")] if judge else None,
            "concurrency": concurrency,
        },
        sort_keys=True,
    )


def past_rates(store: Store, kind: str) -> list[tuple[float, float]]:
    """(seconds per cell, first half; second half) of the latest finished runs of `kind`."""
    found = []
    for record in store.list_runs(limit=200):
        if record.status != "done" or record.snapshot.get("timing_kind") != kind:
            continue
        results = store.results(record.id)
        if any(r["cached"] for r in results):
            continue  # a cached cell costs no time: the run is not the kind's speed
        stamps = sorted(_when(r["created"]) for r in results)
        end = _when(record.finished) if record.finished else None
        if len(stamps) < 2 or end is None:
            continue
        times = [_when(record.created), *stamps, max(end, stamps[-1])]
        if max(b - a for a, b in pairwise(times)) > PAUSE_S:
            continue
        middle = len(stamps) // 2
        first = (stamps[middle - 1] - times[0]) / middle
        second = (times[-1] - stamps[middle - 1]) / (len(stamps) - middle)
        found.append((first, second))
        if len(found) == RUNS_READ:
            break
    return found


def estimate_time(
    store: Store,
    plan: EvalPlan,
    concurrency: int | None,
    latency_ms: Mapping[str, float | None],
    judge_calls: int,
) -> TimeRange | None:
    """The time range of `plan`, measured where possible; None when nothing is known."""
    cells = len(plan.cells())
    rates = past_rates(store, run_kind(plan.snapshot(), concurrency))
    if rates:
        samples = [s for pair in rates for s in pair]
        return TimeRange(cells * min(samples), cells * max(samples), len(rates))
    busy = 0.0
    for variant in plan.variants:
        past = latency_ms.get(variant.model)
        if past is None:
            return None
        busy += past * cells / len(plan.variants)
    if plan.suite.judge is not None and judge_calls:
        past = latency_ms.get(plan.suite.judge.model)
        if past is None:
            return None
        busy += past * judge_calls
    seconds = busy / 1000 / max(1, concurrency or 1)
    return TimeRange(seconds, seconds, 0)


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()
