"""A stored run as tables for the Results page, the gates, the charts and the reports.

`load_cells` joins results, scores and human reviews into one row per cell, with the
human override applied to the judge score (and marked). Everything downstream
aggregates these frames: charts never see more rows than variants x categories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from promptdeck.analysis.report import cell_rows
from promptdeck.analysis.stats import Comparison, compare, compare_pass_rates
from promptdeck.store.sqlite import Store

ALL = "(all)"


def load_cells(store: Store, run_id: str) -> pd.DataFrame:
    """One row per (row, variant, repeat): answer, timings, cost, judge (override applied)."""
    scores = store.scores(run_id)
    cells = pd.DataFrame(cell_rows(run_id, store.results(run_id), scores))
    if cells.empty:
        return cells
    pairwise = {
        (s["row_id"], s["variant"], s["repeat"]): s["value"]
        for s in scores
        if s["scorer"] == "pairwise"
    }
    reviews = store.reviews(run_id)
    keys = list(zip(cells["row_id"], cells["variant"], cells["repeat"], strict=True))
    cells["pairwise"] = [pairwise.get(k) for k in keys]
    cells["judge_raw"] = cells["judge_score"]
    overrides = [reviews.get(k, {}).get("score_override") for k in keys]
    cells["overridden"] = [o is not None for o in overrides]
    cells["judge_score"] = [
        o if o is not None else j for o, j in zip(overrides, cells["judge_raw"], strict=True)
    ]
    cells["thumbs"] = [reviews.get(k, {}).get("thumbs") for k in keys]
    cells["note"] = [reviews.get(k, {}).get("note") for k in keys]
    cells["failed"] = cells["error"].notna()
    return cells


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
) -> list[Comparison]:
    """Each variant against the baseline on the same rows: overall, then per category."""
    per_case = case_scores(cells, metric)
    out = []
    for variant in sorted(set(per_case["variant"]) - {baseline}):
        for category in [None, *sorted(set(per_case["category"]))]:
            scope = per_case if category is None else per_case[per_case["category"] == category]
            base, mine = _scores(scope, baseline), _scores(scope, variant)
            out.append(
                compare(
                    base[0],
                    mine[0],
                    errors_baseline=base[1],
                    errors_variant=mine[1],
                    threshold=threshold,
                    seed=seed,
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
        ci = c.boot
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
                "excluded_unscored": c.excluded_unscored,
                "excluded_errors": c.excluded_errors,
                "summary": c.summary,
            }
        )
    return pd.DataFrame(rows)


def variant_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """Per variant: answers, errors, mean score, TTFT/latency p50/p95, cost per answer."""
    ok = cells[~cells["failed"]]
    fresh = ok[ok["cached"] == 0]
    rows = []
    for variant, mine in cells.groupby("variant"):
        good, live = ok[ok["variant"] == variant], fresh[fresh["variant"] == variant]
        costs = pd.to_numeric(mine["cost_usd"], errors="coerce")
        rows.append(
            {
                "variant": variant,
                "answers": len(mine),
                "errors": int(mine["failed"].sum()),
                "score": pd.to_numeric(good["judge_score"], errors="coerce").mean(),
                "unscored": int(good["judge_score"].isna().sum()),
                "ttft_p50": live["ttft_ms"].quantile(0.5),
                "ttft_p95": live["ttft_ms"].quantile(0.95),
                "latency_p50": live["latency_ms"].quantile(0.5),
                "latency_p95": live["latency_ms"].quantile(0.95),
                "cost_per_answer": None if costs.isna().any() else costs.mean(),
                "check_pass_rate": good["checks_passed"].sum() / good["checks_total"].sum()
                if good["checks_total"].sum()
                else None,
            }
        )
    return pd.DataFrame(rows)


def score_distribution(cells: pd.DataFrame) -> pd.DataFrame:
    """How many answers got each judge score, per variant (unscored counted apart)."""
    numbers = pd.to_numeric(cells["judge_score"], errors="coerce").round()
    labels = [("unscored" if pd.isna(v) else str(int(v))) for v in numbers]
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


def run_report(store: Store, run_id: str, baseline: str | None = None) -> dict[str, Any]:
    """Everything the HTML and Markdown reports need, computed once."""
    from promptdeck.analysis.gates import evaluate_gates

    record = store.get_run(run_id)
    cells = load_cells(store, run_id)
    suite = record.snapshot.get("suite", {})
    baseline = baseline or suite.get("baseline") or str(cells["variant"].iloc[0])
    gates = suite.get("gates", [])
    table = comparison_frame(comparisons(cells, baseline))
    return {
        "title": f"{record.name}: variants vs {baseline}",
        "run": {"id": record.id, "created": record.created, "name": record.name},
        "headlines": table[table["category"] == ALL] if not table.empty else table,
        "comparisons": table,
        "variants": variant_frame(cells),
        "dist": score_distribution(cells),
        "gates": evaluate_gates(cells, baseline, gates) if gates else [],
        "examples": examples(cells, baseline, record.snapshot.get("cases", [])),
    }


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
