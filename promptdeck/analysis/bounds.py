"""Bounds on the mean of values that lie in a known range [low, high], with no assumption
about their shape: the intervals every gate and verdict is decided on.

Why these. Judge scores are bounded, and their paired deltas are often mostly ties with a
few large drops. A percentile bootstrap or a t interval cannot see a drop the sample does
not contain: ten tied rows give the interval [0, 0], although 0 losses in 10 rows is
consistent with up to 31% of rows losing. Both bounds here price in the mass the sample
may have missed by using the range's worst value, so a tied sample gives an honest,
wide interval that narrows as rows accumulate.

    gaffke_bounds(samples, low, high, alpha)  one look at n values (fixed n)
        The Bayesian-bootstrap bound with the range's end added as one more point (Gaffke
        2005; Learned-Miller & Thomas 2019): the lower bound is the α-quantile of
        Σ wᵢ·zᵢ over z = (x₁ … xₙ, low) with w ~ Dirichlet(1, …, 1). For n tied values at
        x it gives x − (x − low)·(1 − α^(1/n)), the exact (Clopper–Pearson) bound for a
        share of rows at `low`. Learned-Miller & Thomas conjecture it never covers less
        than 1 − α for any distribution on [low, high] and n, and report no counterexample;
        bench/validity.py measures it on the shapes PromptDeck sees. The weights are a
        seeded Monte Carlo draw (DRAWS), shared by every sample of a call.
    cs_bounds(samples, low, high, alpha)     every prefix of a sequence (any number of looks)
        A betting confidence sequence (Waudby-Smith & Ramdas 2023, predictable plug-in
        bets, truncated at c = 3/4): for each candidate mean m on a grid, a capital
        Πᵢ (1 + λᵢ(m)(xᵢ − m)) that is a nonnegative supermartingale when the mean is
        ≤ m, so by Ville's inequality it ever reaches 1/α with probability ≤ α. A grid
        point once rejected stays rejected (a running intersection), and each bound is
        rounded outwards to the grid, so "the bound moved past m at some look" has
        probability ≤ α however often one looks.

Both are one-sided at α on each side; a two-sided 95% interval is α = 0.025 per side.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
DRAWS = 10_000  # Dirichlet draws per Gaffke bound
GRID = 1000  # candidate means (steps over [low, high]) for a confidence sequence
BET_CAP = 0.75  # c: a bet never stakes more than c of the distance to ruin
_CHUNK = 4_000_000  # numbers held per block (weights, weighted means)
_MEMO_SIZE = 256  # Gaffke results kept: the page, its gates and the report ask for the same ones
_memo: OrderedDict[tuple[object, ...], tuple[Floats, Floats]] = OrderedDict()
_memo_lock = threading.Lock()


def _as_matrix(samples: npt.ArrayLike, low: float, high: float) -> Floats:
    x = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    if not high > low:
        raise ValueError(f"the range must have high > low; got [{low}, {high}]")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite numbers; leave unscored rows out")
    if x.size and (x.min() < low - 1e-9 or x.max() > high + 1e-9):
        raise ValueError(f"values must lie in [{low:g}, {high:g}]")
    return np.clip(x, low, high)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5); got {alpha}")


def _dirichlet_blocks(size: int, draws: int, seed: int) -> Iterator[Floats]:
    """draws × size weights, each row Dirichlet(1, …, 1), in blocks of at most _CHUNK
    numbers: the same weights for the same (size, draws, seed)."""
    rng = np.random.default_rng(seed)
    block = max(1, _CHUNK // size)
    for start in range(0, draws, block):
        w = rng.standard_exponential((min(block, draws - start), size))
        yield w / w.sum(axis=1, keepdims=True)


def _gaffke_lower(x: Floats, low: float, alpha: float, draws: int, seed: int) -> Floats:
    """Lower bounds, one per row of x (k × n): the α-quantile (the order statistic at
    ⌊α·(draws − 1)⌋) of Σ wᵢzᵢ over z = (x, low)."""
    k, n = x.shape
    rank = math.floor(alpha * (draws - 1))
    z = np.concatenate([x, np.full((k, 1), low)], axis=1) - low  # ≥ 0, for precision
    out = np.empty(k)
    step = max(1, _CHUNK // draws)
    for start in range(0, k, step):  # a few samples at a time, so memory stays bounded
        part = z[start : start + step]
        means = np.concatenate([part @ w.T for w in _dirichlet_blocks(n + 1, draws, seed)], axis=1)
        out[start : start + step] = np.partition(means, rank, axis=1)[:, rank]
    return low + out


def gaffke_bounds(
    samples: npt.ArrayLike,
    *,
    low: float,
    high: float,
    alpha: float = 0.025,
    seed: int = 0,
    draws: int = DRAWS,
) -> tuple[Floats, Floats]:
    """(lower, upper) bounds of the mean, one pair per row of `samples` (k × n, n ≥ 1;
    a 1-D array is one sample), each one-sided at `alpha` (module docstring). Each sample
    is sorted first, so its bounds depend on its values and the seed, not their order."""
    _check_alpha(alpha)
    x = np.sort(_as_matrix(samples, low, high), axis=1)
    if x.shape[1] == 0:
        raise ValueError("a bound needs at least one value")
    if draws < 1:
        raise ValueError("draws must be ≥ 1")
    # A pure function of (sorted values, range, alpha, seed, draws), and the dearest one here:
    # an overall comparison and its gate draw the same 10,000 weights for the same deltas.
    digest = hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest()
    key = (x.shape, digest, float(low), float(high), float(alpha), seed, draws)
    with _memo_lock:
        found = _memo.get(key)
        if found is not None:
            _memo.move_to_end(key)
    if found is None:
        found = (
            _gaffke_lower(x, low, alpha, draws, seed),
            -_gaffke_lower(-x, -high, alpha, draws, seed + 1),
        )
        with _memo_lock:
            _memo[key] = found
            while len(_memo) > _MEMO_SIZE:
                _memo.popitem(last=False)
    return found[0].copy(), found[1].copy()


def _running_bound(x: Floats, grid: Floats, alpha: float, upwards: bool) -> Floats:
    """After each look t, the lower (upwards) or upper bound on the grid: the grid point
    next to the nearest mean the capital has not rejected by t (x and grid in [0, 1])."""
    k, looks = x.shape
    threshold = math.log(1.0 / alpha)
    distance = grid if upwards else 1.0 - grid  # to ruin: x = 0 (or 1) loses it all
    cap = BET_CAP / np.maximum(distance, 1e-300)
    log_capital = np.zeros((k, grid.size))
    rejected = np.zeros((k, grid.size), dtype=bool)
    mean, var, total, squares = np.full(k, 0.5), np.full(k, 0.25), np.zeros(k), np.zeros(k)
    out = np.empty((k, looks))
    for t in range(1, looks + 1):
        xt = x[:, t - 1]
        bet = np.sqrt(2.0 * threshold / (var * t * math.log(t + 1.0)))
        stake = np.minimum(bet[:, None], cap[None, :])
        move = xt[:, None] - grid[None, :]
        log_capital += np.log1p(stake * move if upwards else -stake * move)
        rejected |= log_capital >= threshold
        if upwards:  # the lowest mean not ruled out, one step down
            out[:, t - 1] = grid[np.maximum(np.argmin(rejected, axis=1) - 1, 0)]
        else:
            last = grid.size - 1 - np.argmin(rejected[:, ::-1], axis=1)
            out[:, t - 1] = grid[np.minimum(last + 1, grid.size - 1)]
        squares += (xt - mean) ** 2  # the plug-in estimates use the rows before t only
        total += xt
        mean, var = (0.5 + total) / (t + 1), (0.25 + squares) / (t + 1)
    return out


def cs_bounds(
    samples: npt.ArrayLike,
    *,
    low: float,
    high: float,
    alpha: float = 0.025,
    grid: int = GRID,
) -> tuple[Floats, Floats]:
    """Running (lower, upper) bounds after each value, in order: arrays k × n for k
    sequences of n values (a 1-D array is one sequence), each valid at every look at once
    with error ≤ `alpha` per side (module docstring)."""
    _check_alpha(alpha)
    x = _as_matrix(samples, low, high)
    if x.shape[1] == 0:
        raise ValueError("a bound needs at least one value")
    unit = (x - low) / (high - low)
    points = np.linspace(0.0, 1.0, grid + 1)
    lower = _running_bound(unit, points, alpha, upwards=True)
    upper = _running_bound(unit, points, alpha, upwards=False)
    return low + lower * (high - low), low + upper * (high - low)
