"""Paired statistics for a variant against its baseline: is the change real, or noise?

Small, guarded, seeded functions (numpy only): n = 0 answers None, n = 1 gives a mean
without an interval, and every random draw takes a seed. Deltas closer to 0 than
`TIE_EPS` are ties, so float noise from averaged repeats never counts as a win.

    compare()            paired judge scores -> Comparison (CI, tests, MDE, verdict)
    compare_pass_rates() paired pass / fail -> PassRateComparison (McNemar)
    mean_ci_bootstrap, mean_ci_t, sign_test, wilcoxon, mcnemar, win_tie_loss, mde
    normal_quantile, t_quantile   (no scipy: Acklam + one Halley step; exact t CDF)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

TIE_EPS = 1e-9
WILCOXON_EXACT_MAX = 25
_BOOT_CHUNK = 2_000_000  # indices drawn per block, so a large n does not need GBs
MIN_PAIRS = 10  # below this, a percentile bootstrap under-covers (6 identical → [0, 0])
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


# --- quantiles ---------------------------------------------------------------------------

_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01, 1.0)  # fmt: skip
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00, 1.0)  # fmt: skip


def _poly(coefs: tuple[float, ...], x: float) -> float:
    total = 0.0
    for c in coefs:
        total = total * x + c
    return total


def normal_quantile(p: float) -> float:
    """z with Φ(z) = p: Acklam's rational approximation, polished by one Halley step."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1); got {p}")
    if p < 0.02425 or p > 0.97575:
        q = math.sqrt(-2.0 * math.log(min(p, 1.0 - p)))
        x = _poly(_C, q) / _poly(_D, q)
        x = x if p < 0.5 else -x
    else:
        q = p - 0.5
        x = q * _poly(_A, q * q) / _poly(_B, q * q)
    error = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = error * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _t_central(t: float, df: int) -> float:
    """P(|T| < t), t ≥ 0, for whole df: the finite sums of Abramowitz & Stegun 26.7.3-4."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(2, df - 1, 2):
            term *= (k - 1) / k * cos2
            total += term
        return sin * total
    if df == 1:
        return 2.0 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(3, df - 1, 2):
        term *= (k - 1) / k * cos2
        total += term
    return 2.0 / math.pi * (theta + sin * total)


@lru_cache(maxsize=512)
def t_quantile(p: float, df: int) -> float:
    """Student's t quantile: bisection on the exact CDF up to df 200, Cornish–Fisher above."""
    if df < 1:
        raise ValueError(f"df must be ≥ 1; got {df}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1); got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if df > 200:  # A&S 26.7.5; the error is far below 1e-9 here
        z, v = normal_quantile(p), float(df)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
        return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4
    target, low, high = 2.0 * p - 1.0, 0.0, 1.0
    while _t_central(high, df) < target:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        low, high = (mid, high) if _t_central(mid, df) < target else (low, mid)
        if high - low <= 1e-13 * high:
            break
    return (low + high) / 2.0


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


# --- tests -------------------------------------------------------------------------------


def _binomial_two_sided(k: int, n: int) -> float:
    """2·P(X ≤ k) for X ~ Binomial(n, 1/2), k the smaller count; capped at 1."""
    tail = sum(math.comb(n, i) for i in range(k + 1))
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
    """Smallest true mean delta a paired test of n rows detects: (z₁₋α/₂ + z_power)·sd/√n."""
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
    boot: Interval | None
    t: Interval | None
    p_sign: float | None
    p_wilcoxon: float | None
    wins: int
    ties: int
    losses: int
    mde: float | None
    verdict: Verdict
    level: float = 0.95

    @property
    def estimate(self) -> str:
        """'+0.42 (95% CI +0.10 to +0.75), n=58' plus what was left out."""
        excluded = left_out(self.excluded_unscored, self.excluded_errors)
        if self.delta is None:
            return f"no paired rows{excluded}"
        ci = ""
        if self.boot is not None and self.boot.low is not None and self.boot.high is not None:
            ci = f" ({percent(self.level)} CI {self.boot.low:+.2f} to {self.boot.high:+.2f})"
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


def _pair(
    baseline: Mapping[str, float | None],
    variant: Mapping[str, float | None],
    errored: set[str] | frozenset[str],
) -> tuple[list[tuple[float, float]], int, int]:
    """Pairs of scores in row-id order, plus the unscored and errored rows left out."""
    pairs, unscored, errors = [], 0, 0
    for row in sorted(set(baseline) | set(variant) | errored):
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
    resamples: int = 2000,
    level: float = 0.95,
    variant_name: str = "",
    baseline_name: str = "",
    category: str | None = None,
) -> Comparison:
    """Pair scores by row id and judge the mean delta (variant − baseline).

    Only rows scored on both sides are paired. A row that errored on either side is left
    out and counted in `excluded_errors`; a row unscored (None, NaN or missing) on either
    side is left out and counted in `excluded_unscored`: never treated as 0. Pairs are
    taken in row-id order, so the bootstrap depends only on the data and the seed.

    Verdict, from the bootstrap CI of the mean delta and the MDE (α = 0.05, power 0.8):
      no paired rows                           → "no data"
      fewer than MIN_PAIRS (10) paired rows    → "underpowered" (a percentile bootstrap
                                                  of so few rows is too narrow to trust)
      the whole CI above 0                     → "better"
      the whole CI below 0                     → "worse"
      else, MDE unknown (n < 2) or > threshold → "underpowered" (a real change of
                                                  `threshold` could hide in the noise)
      else                                     → "within noise" (such a change would
                                                  likely have shown)
    """
    pairs, unscored, errors = _pair(baseline, variant, set(errors_baseline) | errors_variant)
    base = np.array([b for b, _ in pairs], dtype=np.float64)
    var = np.array([v for _, v in pairs], dtype=np.float64)
    deltas = var - base
    n = len(pairs)
    boot = mean_ci_bootstrap(deltas, resamples=resamples, seed=seed, level=level)
    smallest = mde(float(deltas.std(ddof=1)), n) if n >= 2 else None
    wins, ties, losses = win_tie_loss(deltas)
    return Comparison(
        variant=variant_name, baseline=baseline_name, category=category, n=n,
        excluded_unscored=unscored, excluded_errors=errors,
        mean_baseline=float(base.mean()) if n else None,
        mean_variant=float(var.mean()) if n else None,
        delta=float(deltas.mean()) if n else None,
        boot=boot, t=mean_ci_t(deltas, level),
        p_sign=sign_test(deltas), p_wilcoxon=wilcoxon(deltas),
        wins=wins, ties=ties, losses=losses, mde=smallest,
        verdict=_verdict(boot, smallest, threshold, n), level=level,
    )  # fmt: skip


def _verdict(boot: Interval | None, smallest: float | None, threshold: float, n: int) -> Verdict:
    if boot is None:
        return "no data"
    if n < MIN_PAIRS:
        return "underpowered"
    if boot.low is not None and boot.low > 0:
        return "better"
    if boot.high is not None and boot.high < 0:
        return "worse"
    if smallest is None or smallest > threshold:
        return "underpowered"
    return "within noise"


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
