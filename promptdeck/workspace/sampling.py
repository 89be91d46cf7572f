"""Seeded, stratified sampling of eval cases.

`allocation` is the arithmetic: each stratum gets its proportional share of n, every
non-empty stratum gets at least `floor` rows, and largest-remainder rounding (ties to the
alphabetically first stratum) makes the total exactly n. When n is too small to give every
stratum its floor, the largest strata (then by name) get theirs first: the sample stays as
close to proportional as n allows, and the choice needs no randomness.

`sample_cases` draws each stratum's rows with `random.Random(seed)` and returns them in the
dataset's order, so the same seed and data always give the same rows in the same order.
`draw` is that draw on row numbers alone: `dataset_sample.load_sample` makes it from a first
pass over a file (counting, keeping no row) and then reads only the rows drawn, which are
the rows `sample_cases` picks from the loaded dataset.

`stratified_order` is for samples that grow (run until decided): an order of every row whose
every prefix is a stratified sample, so rows can be added in batches and a row once drawn
stays drawn. Each stratum's rows are shuffled (seeded); every stratum's first row comes
first (largest strata first), then row j of a stratum of size N is placed at (j + 0.5) / N,
so any prefix holds each stratum within one row of its proportional share.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from fractions import Fraction

from promptdeck.errors import DatasetError
from promptdeck.workspace.datasets import Case

NO_STRATUM = "(none)"
# `category` is optional (ARCHITECTURE.md): without the column the rows are one stratum.
OPTIONAL_STRATUM_COLUMN = "category"


def sample_cases(
    cases: Sequence[Case],
    *,
    n: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    stratify: str | None = "category",
    floor: int = 1,
) -> list[Case]:
    """Pick n rows (or a fraction of them, rounded half up, at least 1), stratified by a column.

    Neither n nor fraction: every row. n at or above the number of rows: every row.
    Rows whose stratify value is empty form the stratum "(none)".
    """
    strata = _strata(cases, stratify)
    size = sample_size(len(cases), n=n, fraction=fraction)
    if size >= len(cases):
        return list(cases)
    return [cases[i] for i in draw(strata, size, seed=seed, floor=floor)]


def draw(
    strata: Mapping[str, Sequence[int]], size: int, *, seed: int = 0, floor: int = 1
) -> list[int]:
    """The row numbers a seeded stratified sample of `size` rows keeps, ascending; `strata`
    holds each stratum's row numbers in dataset order. Only the strata's sizes and the seed
    decide which positions are drawn (random.sample picks positions), so the same file and
    seed give the same rows however the file was read."""
    quotas = allocation({k: len(v) for k, v in strata.items()}, size, floor)
    rng = random.Random(seed)
    chosen: list[int] = []
    for key in sorted(strata):
        rows = strata[key]
        chosen.extend(rows[j] for j in rng.sample(range(len(rows)), quotas[key]))
    return sorted(chosen)


def sample_size(total: int, *, n: int | None = None, fraction: float | None = None) -> int:
    """How many rows a sample of `total` rows has: n, round-half-up(fraction × total), or all."""
    if n is not None and fraction is not None:
        raise DatasetError(f"sample: give n or fraction, not both (n={n}, fraction={fraction})")
    if n is not None:
        if n < 0:
            raise DatasetError(f"sample: n must be 0 or more, got {n}")
        return min(n, total)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise DatasetError(f"sample: fraction must be above 0 and at most 1, got {fraction}")
        return min(total, max(1, math.floor(fraction * total + 0.5)))
    return total


def count_strata(cases: Sequence[Case], stratify: str | None = "category") -> dict[str, int]:
    """Rows per stratum, strata sorted by name; what a sampling plan is made from."""
    return {k: len(v) for k, v in sorted(_strata(cases, stratify).items())}


def allocation(counts: Mapping[str, int], n: int, floor: int = 1) -> dict[str, int]:
    """Rows to draw from each stratum so that they add up to exactly min(n, all rows)."""
    if n < 0 or floor < 0:
        raise DatasetError(f"sample: n and floor must be 0 or more, got n={n}, floor={floor}")
    if any(c < 0 for c in counts.values()):
        raise DatasetError(f"sample: stratum sizes must be 0 or more, got {dict(counts)}")
    if n >= sum(counts.values()):
        return dict(counts)
    floors = {k: min(floor, c) for k, c in counts.items()}
    if n < sum(floors.values()):
        return _floors_first(counts, floors, n)
    pinned = _pinned_at_floor(counts, floors, n)
    free = {k: c for k, c in counts.items() if c > 0 and k not in pinned}
    shares = largest_remainder(free, n - sum(pinned.values()))
    return {k: pinned.get(k, shares.get(k, 0)) for k in counts}


def largest_remainder(weights: Mapping[str, int], n: int) -> dict[str, int]:
    """Split n in proportion to weights; leftover units go to the largest remainders,
    ties to the alphabetically first key."""
    total = sum(weights.values())
    if total == 0:
        return dict.fromkeys(weights, 0)
    quotas = {k: Fraction(n * w, total) for k, w in weights.items()}
    shares = {k: math.floor(q) for k, q in quotas.items()}
    leftover = n - sum(shares.values())
    for k in sorted(weights, key=lambda k: (shares[k] - quotas[k], k))[:leftover]:
        shares[k] += 1
    return shares


def _floors_first(counts: Mapping[str, int], floors: Mapping[str, int], n: int) -> dict[str, int]:
    shares = dict.fromkeys(counts, 0)
    left = n
    for k in sorted(counts, key=lambda k: (-counts[k], k)):
        shares[k] = min(floors[k], left)
        left -= shares[k]
    return shares


def _pinned_at_floor(
    counts: Mapping[str, int], floors: Mapping[str, int], n: int
) -> dict[str, int]:
    # Pinning a stratum at its floor lowers everyone else's share, which may push another
    # below its floor: repeat until stable. Some stratum always stays free since n ≥ Σ floors.
    pinned: dict[str, int] = {}
    while True:
        free = {k: c for k, c in counts.items() if c > 0 and k not in pinned}
        left, total = n - sum(pinned.values()), sum(free.values())
        low = [k for k, c in free.items() if Fraction(left * c, total) < floors[k]]
        if not low:
            return pinned
        pinned.update((k, floors[k]) for k in low)


def _strata(cases: Sequence[Case], stratify: str | None) -> dict[str, list[int]]:
    if stratify not in (None, OPTIONAL_STRATUM_COLUMN) and cases:  # columns only if needed
        check_stratify(list(dict.fromkeys(k for case in cases for k in case.values)), stratify)
    strata: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        value = case.values.get(stratify, "").strip() if stratify else ""
        strata.setdefault(value or NO_STRATUM, []).append(i)
    return strata


def check_stratify(columns: Sequence[str], stratify: str | None) -> None:
    """DatasetError if the dataset has no column `stratify` (none is needed for `category`)."""
    if stratify is not None and stratify != OPTIONAL_STRATUM_COLUMN and stratify not in columns:
        raise DatasetError(
            f"cannot stratify by {stratify!r}: the dataset has no such column "
            f"(columns: {', '.join(columns)})"
        )


def stratified_order(
    cases: Sequence[Case], *, seed: int = 0, stratify: str | None = "category"
) -> list[Case]:
    """Every row, in an order whose prefixes are stratified samples (module docstring)."""
    strata = _strata(cases, stratify)
    placed: list[tuple[float, int, str, int]] = []
    for key in sorted(strata, key=lambda k: (-len(strata[k]), k)):
        rows = list(strata[key])
        random.Random(f"{seed}:{key}").shuffle(rows)
        size = len(rows)
        for j, index in enumerate(rows):
            position = -1.0 if j == 0 else (j + 0.5) / size
            placed.append((position, -size, key, index))
    return [cases[index] for *_, index in sorted(placed)]
