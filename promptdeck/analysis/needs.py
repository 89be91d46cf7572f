"""How many rows a suite's gates need to be decidable: the plan's sample-size advice.

For each judge_score or win_rate gate, `planning.rows_needed` from the spread of the last
finished run of the same suite when there is one (the widest per-row sd of its variants,
in the gate's scope), else a conservative default for the judge's scale. Gates on
measured values (error rate, latency, cost, checks, confidence) need no such advice: any
run decides them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from promptdeck.analysis.cells import run_judge_scale
from promptdeck.analysis.gates import EACH, parse_gate
from promptdeck.analysis.planning import default_sd, rows_needed
from promptdeck.analysis.results import ALL
from promptdeck.analysis.run import analyze_run
from promptdeck.store.db import Store


@dataclass(frozen=True)
class GateNeed:
    gate: str  # the gate's name, as the gate table shows it
    rows: int | None  # paired rows per variant (per category for a category gate)
    sd: float  # the per-row spread it assumes
    source: str  # where the spread comes from, for a PM
    per_category: bool = False

    def advice(self, sample: int) -> str:
        if self.rows is None:
            return f"{self.gate}: no number of rows decides it if nothing changes"
        enough = "enough" if sample >= self.rows else "too few"
        return (
            f"{self.gate}: to decide it you need about {self.rows} rows per variant"
            f"{' per category' if self.per_category else ''}; this sample has "
            f"{sample} ({enough}). {self.source}"
        )


def gate_needs(
    gates: Sequence[Mapping[str, Any]],
    *,
    scale: tuple[float, float],
    history: pd.DataFrame | None = None,
    history_name: str = "",
) -> list[GateNeed]:
    """Rows each interval gate needs. `history` is the `comparison_frame` of the last run of
    the same suite (its `sd` per variant and category), if there is one."""
    family = sum(1 for g in gates if g.get("category") is not None and _interval(g))
    needs = []
    for raw in gates:
        if not _interval(raw):
            continue
        gate = parse_gate(raw)
        sd, source = _spread(gate.category, gate.metric, scale, history, history_name)
        spec = {"metric": gate.metric, gate.kind: gate.limit}
        rows = rows_needed(
            spec, scale=scale, sd=sd, family=family if gate.category is not None else 1
        )
        needs.append(GateNeed(gate.name, rows, sd, source, gate.category is not None))
    return needs


def _interval(gate: Mapping[str, Any]) -> bool:
    metric, on = gate.get("metric"), gate.get("on")
    if metric == "judge_score":
        return on != "mean" and ("max_drop" in gate or "min" in gate)
    return metric == "win_rate"


def _spread(
    category: str | None,
    metric: str,
    scale: tuple[float, float],
    history: pd.DataFrame | None,
    name: str,
) -> tuple[float, str]:
    if metric == "judge_score" and history is not None and not history.empty:
        scope = ALL if category in (None, EACH) else category
        found = pd.to_numeric(history.loc[history["category"] == scope, "sd"], errors="coerce")
        if found.notna().any():
            sd = float(found.max())
            return sd, f"(From the spread of run {name}: a per-row sd of {sd:.2f}.)"
    span = (0.0, 1.0) if metric == "win_rate" else scale
    sd = default_sd(span)
    return sd, f"(No earlier run of this suite: a cautious per-row sd of {sd:.2f} is assumed.)"


def suite_needs(store: Store, suite: Mapping[str, Any]) -> list[GateNeed]:
    """`gate_needs` for a suite (as `Suite.to_dict()` writes it), with the spread of the last
    finished run of the same suite file in this store, if there is one."""
    gates = suite.get("gates") or []
    scale = run_judge_scale({"suite": suite})
    for record in store.list_runs(200):
        same = record.snapshot.get("suite", {}).get("path") == suite.get("path")
        if same and suite.get("path") and record.status == "done":
            history = analyze_run(store, record.id).comparisons
            return gate_needs(gates, scale=scale, history=history, history_name=record.id)
    return gate_needs(gates, scale=scale)
