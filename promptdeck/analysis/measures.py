"""The absolute gates' measures: one value of a variant's cells against a fixed limit.

    error_rate           errored cells / all cells
    check_pass_rate      checks passed / checks run, over answers
    latency_p95_ms       95th percentile (linear) of the answers' latency
    cost_per_answer_usd  mean cost of an answer; with unknown costs, a lower bound
    confidence           mean `confidence` of the answers

error_rate counts cells (every repeat); the others use answers (cells without an error),
with the errored cells left out and counted. No data is no value (insufficient evidence).
"""

from __future__ import annotations

import pandas as pd

from promptdeck.analysis.stats import percentile

Measure = tuple[float | None, str, str, bool]  # value, observed, note, exact


def error_rate(mine: pd.DataFrame) -> Measure:
    errors, n = int(mine["errored"].sum()), len(mine)
    return errors / n, f"{errors / n:.1%} ({errors} of {n} cells)", "", True


def _answers(mine: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    errors = int(mine["errored"].sum())
    return mine[~mine["errored"]], f", {errors} errored cells left out" if errors else ""


def check_pass_rate(mine: pd.DataFrame) -> Measure:
    answers, excluded = _answers(mine)
    passed, total = int(answers["checks_passed"].sum()), int(answers["checks_total"].sum())
    if total == 0:
        return None, f"no checks{excluded}", "no check ran on an answer", True
    return passed / total, f"{passed / total:.1%} ({passed} of {total} checks){excluded}", "", True


def latency_p95(mine: pd.DataFrame) -> Measure:
    answers, excluded = _answers(mine)
    latency = answers["latency_ms"].dropna()
    p95 = percentile(latency, 95)
    if p95 is None:
        return None, f"no latency{excluded}", "no answer has a measured latency", True
    return p95, f"{p95:.0f} ms (n={len(latency)}){excluded}", "", True


def cost_per_answer(mine: pd.DataFrame) -> Measure:
    answers, excluded = _answers(mine)
    costs = answers["cost_usd"]
    n, unknown = len(costs), int(costs.isna().sum())
    if n == 0:
        return None, f"no answers{excluded}", "every cell errored", True
    value = float(costs.sum()) / n  # NaN is skipped: with unknowns, a lower bound
    if unknown:
        observed = f"≥ ${value:.3g} per answer ({unknown} of {n} costs unknown){excluded}"
        return value, observed, "no price is known for some answers' model", False
    return value, f"${value:.3g} per answer (n={n}){excluded}", "", True


def confidence(mine: pd.DataFrame) -> Measure:
    if "confidence" not in mine.columns:
        return None, "-", "the run records no confidence", True
    answers, excluded = _answers(mine)
    values = answers["confidence"].dropna()
    if values.empty:
        return None, f"no confidence{excluded}", "no answer has a confidence", True
    mean = float(values.mean())
    return mean, f"{mean:.2f} (n={len(values)}){excluded}", "", True


MEASURES = {
    "error_rate": error_rate,
    "check_pass_rate": check_pass_rate,
    "latency_p95_ms": latency_p95,
    "cost_per_answer_usd": cost_per_answer,
    "confidence": confidence,
}
