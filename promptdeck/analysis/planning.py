"""Sample-size planning: how many paired rows a gate needs to be decidable at its margin.

Pure functions of a gate, the score scale and the spread of a previous run's per-row
values (or a default for the scale), for the Evaluate plan, `run --plan` and a gate's
"insufficient evidence" reason.

The model behind the numbers (an approximation of the fixed-n bound of `analysis.bounds`,
whose error bench/validity.py measures):
- the true value is `expected`: no change for a `max_drop` gate (a harmless variant), the
  previous run's mean for a `min` gate, 0.5 for `win_rate` without history;
- per-row values have standard deviation `sd` (the previous run's, else `default_sd`);
- the Gaffke lower bound of n rows sits below the mean by D/(n+1) (the range's end, at
  distance D from the mean, enters as one more point) plus a spread that combines, in
  quadrature, that point's tail, D·(1 − α^(1/n)) − D/(n+1) (exact for tied rows), with
  the rows' own, z₁₋α·sd·√((n−1)/((n+1)(n+2)));
- "decidable" means the bound clears the limit with probability `power` (0.8): the mean
  of n rows varies by z_power·sd/√n;
- the range's share of the bound is taken 4% larger (MC_SLACK), for the Monte Carlo
  error of the bound's 10,000 draws: over 8 seeds, the bound of ten tied rows on [1, 5]
  fell within 3.5% of its exact value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from promptdeck.analysis.quantiles import normal_quantile

POWER = 0.8
SIDE_ALPHA = 0.025  # each side of a two-sided 95% interval
MAX_ROWS = 1_000_000  # beyond this, "not decidable" (None)
MC_SLACK = 1.04


def default_sd(scale: tuple[float, float]) -> float:
    """The per-row sd assumed without a previous run: a quarter of the scale's width, at
    least 0.5 (1.0 on [1, 5]; 0.5 on [0, 1], the sd of paired pass/fail rows when a
    quarter of them flip)."""
    return max((scale[1] - scale[0]) / 4.0, 0.5)


def _margin_used(n: int, sd: float, distance: float, alpha: float, power: float) -> float:
    """How far below the true value the bound of n rows falls, with probability `power`."""
    shift = MC_SLACK * distance / (n + 1)
    tail = MC_SLACK * distance * (1.0 - alpha ** (1.0 / n)) - shift
    spread = normal_quantile(1.0 - alpha) * sd * math.sqrt((n - 1) / ((n + 1) * (n + 2)))
    noise = normal_quantile(power) * sd / math.sqrt(n)
    return shift + math.hypot(tail, spread) + noise


def bound_rows(
    gap: float, sd: float, distance: float, *, alpha: float = SIDE_ALPHA, power: float = POWER
) -> int | None:
    """The fewest rows whose one-sided bound clears a limit `gap` away from the true value
    (gap > 0), the range's end being `distance` from it; None beyond MAX_ROWS."""
    if not (gap > 0 and sd >= 0 and distance >= 0):
        return None
    if _margin_used(MAX_ROWS, sd, distance, alpha, power) > gap:
        return None
    low, high = 1, 2
    while _margin_used(high, sd, distance, alpha, power) > gap:
        low, high = high, high * 2
    while high - low > 1:  # the margin used shrinks as n grows
        mid = (low + high) // 2
        low, high = (
            (low, mid) if _margin_used(mid, sd, distance, alpha, power) <= gap else (mid, high)
        )
    return high


def detectable_change(
    n: int, sd: float, width: float, *, alpha: float = SIDE_ALPHA, power: float = POWER
) -> float | None:
    """The smallest true mean delta that n paired rows show as a change (the bound
    excludes 0) with probability `power`, on a scale `width` wide. n < 2 → None."""
    if n < 2 or not math.isfinite(sd):
        return None
    if sd < 0:
        raise ValueError("sd must be ≥ 0")
    return _margin_used(n, sd, width, alpha, power)


def rows_needed(
    gate: Mapping[str, Any],
    *,
    scale: tuple[float, float],
    sd: float | None = None,
    values: Sequence[float] | None = None,
    expected: float | None = None,
    family: int = 1,
    power: float = POWER,
) -> int | None:
    """Paired rows (per variant, per category for a category gate) that a judge_score or
    win_rate gate needs to pass with probability `power` when the truth is `expected`
    (or to fail, for a `min` gate whose expected value is below its limit).

    `scale` is the judge's [low, high] ([0, 1] for win_rate). Pass a previous run's per-row
    `values` (deltas for max_drop; scores or win values for min), or just its `sd`; else
    the sd is `default_sd(scale)`. `expected` defaults to: no change (max_drop), the
    values' mean (min), 0.5 (win_rate). `family` is the number of gates the family's
    error is shared by. None: no number of rows decides it (e.g. `max_drop: 0` with no
    change, or an expected value on the limit).
    """
    metric, kind = gate.get("metric"), next((k for k in ("max_drop", "min") if k in gate), "")
    if metric not in ("judge_score", "win_rate") or not kind:
        raise ValueError("rows_needed plans judge_score (max_drop, min) and win_rate gates")
    limit = float(gate[kind])
    low, high = (0.0, 1.0) if metric == "win_rate" else (float(scale[0]), float(scale[1]))
    data = np.asarray(list(values or []), dtype=np.float64)
    if sd is None:
        sd = float(data.std(ddof=1)) if data.size >= 2 else default_sd((low, high))
    alpha = SIDE_ALPHA / max(1, family)
    width = high - low
    if kind == "max_drop":
        truth = 0.0 if expected is None else expected
        return bound_rows(truth + limit, sd, truth + width, alpha=alpha, power=power)
    default = 0.5 if metric == "win_rate" else None
    mean = expected if expected is not None else float(data.mean()) if data.size else default
    if mean is None:
        raise ValueError("a min gate needs the expected mean: pass values or expected")
    if mean >= limit:
        return bound_rows(mean - limit, sd, mean - low, alpha=alpha, power=power)
    return bound_rows(limit - mean, sd, high - mean, alpha=alpha, power=power)
