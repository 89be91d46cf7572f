"""Normal and Student t quantiles without scipy: Acklam's rational approximation polished
by one Halley step, and bisection on the exact t CDF (Abramowitz & Stegun 26.7.3-4) up to
df 200, Cornish–Fisher above."""

from __future__ import annotations

import math
from functools import lru_cache

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
