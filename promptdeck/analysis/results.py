"""Tables computed from a run's cells (`analysis.cells.load_cells`) for the Results page,
the reports and the CLI: comparisons with the baseline, per-variant summaries, score
distributions, examples, check flips. Everything aggregates the cells: charts never see
more rows than variants x categories.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from promptdeck.analysis.stats import (
    Comparison,
    compare,
    compare_pass_rates,
    percentile,
    score_scale,
)

ALL = "(all)"
FAMILY_ALPHA = 0.05  # shared by the categories of one variant


def case_scores(cells: pd.DataFrame, metric: str = "judge_score") -> pd.DataFrame:
    """Per (row, variant): the mean of `metric` over repeats, and `flaky` when the repeats'
    verdicts differ (only possible with k >= 2 repeats)."""
    scored = cells.assign(value=pd.to_numeric(cells[metric], errors="coerce"))
    grouped = scored.groupby(["row_id", "category", "variant"], dropna=False)
    out = grouped.agg(
        value=("value", "mean"),
        repeats=("value", "size"),
        low=("value", "min"),
        high=("value", "max"),
        failed=("failed", "all"),
    ).reset_index()
    out["flaky"] = out["low"] != out["high"]  # NaN != NaN is True: guard below
    out.loc[out["low"].isna(), "flaky"] = False
    return out.drop(columns=["low", "high"])


def comparisons(
    cells: pd.DataFrame,
    baseline: str,
    *,
    metric: str = "judge_score",
    threshold: float = 0.2,
    seed: int = 0,
    scale: tuple[float, float] | None = None,
    anytime: bool = False,
) -> list[Comparison]:
    """Each variant against the baseline on the same rows: overall, then per category.

    The overall comparison is at 95%; the k per-category comparisons of a variant form one
    family, each at 1 − 0.05/k (Bonferroni, as the gates' families). With no change in
    any of 5 categories, bench/validity.py measured some category reading "better" or
    "worse" in 0.0–1.3% of runs (unadjusted 95% bootstrap intervals: up to 42.6%).
    `scale` is the judge's [low, high] (None: [1, 5] widened to every score seen);
    `anytime` reads confidence sequences over the rows in the order they were run (see
    `stats.compare`).
    """
    per_case = case_scores(cells, metric)
    categories = sorted(set(per_case["category"]))
    resolved = score_scale(scale, per_case["value"])
    order = [str(r) for r in dict.fromkeys(cells["row_id"])]
    out = []
    for variant in sorted(set(per_case["variant"]) - {baseline}):
        for category in [None, *categories]:
            scope = per_case if category is None else per_case[per_case["category"] == category]
            base, mine = _scores(scope, baseline), _scores(scope, variant)
            family = len(categories) if category is not None else 1
            out.append(
                compare(
                    base[0],
                    mine[0],
                    errors_baseline=base[1],
                    errors_variant=mine[1],
                    threshold=threshold,
                    seed=seed,
                    level=1.0 - FAMILY_ALPHA / family,
                    scale=resolved,
                    anytime=anytime,
                    order=order,
                    variant_name=variant,
                    baseline_name=baseline,
                    category=category,
                )
            )
    return out


def _scores(scope: pd.DataFrame, variant: str) -> tuple[dict[str, float | None], set[str]]:
    mine = scope[scope["variant"] == variant]
    values = {
        str(r): (None if v != v else float(v))
        for r, v in zip(mine["row_id"], mine["value"], strict=True)
    }
    errors = {str(r) for r, f in zip(mine["row_id"], mine["failed"], strict=True) if f}
    return values, errors


def comparison_frame(items: Sequence[Comparison]) -> pd.DataFrame:
    """Comparisons as a small table: one row per (variant, category)."""
    rows: list[dict[str, Any]] = []
    for c in items:
        ci = c.ci
        rows.append(
            {
                "variant": c.variant,
                "category": c.category or ALL,
                "n": c.n,
                "delta": c.delta,
                "low": ci.low if ci else None,
                "high": ci.high if ci else None,
                "wins": c.wins,
                "ties": c.ties,
                "losses": c.losses,
                "verdict": c.verdict,
                "mean_baseline": c.mean_baseline,
                "mean_variant": c.mean_variant,
                "p_sign": c.p_sign,
                "p_wilcoxon": c.p_wilcoxon,
                "mde": c.mde,
                "sd": c.sd,
                "level": c.level,
                "excluded_unscored": c.excluded_unscored,
                "excluded_errors": c.excluded_errors,
                "summary": c.summary,
            }
        )
    return pd.DataFrame(rows)


def variant_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """Per variant, the one summary every view shows (Results, reports, the CLI):

    cells, errors, cached, fallback; the mean judge score over scored answers (`score`,
    with `scored` and `unscored` counted, never 0); TTFT and latency p50/p95 of the answers
    (cells without an error; a cached answer carries the latency measured when it was first
    made); mean output tokens; total cost and cost per cell (None when any is unknown);
    checks passed of checks run on answers.
    """
    rows = []
    for variant, mine in cells.groupby("variant", sort=True):
        answers = mine[~mine["failed"]]
        judge = pd.to_numeric(answers["judge_score"], errors="coerce")
        judged = answers["judge_reason"].notna()
        costs = pd.to_numeric(mine["cost_usd"], errors="coerce")
        checks_total = int(answers["checks_total"].sum())
        checks_passed = int(answers["checks_passed"].sum())
        tokens = pd.to_numeric(answers["output_tokens"], errors="coerce").dropna()
        ttft = pd.to_numeric(answers["ttft_ms"], errors="coerce")
        latency = pd.to_numeric(answers["latency_ms"], errors="coerce")
        rows.append(
            {
                "variant": variant,
                "cells": len(mine),
                "errors": int(mine["failed"].sum()),
                "cached": int(mine["cached"].astype(bool).sum()),
                "fallback": int(mine["fallback_used"].astype(bool).sum()),
                "score": judge.mean() if judge.notna().any() else None,
                "scored": int(judge.notna().sum()),
                "unscored": int((judged & judge.isna()).sum()),
                "ttft_p50": percentile(ttft, 50),
                "ttft_p95": percentile(ttft, 95),
                "latency_p50": percentile(latency, 50),
                "latency_p95": percentile(latency, 95),
                "tokens_out": float(tokens.mean()) if not tokens.empty else None,
                "cost_total": None if costs.isna().any() else float(costs.sum()),
                "cost_per_answer": None if costs.isna().any() else float(costs.mean()),
                "checks_passed": checks_passed,
                "checks_total": checks_total,
                "check_pass_rate": checks_passed / checks_total if checks_total else None,
            }
        )
    return pd.DataFrame(rows)


def score_distribution(cells: pd.DataFrame) -> pd.DataFrame:
    """How many answers got each judge score, per variant (unscored counted apart). Whole
    scores count as they are; continuous ones (an expected score) in half-point bins,
    labelled by their range, e.g. "2–2.5"."""
    numbers = pd.to_numeric(cells["judge_score"], errors="coerce")
    whole = bool((numbers.dropna() % 1 == 0).all())

    def label(v: float) -> str:
        if pd.isna(v):
            return "unscored"
        if whole:
            return str(int(v))
        low = math.floor(v * 2) / 2
        return f"{low:g}–{low + 0.5:g}"

    labels = [label(v) for v in numbers]
    scored = cells.assign(score=labels)[~cells["failed"]]
    return scored.groupby(["variant", "score"]).size().reset_index(name="answers")


def run_changes(now: pd.DataFrame, then: pd.DataFrame, variant: str) -> pd.DataFrame:
    """One variant in two runs, case by case: score then and now, and whether the answer
    changed. Rows in only one of the runs are listed with the other side empty."""

    def side(cells: pd.DataFrame) -> pd.DataFrame:
        mine = cells[(cells["variant"] == variant) & (cells["repeat"] == 0)]
        return mine.set_index("row_id")[["category", "judge_score", "output", "error"]]

    a, b = side(then), side(now)
    both = a.join(b, how="outer", suffixes=("_then", "_now"))
    out = pd.DataFrame(
        {
            "category": both["category_now"].fillna(both["category_then"]),
            "score then": pd.to_numeric(both["judge_score_then"], errors="coerce"),
            "score now": pd.to_numeric(both["judge_score_now"], errors="coerce"),
            "answer changed": both["output_then"] != both["output_now"],
            "error now": both["error_now"].fillna(""),
        }
    )
    out["change"] = out["score now"] - out["score then"]
    return out.reset_index().sort_values("change", na_position="last")


def examples(
    cells: pd.DataFrame, baseline: str, cases: Sequence[dict[str, Any]], k: int = 3
) -> list[dict[str, Any]]:
    """The k biggest wins and k biggest losses of each variant against the baseline."""
    inputs = {str(c.get("id")): str(c.get("input", "")) for c in cases}
    first = cells[cells["repeat"] == 0].set_index(["row_id", "variant"])
    per_case = case_scores(cells)
    wide = per_case.pivot(index=["row_id", "category"], columns="variant", values="value")
    out: list[dict[str, Any]] = []
    for variant in [v for v in wide.columns if v != baseline]:
        deltas = (wide[variant] - wide[baseline]).dropna().sort_values(kind="stable")
        picks = [*deltas.tail(k)[::-1].items(), *deltas.head(k).items()]
        for (row_id, category), delta in dict(picks).items():
            if delta == 0:
                continue
            out.append(
                {
                    "row_id": row_id,
                    "category": category,
                    "variant": variant,
                    "delta": delta,
                    "question": inputs.get(row_id, ""),
                    "baseline_answer": first.loc[(row_id, baseline), "output"],
                    "variant_answer": first.loc[(row_id, variant), "output"],
                    "baseline_score": wide.loc[(row_id, category), baseline],
                    "variant_score": wide.loc[(row_id, category), variant],
                }
            )
    return out


def check_comparisons(cells: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per variant: the share of answers that pass all their checks, against the baseline's
    on the same rows, with McNemar's exact test on the rows that flipped (first repeat)."""
    first = cells[(cells["repeat"] == 0) & ~cells["failed"] & (cells["checks_total"] > 0)]
    passed = {
        v: dict(zip(g["row_id"], g["checks_passed"] == g["checks_total"], strict=True))
        for v, g in first.groupby("variant")
    }
    rows = []
    for variant in sorted(set(passed) - {baseline}):
        c = compare_pass_rates(passed.get(baseline, {}), passed[variant])
        rows.append(
            {
                "variant": variant,
                "rows": c.n,
                "baseline pass rate": c.rate_baseline,
                "variant pass rate": c.rate_variant,
                "change": c.delta,
                "pass→fail": c.b,
                "fail→pass": c.c,
                "McNemar p": c.p,
            }
        )
    return pd.DataFrame(rows)


def check_pass_rates(scores: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Each check's pass rate per variant (first repeat): one row per check, one column per
    variant; empty when the run has no checks."""
    rows = [
        {"check": s["scorer"].removeprefix("check:"), "variant": s["variant"], "pass": s["passed"]}
        for s in scores
        if s["scorer"].startswith("check:") and s["repeat"] == 0 and s["passed"] is not None
    ]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    frame["pass"] = frame["pass"].astype(float)
    return frame.pivot_table(index="check", columns="variant", values="pass", sort=False)


def case_table(cells: pd.DataFrame, baseline: str, variant: str) -> pd.DataFrame:
    """One row per case: the baseline's and the variant's scores (means over repeats), the
    delta, and whether the variant's verdicts differ across repeats (`flaky`) or either
    side errored (`error`); sorted from the worst regression."""
    per_case = case_scores(cells)
    wide = per_case.pivot(index=["row_id", "category"], columns="variant", values="value")
    flaky = per_case.set_index(["row_id", "variant"])["flaky"]
    failed = cells.groupby(["row_id", "variant"])["failed"].any()
    cases = pd.DataFrame({"baseline": wide.get(baseline), "variant": wide.get(variant)})
    cases["delta"] = cases["variant"] - cases["baseline"]
    cases = cases.reset_index()

    def lookup(series: pd.Series[Any], name: str) -> npt.NDArray[np.bool_]:
        index = pd.MultiIndex.from_arrays([cases["row_id"], [name] * len(cases)])
        found = series.reindex(index, fill_value=False)
        return np.asarray(found, dtype=np.bool_)

    cases["flaky"] = lookup(flaky, variant)
    cases["error"] = lookup(failed, variant) | lookup(failed, baseline)
    return cases.sort_values("delta", na_position="last")


def filter_cases(
    cases: pd.DataFrame,
    *,
    category: str = ALL,
    regressions: bool = False,
    unscored: bool = False,
    errors: bool = False,
) -> pd.DataFrame:
    """The Results page's case filters: a category, regressions (delta < 0), unscored
    answers that did not error, errored cases."""
    if category != ALL:
        cases = cases[cases["category"] == category]
    if regressions:
        cases = cases[cases["delta"] < 0]
    if unscored:
        cases = cases[cases["variant"].isna() & ~cases["error"]]
    if errors:
        cases = cases[cases["error"]]
    return cases
