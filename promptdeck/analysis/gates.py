"""Release gates: a suite's `gates:` evaluated on one run, per variant.

Each gate gives each gated variant one of three answers: "pass", "fail" or
"insufficient evidence". Insufficient evidence is never a pass: it means this run cannot
tell, and more rows (or a working judge, or known prices) would.

Which variants. Every gate applies to each variant except the baseline: the baseline is
what runs in production now, and a gate asks whether a change may ship. Without a
baseline, the absolute gates apply to every variant and comparative gates are
insufficient evidence.

Repeats. With k repeats, a row's judge score for a variant is the mean of its scored,
non-errored repeats; a row whose repeats all errored is an errored row, one with no
scored repeat an unscored row. Both are left out of judge gates and counted, never 0.
error_rate counts cells (every repeat); the other absolute gates use answers (cells
without an error), with the errored cells left out and counted.

The judge_score drop rule (`max_drop: m`). Δ is the mean over paired rows of
(variant − baseline) and [L, U] its 95% percentile bootstrap CI (2,000 resamples, seeded):
    pass                   L ≥ −m   the drop, if any, is at most m
    fail                   U < −m   the score drops by more than m
    insufficient evidence  otherwise (the CI contains −m), and with fewer than 10 pairs
                           (a percentile bootstrap of so few rows is too narrow: six
                           identical scores give the interval [0, 0])
This is a non-inferiority test with a margin, read both ways: pass and fail are each a
one-sided test at 2.5%, so a variant whose true drop is exactly m passes by chance about
2.5% of the time and fails about 2.5% of the time, and beyond the margin on either side
it errs less. A point-estimate rule would decide a variant at the margin by a coin toss,
and a rule that fails whenever the CI reaches below −m would fail most small runs of a
harmless change. So a visible drop whose CI still reaches above −m is "insufficient
evidence", not "fail" (and not a pass): the reason gives the smallest change the run can
detect (MDE), which says whether more rows would settle it.
`on: mean` judges the point estimate instead: pass if Δ ≥ −m, else fail (no pairs:
insufficient evidence). `judge_score` with `min: s` uses the same rule on the mean
score itself (pass if L ≥ s, fail if U < s).

Categories. `category: X` evaluates the gate on the rows of X only (any metric);
`category: each` is one gate per category in the run. The judge_score gates that name a
category form one family per variant: with k of them, their CIs are Bonferroni-widened
to 1 − 0.05/k, so that across the family a false pass or a false fail has at most the
error of a single gate. (Holm's step-down adjusts p-values and gives no simultaneous
intervals; these decisions are made on intervals, hence Bonferroni.)

Absolute gates compare the run's observed value with the limit:
    error_rate           max   errored cells / all cells
    check_pass_rate      min   checks passed / checks run, over answers
    latency_p95_ms       max   95th percentile (linear) of the answers' latency
    cost_per_answer_usd  max   mean cost of an answer; with unknown costs: fail if the
                               known costs alone exceed the limit, else insufficient evidence
    confidence           min   mean `confidence` of the answers (absent: insufficient)
No data for a gate is insufficient evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd

from promptdeck.analysis.stats import (
    MIN_PAIRS,
    compare,
    left_out,
    mean_ci_bootstrap,
    percent,
    percentile,
)
from promptdeck.errors import ConfigError

Status = Literal["pass", "fail", "insufficient evidence"]
Outcome = tuple[Status, str, str]  # status, observed, reason
INSUFFICIENT: Status = "insufficient evidence"
METRICS: dict[str, tuple[str, ...]] = {  # metric -> the limit keys it takes
    "judge_score": ("max_drop", "min"),
    "error_rate": ("max",),
    "check_pass_rate": ("min",),
    "latency_p95_ms": ("max",),
    "cost_per_answer_usd": ("max",),
    "confidence": ("min",),
}
COLUMNS = ("row_id", "category", "variant", "repeat", "error", "latency_ms", "cost_usd",
           "judge_score", "checks_passed", "checks_total")  # fmt: skip
EACH = "each"
ALPHA = 0.05
GATE_KEYS = ("metric", "max_drop", "min", "max", "category", "on")
_EPS = 1e-9  # a value on the limit counts as on it, whatever the float rounding


@dataclass(frozen=True)
class GateResult:
    gate: str
    variant: str
    status: Status
    observed: str
    reason: str


@dataclass(frozen=True)
class Gate:
    metric: str
    kind: str  # "max_drop" | "min" | "max"
    limit: float
    category: str | None = None
    on: str = "ci"  # "ci" | "mean"

    @property
    def name(self) -> str:
        """'judge_score drop ≤ 0.2 (billing)'."""
        op = {"max_drop": "drop ≤", "min": "≥", "max": "≤"}[self.kind]
        notes = [self.category] if self.category is not None else []
        notes += ["point estimate"] if self.on == "mean" else []
        return f"{self.metric} {op} {self.limit:g}" + (f" ({', '.join(notes)})" if notes else "")


def parse_gate(raw: object) -> Gate:
    """One gate as a suite declares it: the one validator, used when a suite is loaded (so a
    bad gate is refused before any call) and when a stored run's gates are evaluated.
    ConfigError says what is wrong; its `field` names the key at fault."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a gate is a mapping like {{metric: judge_score, max_drop: 0.2}}; "
                          f"got {raw!r}")  # fmt: skip
    unknown = [str(k) for k in raw if k not in GATE_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r}; allowed: {', '.join(GATE_KEYS)}", field=unknown[0]
        )
    metric = raw.get("metric")
    if metric not in METRICS:
        raise ConfigError(
            f"unknown metric {metric!r}; use one of {', '.join(METRICS)}", field="metric"
        )
    kinds = [k for k in ("max_drop", "min", "max") if raw.get(k) is not None]
    if len(kinds) != 1 or kinds[0] not in METRICS[metric]:
        given = ", ".join(kinds) or "none"
        raise ConfigError(
            f"{metric} takes exactly one of {', '.join(METRICS[metric])} (given: {given})",
            field=kinds[0] if kinds else "metric",
        )
    kind = kinds[0]
    limit = raw[kind]
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit):
        raise ConfigError(
            f"{kind} must be a number (a share as 0.02, not 2%); got {limit!r}", field=kind
        )
    if kind == "max_drop" and limit < 0:
        raise ConfigError("max_drop is a size of drop, so 0 or more", field=kind)
    on = raw.get("on")
    if on is not None and (metric != "judge_score" or on not in ("ci", "mean")):
        raise ConfigError("'on' is for judge_score gates: ci (default) or mean", field="on")
    category = raw.get("category")
    if category is not None and not isinstance(category, str | int):
        raise ConfigError(f"category must be a category name or 'each'; got {category!r}",
                          field="category")  # fmt: skip
    return Gate(metric, kind, float(limit), None if category is None else str(category), on or "ci")


def parse_gates(raw: Sequence[object]) -> list[Gate]:
    """Every gate of a stored run's snapshot (validated when its suite was loaded)."""
    out = []
    for i, gate in enumerate(raw):
        try:
            out.append(parse_gate(gate))
        except ConfigError as exc:
            where = f"gates[{i}]" + (f".{exc.field}" if exc.field else "")
            raise ConfigError(f"'{where}': {exc}", field=where) from None
    return out


def evaluate_gates(
    cells: pd.DataFrame,
    baseline: str | None,
    gates: Sequence[Mapping[str, Any]],
    *,
    seed: int = 0,
) -> list[GateResult]:
    """Every gate for every gated variant (module docstring), in gate then variant order."""
    frame = _prepare(cells)
    categories = sorted({c for c in frame["category"] if c is not None})
    parsed: list[Gate] = []
    for gate in parse_gates(gates):
        each = gate.category == EACH and categories
        parsed += [replace(gate, category=c) for c in categories] if each else [gate]
    family = sum(1 for g in parsed if g.metric == "judge_score" and g.category is not None)
    variants = [str(v) for v in dict.fromkeys(frame["variant"]) if v != baseline]
    results = []
    for gate in parsed:
        in_family = gate.metric == "judge_score" and gate.category is not None
        level = 1.0 - ALPHA / family if in_family else 1.0 - ALPHA
        if not variants:
            reason = "the run has no variant to gate besides the baseline"
            results.append(GateResult(gate.name, "", INSUFFICIENT, "-", reason))
        for variant in variants:
            outcome = _evaluate(gate, frame, variant, baseline, level, seed)
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
    for column in [*numeric, "confidence"] if "confidence" in cells.columns else numeric:
        frame[column] = pd.to_numeric(cells[column]).astype("float64")
    return frame


def _evaluate(
    gate: Gate, frame: pd.DataFrame, variant: str, baseline: str | None, level: float, seed: int
) -> Outcome:
    scope = frame if gate.category is None else frame[frame["category"] == gate.category]
    if scope.empty:
        return INSUFFICIENT, "-", f"the run has no cells in category {gate.category!r}"
    if gate.kind == "max_drop":
        return _judge_drop(gate, scope, variant, baseline, level, seed)
    mine = scope[scope["variant"] == variant]
    if mine.empty:
        return INSUFFICIENT, "-", "the variant has no cells here"
    if gate.metric == "judge_score":
        return _judge_min(gate, mine, level, seed)
    return _decide_limit(gate, *_MEASURES[gate.metric](mine))


def _row_scores(mine: pd.DataFrame) -> tuple[dict[str, float | None], set[str]]:
    """Per row: the mean judge score over its scored, non-errored repeats; errored rows."""
    answers = mine[~mine["errored"]]
    means = answers.groupby("row_id", sort=True)["judge_score"].mean()  # NaN: none scored
    scores = {str(r): (None if v != v else float(v)) for r, v in means.items()}
    errored = {str(r) for r in mine["row_id"].unique() if str(r) not in scores}
    return scores, errored


def _judge_drop(
    gate: Gate, scope: pd.DataFrame, variant: str, baseline: str | None, level: float, seed: int
) -> Outcome:
    if baseline is None:
        return INSUFFICIENT, "-", "the suite names no baseline to compare with"
    base = scope[scope["variant"] == baseline]
    if base.empty:
        return INSUFFICIENT, "-", f"the baseline {baseline} has no cells here"
    (base_scores, base_errors), (var_scores, var_errors) = map(
        _row_scores, (base, scope[scope["variant"] == variant])
    )
    result = compare(
        base_scores, var_scores, errors_baseline=base_errors, errors_variant=var_errors,
        seed=seed, level=level, variant_name=variant, baseline_name=baseline,
        category=gate.category,
    )  # fmt: skip
    low, high = (result.boot.low, result.boot.high) if result.boot else (None, None)
    status, reason = _decide_interval(
        gate, result.delta, low, high, 0.0 - gate.limit, "+.2f", n=result.n
    )
    if status == INSUFFICIENT and result.mde and low is not None and result.n >= MIN_PAIRS:
        reason += f"; it detects a change of {result.mde:.2f} or more (power 0.8): add rows"
    return status, result.estimate, reason


def _judge_min(gate: Gate, mine: pd.DataFrame, level: float, seed: int) -> Outcome:
    scores, errored = _row_scores(mine)
    values = [s for s in scores.values() if s is not None]
    ci = mean_ci_bootstrap(values, seed=seed, level=level)
    excluded = left_out(len(scores) - len(values), len(errored))
    if ci is None:
        return INSUFFICIENT, f"no scored rows{excluded}", "the judge scored no answer here"
    bounds = f" ({percent(level)} CI {ci.low:.2f} to {ci.high:.2f})" if ci.low is not None else ""
    observed = f"{ci.mean:.2f}{bounds}, n={len(values)}{excluded}"
    status, reason = _decide_interval(
        gate, ci.mean, ci.low, ci.high, gate.limit, ".2f", n=len(values)
    )
    return status, observed, reason


def _decide_interval(
    gate: Gate,
    estimate: float | None,
    low: float | None,
    high: float | None,
    target: float,
    fmt: str,
    *,
    n: int,
) -> tuple[Status, str]:
    """The three-way rule of the module docstring, on an estimate and its CI."""
    limit = f"{target:{fmt}}".replace("-", "−")
    if estimate is None:
        return INSUFFICIENT, "no row is scored on both sides"
    if gate.on == "mean":
        if estimate >= target - _EPS:
            return "pass", f"the point estimate is at or above {limit}"
        return "fail", f"the point estimate is below {limit}"
    if low is None or high is None:
        return INSUFFICIENT, "one row gives no interval"
    if n < MIN_PAIRS:
        return (
            INSUFFICIENT,
            f"only {n} rows: a bootstrap CI from fewer than {MIN_PAIRS} is too narrow to trust",
        )
    if low >= target - _EPS:
        return "pass", f"the whole CI is at or above {limit}"
    if high < target - _EPS:
        return "fail", f"the whole CI is below {limit}"
    return INSUFFICIENT, f"the CI spans {limit}, so this run cannot tell"


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


Measure = tuple[float | None, str, str, bool]  # value, observed, note, exact


def _error_rate(mine: pd.DataFrame) -> Measure:
    errors, n = int(mine["errored"].sum()), len(mine)
    return errors / n, f"{errors / n:.1%} ({errors} of {n} cells)", "", True


def _answers(mine: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    errors = int(mine["errored"].sum())
    return mine[~mine["errored"]], f", {errors} errored cells left out" if errors else ""


def _check_pass_rate(mine: pd.DataFrame) -> Measure:
    answers, excluded = _answers(mine)
    passed, total = int(answers["checks_passed"].sum()), int(answers["checks_total"].sum())
    if total == 0:
        return None, f"no checks{excluded}", "no check ran on an answer", True
    return passed / total, f"{passed / total:.1%} ({passed} of {total} checks){excluded}", "", True


def _latency_p95(mine: pd.DataFrame) -> Measure:
    answers, excluded = _answers(mine)
    latency = answers["latency_ms"].dropna()
    p95 = percentile(latency, 95)
    if p95 is None:
        return None, f"no latency{excluded}", "no answer has a measured latency", True
    return p95, f"{p95:.0f} ms (n={len(latency)}){excluded}", "", True


def _cost_per_answer(mine: pd.DataFrame) -> Measure:
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


def _confidence(mine: pd.DataFrame) -> Measure:
    if "confidence" not in mine.columns:
        return None, "-", "the run records no confidence", True
    answers, excluded = _answers(mine)
    values = answers["confidence"].dropna()
    if values.empty:
        return None, f"no confidence{excluded}", "no answer has a confidence", True
    mean = float(values.mean())
    return mean, f"{mean:.2f} (n={len(values)}){excluded}", "", True


_MEASURES = {
    "error_rate": _error_rate,
    "check_pass_rate": _check_pass_rate,
    "latency_p95_ms": _latency_p95,
    "cost_per_answer_usd": _cost_per_answer,
    "confidence": _confidence,
}
