"""Paired statistics for a variant against its baseline: is the change real, or noise?

Small, guarded, seeded functions (numpy only): n = 0 answers None, n = 1 gives a mean
without a t or bootstrap interval, and every random draw takes a seed. Deltas closer to 0
than `TIE_EPS` are ties, so float noise from averaged repeats never counts as a win.

    compare()            paired judge scores -> Comparison (CI, tests, MDE, verdict)
    compare_pass_rates() paired pass / fail -> PassRateComparison (McNemar)
    mean_ci              the interval verdicts and gates are read from: bounded-range
                         bounds that stay honest on tied rows (analysis.bounds)
    score_scale          the judge's scale, or [1, 5] widened to the scores seen
    mean_ci_bootstrap, mean_ci_t, sign_test, wilcoxon, mcnemar, win_tie_loss, mde
    normal_quantile, t_quantile   (analysis.quantiles: no scipy)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from promptdeck.analysis.bounds import cs_bounds, gaffke_bounds
from promptdeck.analysis.planning import detectable_change
from promptdeck.analysis.quantiles import normal_quantile, t_quantile

TIE_EPS = 1e-9
WILCOXON_EXACT_MAX = 25
_BOOT_CHUNK = 2_000_000  # indices drawn per block, so a large n does not need GBs
MIN_PAIRS = 10  # gates and verdicts decide from this many paired rows (bench/validity.py)
DEFAULT_SCALE = (1.0, 5.0)
Verdict = Literal["better", "worse", "within noise", "underpowered", "no data"]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None
    high: float | None


def _finite(values: Iterable[float]) -> Floats:
    x = np.asarray(list(values), dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite numbers; leave unscored rows out")
    return x


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks (numpy's
    and pandas' default), of the finite values (None and NaN are skipped); None when there
    are none. The one
    definition behind every p50/p95 shown: Results, reports, the CLI and the gates."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.percentile(finite, q)) if finite else None


# --- intervals ---------------------------------------------------------------------------


def mean_ci_bootstrap(
    deltas: Iterable[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval | None:
    """Percentile bootstrap interval of the mean (vectorised, seeded). n=0 → None."""
    x = _finite(deltas)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, None, None)
    _check_level(level)
    if resamples < 1:
        raise ValueError("resamples must be ≥ 1")
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_CHUNK // x.size)
    sizes = [min(block, resamples - start) for start in range(0, resamples, block)]
    means = np.concatenate([x[rng.integers(0, x.size, (k, x.size))].mean(axis=1) for k in sizes])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(mean, float(low), float(high))


def mean_ci_t(deltas: Iterable[float], level: float = 0.95) -> Interval | None:
    """Student t interval of the mean. n=0 → None; n=1 → the mean without bounds."""
    x = _finite(deltas)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, None, None)
    _check_level(level)
    half = t_quantile(1.0 - (1.0 - level) / 2.0, x.size - 1) * float(x.std(ddof=1))
    half /= math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half)


def score_scale(scale: tuple[float, float] | None, *scores: Iterable[float]) -> tuple[float, float]:
    """The range scores lie in: `scale` (the judge's [low, high]) or DEFAULT_SCALE [1, 5],
    widened to every finite score seen (a human override outside the scale still counts)."""
    low, high = DEFAULT_SCALE if scale is None else (float(scale[0]), float(scale[1]))
    if not high > low:
        raise ValueError(f"a scale is [low, high] with high > low; got {scale}")
    seen = np.concatenate([np.empty(0), *(np.asarray(list(s), dtype=np.float64) for s in scores)])
    seen = seen[np.isfinite(seen)]
    if seen.size:
        low, high = min(low, float(seen.min())), max(high, float(seen.max()))
    return low, high


def mean_ci(
    values: Iterable[float],
    *,
    low: float,
    high: float,
    level: float = 0.95,
    seed: int = 0,
    anytime: bool = False,
) -> Interval | None:
    """The interval of the mean of values known to lie in [low, high], (1 − level)/2 on
    each side: the Gaffke bound (fixed n, seeded), or with `anytime` the confidence
    sequence over the values in the order given (`analysis.bounds`). n=0 → None; one
    value already gives a (wide) interval."""
    x = _finite(values)
    if x.size == 0:
        return None
    _check_level(level)
    side = (1.0 - level) / 2.0
    if anytime:
        lows, highs = cs_bounds(x, low=low, high=high, alpha=side)
        bounds = float(lows[0, -1]), float(highs[0, -1])
    else:
        lower, upper = gaffke_bounds(x, low=low, high=high, alpha=side, seed=seed)
        bounds = float(lower[0]), float(upper[0])
    return Interval(float(x.mean()), *bounds)


# --- tests -------------------------------------------------------------------------------


def _binomial_two_sided(k: int, n: int) -> float:
    """2·P(X ≤ k) for X ~ Binomial(n, 1/2), k the smaller count; capped at 1."""
    term = tail = 1  # C(n, 0); each next term exactly from the last (math.comb is per call)
    for i in range(k):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, float(2 * tail / 2**n))


def sign_test(deltas: Iterable[float]) -> float | None:
    """Exact two-sided sign test on the non-zero deltas. n=0 → None; all ties → 1.0."""
    x = _finite(deltas)
    if x.size == 0:
        return None
    wins, losses = int(np.sum(x > TIE_EPS)), int(np.sum(x < -TIE_EPS))
    if wins + losses == 0:
        return 1.0
    return _binomial_two_sided(min(wins, losses), wins + losses)


def mcnemar(b: int, c: int) -> float:
    """Exact McNemar: a two-sided binomial test on the b + c discordant pairs."""
    if b < 0 or c < 0:
        raise ValueError("b and c are counts (≥ 0)")
    return 1.0 if b + c == 0 else _binomial_two_sided(min(b, c), b + c)


def _average_ranks(values: Floats) -> tuple[Floats, npt.NDArray[np.int64]]:
    """Ranks from 1, ties sharing their average rank; and the size of each tie group."""
    _, group, sizes = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(sizes)  # the rank of each group's last member
    return (ends - (sizes - 1) / 2.0)[group].astype(np.float64), sizes


def wilcoxon(deltas: Iterable[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p, zeros dropped, ties given average ranks.

    Up to 25 non-zero deltas the p is exact (every sign pattern of the actual ranks is
    counted, so ties are exact too); above, the normal approximation with tie and
    continuity corrections. n=0 → None; all ties → 1.0.
    """
    x = _finite(deltas)
    if x.size == 0:
        return None
    d = x[np.abs(x) > TIE_EPS]
    if d.size == 0:
        return 1.0
    ranks, tie_sizes = _average_ranks(np.abs(d).round(9))  # equal up to float noise: tied
    w_plus = float(ranks[d > 0].sum())
    if d.size <= WILCOXON_EXACT_MAX:
        doubled = [round(2 * r) for r in ranks]  # half ranks → whole numbers
        counts = np.zeros(sum(doubled) + 1, dtype=np.int64)
        counts[0] = 1
        for r in doubled:
            counts[r:] = counts[r:] + counts[: counts.size - r]
        w = round(2 * w_plus)
        tail = min(int(counts[: w + 1].sum()), int(counts[w:].sum()))
        return min(1.0, float(2 * tail / 2**d.size))
    n = d.size
    var = n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(tie_sizes**3 - tie_sizes)) / 48
    z = max(0.0, abs(w_plus - n * (n + 1) / 4) - 0.5) / math.sqrt(var)
    return min(1.0, math.erfc(z / math.sqrt(2.0)))


def win_tie_loss(deltas: Iterable[float], tol: float = 0.0) -> tuple[int, int, int]:
    """Counts of deltas above tol, within it (|d| ≤ tol, at least TIE_EPS), and below."""
    x = _finite(deltas)
    band = max(tol, TIE_EPS)
    wins, losses = int(np.sum(x > band)), int(np.sum(x < -band))
    return wins, int(x.size) - wins - losses, losses


def mde(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Smallest true mean delta a paired z test of n rows detects: (z₁₋α/₂ + z_power)·sd/√n.
    It is 0 for tied rows; `Comparison.mde` uses `planning.detectable_change`, which is not."""
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError("alpha and power must be in (0, 1)")
    if n < 2 or not math.isfinite(sd):
        return None
    if sd < 0:
        raise ValueError("sd must be ≥ 0")
    z = normal_quantile(1.0 - alpha / 2.0) + normal_quantile(power)
    return z * sd / math.sqrt(n)


# --- comparisons -------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    variant: str
    baseline: str
    category: str | None  # None = every row
    n: int  # paired rows used
    excluded_unscored: int
    excluded_errors: int
    mean_baseline: float | None
    mean_variant: float | None
    delta: float | None  # mean of the paired deltas (variant − baseline)
    ci: Interval | None  # the bounded-range interval verdicts are read from (mean_ci)
    t: Interval | None
    p_sign: float | None
    p_wilcoxon: float | None
    wins: int
    ties: int
    losses: int
    mde: float | None
    verdict: Verdict
    level: float = 0.95
    anytime: bool = False  # ci is a confidence sequence (valid at every look)
    sd: float | None = None  # of the per-row deltas (n ≥ 2): what planning needs

    @property
    def estimate(self) -> str:
        """'+0.42 (95% CI +0.10 to +0.75), n=58' plus what was left out."""
        excluded = left_out(self.excluded_unscored, self.excluded_errors)
        if self.delta is None:
            return f"no paired rows{excluded}"
        ci = ""
        if self.ci is not None and self.ci.low is not None and self.ci.high is not None:
            ci = (
                f" ({ci_label(self.level, self.anytime)} {self.ci.low:+.2f} to {self.ci.high:+.2f})"
            )
        return f"{self.delta:+.2f}{ci}, n={self.n}{excluded}"

    @property
    def summary(self) -> str:
        """One line for a PM: '+0.42 (95% CI +0.10 to +0.75), n=58: better'."""
        return f"{self.estimate}: {self.verdict}"


def left_out(unscored: int, errored: int) -> str:
    """' (2 unscored, 1 errored left out)', or '' when nothing was left out."""
    parts = [f"{k} {what}" for k, what in ((unscored, "unscored"), (errored, "errored")) if k]
    return f" ({', '.join(parts)} left out)" if parts else ""


def percent(level: float) -> str:
    """0.95 → '95%', 0.98333 → '98.3%'."""
    return f"{level * 100:.1f}".removesuffix(".0") + "%"


def ci_label(level: float, anytime: bool = False) -> str:
    """'95% CI', or '95% anytime CI' for a confidence sequence."""
    return f"{percent(level)} {'anytime CI' if anytime else 'CI'}"


def _pair(
    baseline: Mapping[str, float | None],
    variant: Mapping[str, float | None],
    errored: set[str] | frozenset[str],
    order: Sequence[str] = (),
) -> tuple[list[tuple[float, float]], int, int]:
    """Pairs of scores in `order` (then row-id order), plus the unscored and errored rows
    left out."""
    rows = set(baseline) | set(variant) | errored
    ordered = [*dict.fromkeys(r for r in order if r in rows), *sorted(rows - set(order))]
    pairs, unscored, errors = [], 0, 0
    for row in ordered:
        b, v = baseline.get(row), variant.get(row)
        if row in errored:
            errors += 1
        elif b is None or v is None or math.isnan(b) or math.isnan(v):
            unscored += 1
        else:
            pairs.append((float(b), float(v)))
    return pairs, unscored, errors


def compare(
    baseline: Mapping[str, float | None],
    variant: Mapping[str, float | None],
    *,
    errors_baseline: set[str] | frozenset[str] = frozenset(),
    errors_variant: set[str] | frozenset[str] = frozenset(),
    threshold: float = 0.2,
    seed: int = 0,
    level: float = 0.95,
    scale: tuple[float, float] | None = None,
    anytime: bool = False,
    order: Sequence[str] = (),
    variant_name: str = "",
    baseline_name: str = "",
    category: str | None = None,
) -> Comparison:
    """Pair scores by row id and judge the mean delta (variant − baseline).

    Only rows scored on both sides are paired. A row that errored on either side is left
    out and counted in `excluded_errors`; a row unscored (None, NaN or missing) on either
    side is left out and counted in `excluded_unscored`: never treated as 0.

    The interval is `mean_ci` of the deltas, whose range is ±(high − low) of the judge's
    `scale` (`score_scale`: None means [1, 5] widened to every score seen), at `level`
    two-sided; with `anytime`, the confidence sequence over the rows in `order` (the order
    they were run; rows not in it follow in row-id order). Verdict:
      no paired rows                         → "no data"
      fewer than MIN_PAIRS (10) paired rows  → "underpowered"
      the whole CI above 0                   → "better"
      the whole CI below 0                   → "worse"
      the CI within ±threshold               → "within noise" (no change as large as
                                               `threshold` either way, at `level`)
      else                                   → "underpowered" (a change of `threshold`
                                               could hide in the CI)
    A family of comparisons (the categories of a run) shares its error by taking
    level = 1 − 0.05/k (`results.comparisons`). `mde` is the smallest true change this many
    rows would show as better or worse with power 0.8 (`planning.detectable_change`).
    """
    pairs, unscored, errors = _pair(baseline, variant, set(errors_baseline) | errors_variant, order)
    base = np.array([b for b, _ in pairs], dtype=np.float64)
    var = np.array([v for _, v in pairs], dtype=np.float64)
    deltas = var - base
    n = len(pairs)
    low, high = score_scale(scale, base, var)
    width = high - low
    ci = mean_ci(deltas, low=-width, high=width, level=level, seed=seed, anytime=anytime)
    side = (1.0 - level) / 2.0
    sd = float(deltas.std(ddof=1)) if n >= 2 else math.nan
    smallest = detectable_change(n, sd, width, alpha=side) if n >= 2 else None
    wins, ties, losses = win_tie_loss(deltas)
    return Comparison(
        variant=variant_name, baseline=baseline_name, category=category, n=n,
        excluded_unscored=unscored, excluded_errors=errors,
        mean_baseline=float(base.mean()) if n else None,
        mean_variant=float(var.mean()) if n else None,
        delta=float(deltas.mean()) if n else None,
        ci=ci, t=mean_ci_t(deltas, level),
        p_sign=sign_test(deltas), p_wilcoxon=wilcoxon(deltas),
        wins=wins, ties=ties, losses=losses, mde=smallest,
        verdict=_verdict(ci, threshold, n), level=level, anytime=anytime,
        sd=sd if n >= 2 else None,
    )  # fmt: skip


def _verdict(ci: Interval | None, threshold: float, n: int) -> Verdict:
    if ci is None:
        return "no data"
    if n < MIN_PAIRS or ci.low is None or ci.high is None:
        return "underpowered"
    if ci.low > 0:
        return "better"
    if ci.high < 0:
        return "worse"
    if ci.low >= -threshold - TIE_EPS and ci.high <= threshold + TIE_EPS:
        return "within noise"
    return "underpowered"


@dataclass(frozen=True)
class PassRateComparison:
    n: int
    rate_baseline: float | None
    rate_variant: float | None
    delta: float | None
    b: int  # pass → fail flips
    c: int  # fail → pass flips
    p: float


def compare_pass_rates(
    baseline: Mapping[str, bool], variant: Mapping[str, bool]
) -> PassRateComparison:
    """Pass rates on the rows both sides have, with McNemar's exact p on the flips."""
    rows = sorted(set(baseline) & set(variant))
    n = len(rows)
    b = sum(1 for r in rows if baseline[r] and not variant[r])
    c = sum(1 for r in rows if not baseline[r] and variant[r])
    if n == 0:
        return PassRateComparison(0, None, None, None, 0, 0, 1.0)
    rate_b = sum(1 for r in rows if baseline[r]) / n
    rate_v = sum(1 for r in rows if variant[r]) / n
    return PassRateComparison(n, rate_b, rate_v, rate_v - rate_b, b, c, mcnemar(b, c))
