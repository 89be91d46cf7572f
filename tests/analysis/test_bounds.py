"""Bounds on a bounded mean: exact small cases, seeding, and coverage on the worst shape."""

import math

import numpy as np
import pytest

from promptdeck.analysis.bounds import cs_bounds, gaffke_bounds


@pytest.mark.parametrize("n", [1, 10, 30, 100])
def test_tied_values_give_the_exact_bound_for_a_share_at_the_range_end(n: int) -> None:
    # n values at 0 on [−4, 4]: 0 − 4·(1 − 0.025^(1/n)), Clopper–Pearson for 0 of n
    low, high = gaffke_bounds(np.zeros(n), low=-4.0, high=4.0)
    exact = 4.0 * (1.0 - 0.025 ** (1.0 / n))
    assert low[0] == pytest.approx(-exact, rel=0.04)  # Monte Carlo error of 10,000 draws
    assert high[0] == pytest.approx(exact, rel=0.04)


def test_zero_one_values_give_clopper_pearson() -> None:
    # 3 of 10: the exact 95% interval is 0.0667 to 0.6525
    low, high = gaffke_bounds([1.0] * 3 + [0.0] * 7, low=0.0, high=1.0)
    assert (low[0], high[0]) == (pytest.approx(0.0667, abs=0.01), pytest.approx(0.6525, abs=0.01))


def test_bounds_are_seeded_and_the_same_one_sample_at_a_time() -> None:
    x = np.random.default_rng(4).integers(-2, 3, (5, 20)).astype(float)
    together = gaffke_bounds(x, low=-4, high=4, seed=3)
    alone = [gaffke_bounds(row, low=-4, high=4, seed=3) for row in x]
    assert np.allclose(together[0], [a[0][0] for a in alone])
    assert np.allclose(together[1], [a[1][0] for a in alone])
    assert np.array_equal(gaffke_bounds(x, low=-4, high=4, seed=3)[0], together[0])
    assert not np.array_equal(gaffke_bounds(x, low=-4, high=4, seed=4)[0], together[0])
    assert np.all(together[0] <= x.mean(axis=1)) and np.all(x.mean(axis=1) <= together[1])
    shuffled = x[:, ::-1]  # the same values in another order: the same bounds
    assert np.array_equal(gaffke_bounds(shuffled, low=-4, high=4, seed=3)[0], together[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gaffke_bounds([5.0], low=1, high=4), "must lie in"),
        (lambda: gaffke_bounds([], low=0, high=1), "at least one"),
        (lambda: gaffke_bounds([0.5], low=1, high=1), "high > low"),
        (lambda: gaffke_bounds([0.5], low=0, high=1, alpha=0.6), "alpha"),
        (lambda: gaffke_bounds([math.nan], low=0, high=1), "finite"),
        (lambda: cs_bounds([2.0], low=0, high=1), "must lie in"),
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_the_worst_shape_is_covered_at_the_nominal_rate() -> None:
    # a share q of rows at the range's end, the rest at 0: the bound is tightest here
    rng = np.random.default_rng(11)
    n, q = 30, 0.05
    x = np.where(rng.random((2000, n)) < q, -4.0, 0.0)
    low, _ = gaffke_bounds(x, low=-4, high=4)
    assert np.mean(low > -4 * q) <= 0.035  # 2.5% nominal; the Monte Carlo error of 2,000


def test_a_confidence_sequence_starts_at_the_range_and_only_narrows() -> None:
    low, high = cs_bounds([1.0], low=0.0, high=1.0)
    assert (low[0, 0], high[0, 0]) == (0.0, 1.0)  # one value rules nothing out at 2.5%
    x = np.random.default_rng(2).integers(0, 2, (3, 150)).astype(float)
    low, high = cs_bounds(x, low=0.0, high=1.0)
    assert np.all(np.diff(low, axis=1) >= 0) and np.all(np.diff(high, axis=1) <= 0)
    assert np.all(low <= high)
    assert np.all(high[:, -1] - low[:, -1] < 0.5)


def test_a_confidence_sequence_holds_at_every_look() -> None:
    rng = np.random.default_rng(5)
    x = (rng.random((400, 200)) < 0.3).astype(float)
    low, high = cs_bounds(x, low=0.0, high=1.0)
    ever_missed = ((low > 0.3) | (high < 0.3)).any(axis=1)
    assert ever_missed.mean() <= 0.05
