"""Release gates: a suite's `gates:` evaluated on one run, per variant.

Each gate gives each gated variant one of three answers: "pass", "fail" or
"insufficient evidence". Insufficient evidence is never a pass: it means this run cannot
tell, and the reason says what would (more rows: about how many; a working judge; known
prices).

Which variants. Every gate applies to each variant except the baseline: the baseline is
what runs in production now, and a gate asks whether a change may ship. Without a
baseline, the absolute gates apply to every variant and comparative gates are
insufficient evidence.

Repeats. With k repeats, a row's judge score (or pairwise value) for a variant is the mean
of its scored, non-errored repeats; a row whose repeats all errored is an errored row,
one with no scored repeat an unscored row. Both are left out and counted, never 0.

Interval gates: `judge_score` (`max_drop: m`, `min: s`) and `win_rate` (`min: w`).
Each is decided on an interval [L, U] of a mean, with 2.5% error on each side:
    judge_score max_drop  the mean over paired rows of Δ = variant − baseline; pass if
                          L ≥ −m, fail if U < −m
    judge_score min       the variant's mean score; pass if L ≥ s, fail if U < s
    win_rate min          the variant's mean pairwise value against the baseline (win 1,
                          tie 0.5, loss 0); pass if L ≥ w, fail if U < w
    otherwise, and with fewer than 10 rows: insufficient evidence
So "pass" means a drop larger than m (a mean below s, a win rate below w) is ruled out at
97.5%, and "fail" that the truth is beyond the limit at 97.5%.

The interval (`stats.mean_ci`, `analysis.bounds`) uses only that scores lie on the
judge's scale [lo, hi] (so Δ lies in ±(hi − lo), a pairwise value in [0, 1]): the Gaffke
bound, a Bayesian bootstrap with the scale's worst value added as one more row. Why:
- a percentile bootstrap or a t interval is built from the sample alone and cannot reach
  a drop the sample happens not to contain: ten tied rows gave "+0.00 (95% CI +0.00 to
  +0.00)" and passed `max_drop: 0`, although 0 losses in 10 rows is consistent with up
  to 31% of rows losing. A variance floor or a minimum sd has the same blind spot unless
  it grows with the scale and shrinks with n, which is what the added row does, exactly:
  for n tied rows the bound is the Clopper–Pearson bound on the share of rows at the
  scale's end (ten tied rows on [1, 5]: L = −1.2);
- it needs no shape: judge deltas are symmetric, mostly ties with a few drops of 2–3,
  fractions (repeats), or 0/1, and a change that breaks a few rows looks, in most small
  samples, exactly like one that breaks none.
bench/validity.py (2,000 simulations per cell, n = 10 to 200, six shapes of deltas on
[1, 5] with m = 0.2 and pass/fail on [0, 1] with m = 0.1) measured, for this rule: false
pass at the margin 0.0–1.8% (the old percentile bootstrap: 2.8–59.8%), false fail with
no change 0.0–0.1%; families of 2 or 5 categories at the margin, any false pass 0.0–1.3%
(old: 3.6–80.2%); `min` gates 0.0–1.7% false pass, 0.0–2.8% false fail. The price is
rows: the interval covered the true mean in 99–100% of runs up to 60 rows on [1, 5]
(98–99% at 200; 96.7–100% on [0, 1]), not 95%, and a harmless change passed `max_drop:
0.2` on [1, 5] in 0–15% of runs at 60 rows and 70–100% at 200. Ruling out a 0.2 drop on
[1, 5] takes about 75 tied rows and about 250 rows whose deltas have sd 1
(`planning.rows_needed`; at the planned size a harmless change passed in 81–100% of
runs). An interval with 93–97% coverage at 20–30 rows passes falsely: the old rule
covered 93–94% on "noise + −4" (the symmetric shape, with 5% of rows dropping 4 points
at the margin) and passed it at the margin in 6–7% of runs.

`scale` is the judge's [low, high] from the suite (`judge.scale`); without it, [1, 5]
widened to every score seen (`stats.score_scale`). `anytime=True` decides on a
confidence sequence instead (`analysis.bounds.cs_bounds`, over the rows in the order they
were run: a `batch` column if the cells have one, else their order in `cells`), so a run
that adds rows in batches and looks after each one keeps the same error however often
it looks. Measured with a look after every 10 rows up to 200: ever a false pass at the
margin 0.4–1.8% (the fixed-n rule used at every look: 1.6–8.0%); a harmless change used
100–162 rows on average (an undecided run counts 200) and passed by 200 rows in 45–100%
of runs (one look at 200 rows: 73–100%).

Families. `category: X` evaluates the gate on the rows of X only (any metric);
`category: each` is one gate per category in the run. The interval gates that name a
category form one family per variant: with k of them, each side of each interval is at
2.5%/k (Bonferroni), so across the family a false pass, or a false fail, has at most the
error of a single gate.

`on: mean` (judge_score only) judges the point estimate instead, without error control:
pass if Δ ≥ −m (the mean ≥ s), else fail (no pairs: insufficient evidence).

Absolute gates compare the run's observed value with the limit (`analysis.measures`):
    error_rate max, check_pass_rate min, latency_p95_ms max, cost_per_answer_usd max
    (with unknown costs: fail if the known costs alone exceed the limit, else
    insufficient evidence), confidence min (absent: insufficient). No data for a gate is
    insufficient evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd

from promptdeck.analysis.gate_spec import Gate, parse_gates
from promptdeck.analysis.gate_spec import parse_gate as parse_gate  # the one validator
from promptdeck.analysis.measures import MEASURES
from promptdeck.analysis.planning import default_sd, rows_needed
from promptdeck.analysis.stats import (
    MIN_PAIRS,
    Interval,
    ci_label,
    compare,
    left_out,
    mean_ci,
    score_scale,
)

Status = Literal["pass", "fail", "insufficient evidence"]
Outcome = tuple[Status, str, str]  # status, observed, reason
INSUFFICIENT: Status = "insufficient evidence"
COLUMNS = ("row_id", "category", "variant", "repeat", "error", "latency_ms", "cost_usd",
           "judge_score", "checks_passed", "checks_total")  # fmt: skip
EACH = "each"
ALPHA = 0.05
_EPS = 1e-9  # a value on the limit counts as on it, whatever the float rounding


@dataclass(frozen=True)
class GateResult:
    gate: str
    variant: str
    status: Status
    observed: str
    reason: str


@dataclass(frozen=True)
class _Run:
    """What every gate of one evaluation shares."""

    frame: pd.DataFrame
    baseline: str | None
    scale: tuple[float, float]  # of judge scores, resolved once
    order: tuple[str, ...]  # row ids in the order they were run
    anytime: bool
    seed: int


def evaluate_gates(
    cells: pd.DataFrame,
    baseline: str | None,
    gates: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
    scale: tuple[float, float] | None = None,
    anytime: bool = False,
) -> list[GateResult]:
    """Every gate for every gated variant (module docstring), in gate then variant order."""
    frame = _prepare(cells)
    categories = sorted({c for c in frame["category"] if c is not None})
    parsed: list[Gate] = []
    for gate in parse_gates(gates):
        each = gate.category == EACH and categories
        parsed += [replace(gate, category=c) for c in categories] if each else [gate]
    family = sum(1 for g in parsed if g.interval and g.category is not None)
    variants = [str(v) for v in dict.fromkeys(frame["variant"]) if v != baseline]
    run = _Run(
        frame, baseline, score_scale(scale, frame["judge_score"]), _run_order(frame), anytime,
        seed,
    )  # fmt: skip
    results = []
    for gate in parsed:
        size = family if gate.interval and gate.category is not None else 1
        if not variants:
            reason = "the run has no variant to gate besides the baseline"
            results.append(GateResult(gate.name, "", INSUFFICIENT, "-", reason))
        for variant in variants:
            outcome = _evaluate(gate, run, variant, size)
            results.append(GateResult(gate.name, variant, *outcome))
    return results


def overall_status(results: Sequence[GateResult]) -> Status:
    """Any fail → fail; else any insufficient evidence → that; else pass (also: no gates)."""
    statuses = {r.status for r in results}
    return "fail" if "fail" in statuses else INSUFFICIENT if INSUFFICIENT in statuses else "pass"


def _prepare(cells: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in cells.columns]
    if missing:
        raise ValueError(f"the cells lack the columns {', '.join(missing)}")
    frame = cells.copy()
    frame["errored"] = [not pd.isna(e) and str(e) != "" for e in cells["error"]]
    categories = [None if pd.isna(c) else str(c) for c in cells["category"]]
    frame["category"] = pd.Series(categories, index=cells.index, dtype=object)
    frame["row_id"] = [str(r) for r in cells["row_id"]]
    numeric = ["latency_ms", "cost_usd", "judge_score", "checks_passed", "checks_total"]
    numeric += [c for c in ("confidence", "pairwise") if c in cells.columns]
    for column in numeric:
        frame[column] = pd.to_numeric(cells[column]).astype("float64")
    return frame


def _run_order(frame: pd.DataFrame) -> tuple[str, ...]:
    """Row ids in the order they were run: by `batch` if the cells have it, else by first
    appearance (load_cells lists results in the order they were stored)."""
    rows = frame[["row_id"]]
    if "batch" in frame.columns:
        rows = rows.assign(batch=pd.to_numeric(frame["batch"])).sort_values(["batch", "row_id"])
    return tuple(dict.fromkeys(rows["row_id"]))


def _evaluate(gate: Gate, run: _Run, variant: str, family: int) -> Outcome:
    frame = run.frame
    scope = frame if gate.category is None else frame[frame["category"] == gate.category]
    if scope.empty:
        return INSUFFICIENT, "-", f"the run has no cells in category {gate.category!r}"
    level = 1.0 - ALPHA / family
    if gate.kind == "max_drop":
        return _judge_drop(gate, scope, variant, run, level, family)
    mine = scope[scope["variant"] == variant]
    if mine.empty:
        return INSUFFICIENT, "-", "the variant has no cells here"
    if gate.metric == "judge_score":
        return _mean_gate(gate, mine, run, level, family, "judge_score", run.scale)
    if gate.metric == "win_rate":
        return _win_rate(gate, mine, run, level, family)
    measure = MEASURES[gate.metric](mine)
    return _decide_limit(gate, *measure)


def _row_scores(
    mine: pd.DataFrame, column: str = "judge_score"
) -> tuple[dict[str, float | None], set[str]]:
    """Per row: the mean of `column` over its scored, non-errored repeats; errored rows."""
    answers = mine[~mine["errored"]]
    means = answers.groupby("row_id", sort=True)[column].mean()  # NaN: none scored
    scores = {str(r): (None if v != v else float(v)) for r, v in means.items()}
    errored = {str(r) for r in mine["row_id"].unique() if str(r) not in scores}
    return scores, errored


def _judge_drop(
    gate: Gate, scope: pd.DataFrame, variant: str, run: _Run, level: float, family: int
) -> Outcome:
    if run.baseline is None:
        return INSUFFICIENT, "-", "the suite names no baseline to compare with"
    base = scope[scope["variant"] == run.baseline]
    if base.empty:
        return INSUFFICIENT, "-", f"the baseline {run.baseline} has no cells here"
    (base_scores, base_errors), (var_scores, var_errors) = map(
        _row_scores, (base, scope[scope["variant"] == variant])
    )
    result = compare(
        base_scores, var_scores, errors_baseline=base_errors, errors_variant=var_errors,
        seed=run.seed, level=level, scale=run.scale, anytime=run.anytime, order=run.order,
        variant_name=variant, baseline_name=run.baseline, category=gate.category,
    )  # fmt: skip
    target = 0.0 - gate.limit
    status, reason = _decide_interval(gate, result.delta, result.ci, target, "+.2f", result.n)
    if status == INSUFFICIENT and result.delta is not None and gate.on == "ci":
        reason += _more_rows(gate, run, result.n, result.sd, result.delta, family)
    return status, result.estimate, reason


def _mean_gate(
    gate: Gate,
    mine: pd.DataFrame,
    run: _Run,
    level: float,
    family: int,
    column: str,
    scale: tuple[float, float],
    counts: str = "",
) -> Outcome:
    """A `min` gate on the mean of per-row values (judge scores, pairwise values)."""
    scores, errored = _row_scores(mine, column)
    values = [v for r in run.order if (v := scores.get(r)) is not None]
    excluded = left_out(len(scores) - len(values), len(errored))
    what = "the judge scored no answer here" if column == "judge_score" else "no row was compared"
    if not values:
        return INSUFFICIENT, f"no scored rows{excluded}", what
    ci = mean_ci(
        values, low=scale[0], high=scale[1], level=level, seed=run.seed, anytime=run.anytime
    )
    assert ci is not None  # values is not empty
    label = ci_label(level, run.anytime)
    observed = f"{ci.mean:.2f} ({label} {ci.low:.2f} to {ci.high:.2f}), n={len(values)}"
    status, reason = _decide_interval(gate, ci.mean, ci, gate.limit, ".2f", len(values))
    if status == INSUFFICIENT and gate.on == "ci":
        sd = float(pd.Series(values).std()) if len(values) >= 2 else None
        reason += _more_rows(gate, run, len(values), sd, ci.mean, family, scale)
    return status, f"{observed}{counts}{excluded}", reason


def _win_rate(gate: Gate, mine: pd.DataFrame, run: _Run, level: float, family: int) -> Outcome:
    if run.baseline is None:
        return INSUFFICIENT, "-", "the suite names no baseline to compare with"
    if "pairwise" not in mine.columns or mine["pairwise"].isna().all():
        return INSUFFICIENT, "-", "no pairwise verdicts here (the suite's judge mode: pairwise)"
    scores, _ = _row_scores(mine, "pairwise")
    values = [v for v in scores.values() if v is not None]
    wins, losses = sum(v > 0.5 for v in values), sum(v < 0.5 for v in values)
    counts = f": {wins} won, {len(values) - wins - losses} tied, {losses} lost"
    return _mean_gate(gate, mine, run, level, family, "pairwise", (0.0, 1.0), counts)


def _decide_interval(
    gate: Gate, estimate: float | None, ci: Interval | None, target: float, fmt: str, n: int
) -> tuple[Status, str]:
    """The three-way rule of the module docstring, on an estimate and its interval."""
    limit = f"{target:{fmt}}".replace("-", "−")
    if estimate is None or ci is None:
        return INSUFFICIENT, "no row is scored on both sides"
    if gate.on == "mean":
        if estimate >= target - _EPS:
            return "pass", f"the point estimate is at or above {limit}"
        return "fail", f"the point estimate is below {limit}"
    if ci.low is None or ci.high is None:
        return INSUFFICIENT, "no interval"
    if n < MIN_PAIRS:
        return INSUFFICIENT, f"only {n} rows: gates decide from {MIN_PAIRS}"
    if ci.low >= target - _EPS:
        return "pass", f"the whole CI is at or above {limit}"
    if ci.high < target - _EPS:
        return "fail", f"the whole CI is below {limit}"
    return INSUFFICIENT, f"the CI spans {limit}, so this run cannot tell"


def _more_rows(
    gate: Gate,
    run: _Run,
    n: int,
    sd: float | None,
    estimate: float,
    family: int,
    scale: tuple[float, float] | None = None,
) -> str:
    """'; to rule out a drop of 0.2 you need about 250 paired rows if nothing changed ...'"""
    if run.anytime:
        return "; add rows and look again: the anytime CI stays valid at every look"
    scale = scale or run.scale
    spread = (
        f"row sd {sd:.2f}" if sd is not None else f"assuming a row sd of {default_sd(scale):.2f}"
    )
    if gate.kind == "max_drop":
        need = rows_needed({"metric": gate.metric, "max_drop": gate.limit}, scale=scale, sd=sd,
                           family=family)  # fmt: skip
        if need is None:
            return "; no number of rows rules out every drop of a variant that changes nothing"
        return (f"; to rule out a drop of {gate.limit:g} you need about {need} paired rows if "
                f"nothing changed ({spread}); this run has {n}")  # fmt: skip
    need = rows_needed({"metric": gate.metric, "min": gate.limit}, scale=scale, sd=sd,
                       expected=estimate, family=family)  # fmt: skip
    if need is None:
        return "; the estimate is on the limit, so no number of rows is likely to decide it"
    side = "at or above" if estimate >= gate.limit else "below"
    return (f"; to show it is {side} {gate.limit:g} you need about {need} rows if the mean is "
            f"{estimate:.2f} as here ({spread}); this run has {n}")  # fmt: skip


def _decide_limit(
    gate: Gate, value: float | None, observed: str, note: str, exact: bool
) -> Outcome:
    if value is None:
        return INSUFFICIENT, observed, note
    word = "limit" if gate.kind == "max" else "minimum"
    ok, bad = ("at or below", "above") if gate.kind == "max" else ("at or above", "below")
    over = value > gate.limit + _EPS if gate.kind == "max" else value < gate.limit - _EPS
    if not exact:  # value is a lower bound (unknown costs)
        if over:
            return "fail", observed, f"the known part alone is above the limit {gate.limit:g}"
        return INSUFFICIENT, observed, note
    if over:
        return "fail", observed, f"{bad} the {word} {gate.limit:g}"
    return "pass", observed, f"{ok} the {word} {gate.limit:g}"
