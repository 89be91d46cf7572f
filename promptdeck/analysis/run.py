"""One stored run, analysed once: what the Results page, the reports and the CLI all show.

`analyze_run` computes the comparisons with the baseline (overall and per category, with
their verdicts), the release gates and the per-variant summary from the run's cells, with
one set of rules, so the page, the HTML/Markdown report and `promptdeck gate` cannot
disagree about the same run:

- the baseline is the one asked for, else the suite's (else the first variant);
- a comparison's "within noise" / "underpowered" threshold is the smallest `max_drop` of
  the suite's judge_score gates (the change that matters to this suite), else 0.2;
- every p50/p95 is `stats.percentile` over the answered cells (`results.variant_frame`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from promptdeck.analysis.cells import load_cells, run_judge_model, run_judge_scale
from promptdeck.analysis.gates import GateResult, Status, evaluate_gates, overall_status
from promptdeck.analysis.pairwise import pairwise_frame
from promptdeck.analysis.report import ReportData
from promptdeck.analysis.results import (
    ALL,
    comparison_frame,
    comparisons,
    examples,
    score_distribution,
    variant_frame,
)
from promptdeck.errors import ConfigError
from promptdeck.store.db import Store
from promptdeck.store.rows import RunRecord

DEFAULT_THRESHOLD = 0.2  # the change in mean judge score that matters, when no gate says


def verdict_threshold(gates: Sequence[Mapping[str, Any]]) -> float:
    """The smallest judge_score drop a suite's gates tolerate, else DEFAULT_THRESHOLD."""
    drops = [
        float(g["max_drop"])
        for g in gates
        if g.get("metric") == "judge_score" and isinstance(g.get("max_drop"), int | float)
    ]
    return min(drops, default=DEFAULT_THRESHOLD)


@dataclass(frozen=True)
class RunAnalysis:
    record: RunRecord
    cells: pd.DataFrame  # analysis.cells.load_cells: one row per cell
    baseline: str | None  # None: the run has no cell
    threshold: float
    comparisons: pd.DataFrame  # results.comparison_frame: per (variant, category)
    per_variant: pd.DataFrame  # results.variant_frame
    gates: tuple[GateResult, ...]
    judge_model: str | None
    scale: tuple[float, float] = (1.0, 5.0)  # the judge's score scale
    anytime: bool = False  # a run that grew until its gates were decided: anytime intervals
    pairwise: pd.DataFrame = field(default_factory=pd.DataFrame)  # pairwise.pairwise_frame

    @property
    def stop(self) -> Mapping[str, Any] | None:
        """How a run-until-decided run ended (rows, looks, why it stopped), else None."""
        found = self.record.snapshot.get("sequential")
        return found if isinstance(found, dict) else None

    @property
    def variants(self) -> list[str]:
        return [] if self.cells.empty else [str(v) for v in self.cells["variant"].unique()]

    @property
    def headlines(self) -> pd.DataFrame:
        """One comparison per variant, over every category."""
        table = self.comparisons
        return table if table.empty else table[table["category"] == ALL]

    @property
    def gate_status(self) -> Status | None:
        """The run's overall gate status; None when the suite declares no gates."""
        return overall_status(self.gates) if self.gates else None

    def report_data(self, *, demo_judge: bool = False) -> ReportData:
        """What `report.html_report` and `report.markdown_summary` show of this run."""
        record = self.record
        cases = record.snapshot.get("cases", [])
        return ReportData(
            title=f"{record.name}: variants vs {self.baseline}",
            run=record,
            headlines=self.headlines,
            comparisons=self.comparisons,
            variants=self.per_variant,
            dist=score_distribution(self.cells) if not self.cells.empty else pd.DataFrame(),
            gates=list(self.gates),
            examples=examples(self.cells, self.baseline, cases) if self.baseline else [],
            judge_model=self.judge_model,
            demo_judge=demo_judge,
        )


def analyze_run(
    store: Store, run_id: str, baseline: str | None = None, *, seed: int = 0
) -> RunAnalysis:
    """Everything shown about a run, computed once (module docstring)."""
    record = store.get_run(run_id)
    cells = load_cells(store, record.id)
    suite = record.snapshot.get("suite")
    suite = suite if isinstance(suite, dict) else {}
    gates = suite.get("gates") or []
    threshold = verdict_threshold(gates)
    judge_model = run_judge_model(record.snapshot)
    scale = run_judge_scale(record.snapshot)
    anytime = isinstance(record.snapshot.get("sequential"), dict)
    if cells.empty:
        empty = pd.DataFrame()
        return RunAnalysis(
            record, cells, None, threshold, empty, empty, (), judge_model, scale, anytime
        )
    if anytime:  # rows in the order the batches added them: the anytime rule reads them so
        order = {str(c.get("id")): i for i, c in enumerate(record.snapshot.get("cases", []))}
        cells = cells.assign(batch=[order.get(str(r), len(order)) for r in cells["row_id"]])
    variants = [str(v) for v in dict.fromkeys(cells["variant"])]
    if baseline is not None and baseline not in variants:
        raise ConfigError(
            f"run {record.id} has no variant {baseline!r}; its variants: {', '.join(variants)}"
        )
    wanted = baseline or suite.get("baseline")
    # The suite's baseline may have no cell in a run stopped early: compare with the first
    # variant, but gate against the real baseline (its gates then lack evidence, never pass).
    chosen = wanted if wanted in variants else variants[0]
    found = comparisons(cells, chosen, threshold=threshold, seed=seed, scale=scale, anytime=anytime)
    gated = wanted or chosen
    results = (
        tuple(evaluate_gates(cells, gated, gates, seed=seed, scale=scale, anytime=anytime))
        if gates
        else ()
    )
    return RunAnalysis(
        record, cells, chosen, threshold, comparison_frame(found), variant_frame(cells),
        results, judge_model, scale, anytime, pairwise_frame(cells, chosen, seed=seed),
    )  # fmt: skip
