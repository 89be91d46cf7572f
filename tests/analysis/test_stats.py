import itertools
import math
import re
from collections.abc import Sequence

import numpy as np
import pytest

from promptdeck.analysis.stats import (
    Comparison,
    Interval,
    compare,
    compare_pass_rates,
    mcnemar,
    mde,
    mean_ci,
    mean_ci_bootstrap,
    mean_ci_t,
    normal_quantile,
    score_scale,
    sign_test,
    t_quantile,
    wilcoxon,
    win_tie_loss,
)

# --- quantiles (reference values from printed tables) ------------------------------------


@pytest.mark.parametrize(
    ("p", "z"),
    [(0.975, 1.959964), (0.8, 0.841621), (0.5, 0.0), (0.995, 2.575829), (0.025, -1.959964),
     (0.01, -2.326348), (1e-10, -6.361341)],
)  # fmt: skip
def test_normal_quantile(p: float, z: float) -> None:
    assert normal_quantile(p) == pytest.approx(z, abs=1e-6)


@pytest.mark.parametrize(
    ("p", "df", "t"),
    [(0.975, 9, 2.262157), (0.975, 29, 2.045230), (0.975, 1, 12.706205), (0.975, 2, 4.302653),
     (0.995, 5, 4.032143), (0.9, 3, 1.637744), (0.975, 30, 2.042272), (0.975, 100, 1.983972),
     (0.975, 1000, 1.962339), (0.025, 9, -2.262157), (0.5, 4, 0.0)],
)  # fmt: skip
def test_t_quantile(p: float, df: int, t: float) -> None:
    assert t_quantile(p, df) == pytest.approx(t, abs=2e-6)


def test_t_quantile_is_continuous_where_the_method_changes() -> None:
    # exact CDF up to df 200, Cornish–Fisher above
    assert t_quantile(0.975, 200) - t_quantile(0.975, 201) == pytest.approx(6.0e-5, abs=2e-6)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_quantiles_refuse_p_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError):
        normal_quantile(bad)
    with pytest.raises(ValueError):
        t_quantile(bad, 5)


# --- coverage on simulated paired data with a known effect -------------------------------

TRUE_DELTA = 0.3


def simulated_deltas(rng: np.random.Generator, n: int) -> np.ndarray:
    """Judge-like pairs: a row difficulty shared by both sides, a known true effect."""
    difficulty = rng.normal(3.5, 0.8, n)
    baseline = difficulty + rng.normal(0.0, 0.6, n)
    variant = difficulty + TRUE_DELTA + rng.normal(0.0, 0.6, n)
    return variant - baseline


def coverage(interval: str, sims: int = 1000, n: int = 40) -> float:
    rng = np.random.default_rng(2024)
    hits = 0
    for sim in range(sims):
        d = simulated_deltas(rng, n)
        ci = mean_ci_bootstrap(d, resamples=2000, seed=sim) if interval == "boot" else mean_ci_t(d)
        assert ci is not None and ci.low is not None and ci.high is not None
        hits += ci.low <= TRUE_DELTA <= ci.high
    return hits / sims


@pytest.mark.parametrize("interval", ["boot", "t"])
def test_95_percent_intervals_cover_the_true_delta_about_95_percent_of_the_time(
    interval: str,
) -> None:
    assert 0.93 <= coverage(interval) <= 0.97


def test_bootstrap_is_seeded_and_chunked_for_large_n() -> None:
    d = np.random.default_rng(1).normal(0.1, 1.0, 5000)  # 5000 x 2000 draws: several blocks
    first, again = mean_ci_bootstrap(d, seed=3), mean_ci_bootstrap(d, seed=3)
    t = mean_ci_t(d)
    assert first == again
    assert first is not None and t is not None and first.low is not None and t.low is not None
    assert first.low == pytest.approx(t.low, abs=0.01)
    assert mean_ci_bootstrap(d, seed=4) != first


# --- n = 0, n = 1, ties ------------------------------------------------------------------


def test_no_deltas_give_no_answer() -> None:
    assert mean_ci_bootstrap([]) is None
    assert mean_ci_t([]) is None
    assert sign_test([]) is None
    assert wilcoxon([]) is None
    assert win_tie_loss([]) == (0, 0, 0)


def test_one_delta_gives_a_mean_without_an_interval() -> None:
    assert mean_ci_bootstrap([0.5]) == Interval(0.5, None, None)
    assert mean_ci_t([0.5]) == Interval(0.5, None, None)
    assert sign_test([0.5]) == 1.0  # 2 · C(1,0)/2^1
    assert wilcoxon([0.5]) == 1.0


def test_all_ties() -> None:
    zeros = [0.0] * 12
    assert sign_test(zeros) == 1.0
    assert wilcoxon(zeros) == 1.0
    assert win_tie_loss(zeros) == (0, 12, 0)
    assert mean_ci_bootstrap(zeros) == Interval(0.0, 0.0, 0.0)
    assert mean_ci_t(zeros) == Interval(0.0, 0.0, 0.0)


def test_non_finite_deltas_are_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="unscored"):
        mean_ci_bootstrap([1.0, math.nan])


# --- tests against hand computation -----------------------------------------------------


@pytest.mark.parametrize(
    ("deltas", "p"),
    [
        # 8 positive, 2 negative: 2·Σ_{k=0..2} C(10,k)/2^10 = 2·(1+10+45)/1024 = 0.109375
        ([1.0] * 8 + [-1.0] * 2, 0.109375),
        # 10 positive: 2·C(10,0)/2^10 = 2/1024
        ([0.5] * 10, 0.001953125),
        # 5 and 5: 2·Σ_{k=0..5} C(10,k)/2^10 = 2·638/1024 > 1 → 1
        ([1.0] * 5 + [-2.0] * 5, 1.0),
        # zeros (and float noise) dropped: 3 up, 1 down → 2·(1+4)/16 = 0.625
        ([1.0, 1.0, 1.0, 0.0, 1e-12, -1.0], 0.625),
    ],
)
def test_sign_test(deltas: list[float], p: float) -> None:
    assert sign_test(deltas) == pytest.approx(p, abs=1e-12)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 0, 1.0),
        (1, 0, 1.0),  # 2·C(1,0)/2 = 1
        (5, 0, 0.0625),  # 2·C(5,0)/2^5 = 2/32
        # 2·Σ_{k=0..3} C(13,k)/2^13 = 2·(1+13+78+286)/8192 = 756/8192
        (10, 3, 756 / 8192),
        (3, 10, 756 / 8192),
    ],
)
def test_mcnemar(b: int, c: int, p: float) -> None:
    assert mcnemar(b, c) == pytest.approx(p, abs=1e-12)


@pytest.mark.parametrize(
    ("deltas", "p"),
    [
        # ranks 1..5 all positive: W+ = 15, only 1 of 2^5 sign patterns reaches it → 2/32
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.0625),
        # W+ = 15 − 4 = 11; P(W+ ≥ 11) = P(W+ ≤ 4) = |{∅,1,2,3,4,12,13}|/32 = 7/32 → 14/32
        ([1.0, 2.0, 3.0, -4.0, 5.0], 0.4375),
        ([0.0, 1.0, 2.0, 0.0, 3.0, -4.0, 5.0], 0.4375),  # zeros dropped
    ],
)
def test_wilcoxon_exact(deltas: list[float], p: float) -> None:
    assert wilcoxon(deltas) == pytest.approx(p, abs=1e-12)


def test_wilcoxon_exact_with_ties_equals_brute_force_over_every_sign_pattern() -> None:
    deltas = [0.5, -0.5, 1.0, 1.0, -1.0, 1.5, 2.0, 2.0, 2.0, -2.5]
    # |d| ranks by hand: 0.5 ×2 → 1.5; 1.0 ×3 → 4; 1.5 → 6; 2.0 ×3 → 8; 2.5 → 10
    ranks = [1.5, 1.5, 4, 4, 4, 6, 8, 8, 8, 10]
    w_plus = sum(r for r, d in zip(ranks, deltas, strict=True) if d > 0)
    sums = [sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in
            itertools.product([0, 1], repeat=len(ranks))]  # fmt: skip
    low = sum(s <= w_plus for s in sums) / len(sums)
    high = sum(s >= w_plus for s in sums) / len(sums)
    assert wilcoxon(deltas) == pytest.approx(min(1.0, 2 * min(low, high)), abs=1e-12)


def test_wilcoxon_normal_approximation_above_25() -> None:
    # 1..30 with 1, 2, 3 negative: W+ = 465 − 6 = 459, mean 30·31/4 = 232.5,
    # var 30·31·61/24 = 2363.75; z = (459 − 232.5 − 0.5)/√2363.75; p = erfc(z/√2)
    deltas = [-1.0, -2.0, -3.0] + [float(k) for k in range(4, 31)]
    z = 226 / math.sqrt(2363.75)
    assert wilcoxon(deltas) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)


def test_wilcoxon_normal_approximation_corrects_for_ties() -> None:
    # 15 × |1| (ranks 1..15, average 8): 5 up; 15 × |2| (ranks 16..30, average 23): all up.
    # W+ = 5·8 + 15·23 = 385; var = 2363.75 − 2·(15³ − 15)/48 = 2223.75
    deltas = [1.0] * 5 + [-1.0] * 10 + [2.0] * 15
    z = (385 - 232.5 - 0.5) / math.sqrt(2223.75)
    assert wilcoxon(deltas) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)


def test_win_tie_loss_with_a_tolerance() -> None:
    deltas = [1.0, 0.25, 0.0, 1e-12, -0.25, -2.0]
    assert win_tie_loss(deltas) == (2, 2, 2)
    assert win_tie_loss(deltas, tol=0.25) == (1, 4, 1)


@pytest.mark.parametrize(
    ("sd", "n", "kwargs", "expected"),
    [
        (1.0, 100, {}, (1.959964 + 0.841621) / 10),
        (0.8, 64, {}, (1.959964 + 0.841621) * 0.8 / 8),
        (1.0, 25, {"alpha": 0.1, "power": 0.9}, (1.644854 + 1.281552) / 5),
        (0.0, 10, {}, 0.0),
        (1.0, 1, {}, None),
        (1.0, 0, {}, None),
    ],
)
def test_mde(sd: float, n: int, kwargs: dict[str, float], expected: float | None) -> None:
    result = mde(sd, n, **kwargs)
    assert result == (None if expected is None else pytest.approx(expected, abs=1e-6))


# --- compare ----------------------------------------------------------------------------


def scores(values: Sequence[float | None], prefix: str = "r") -> dict[str, float | None]:
    return {f"{prefix}{i:03d}": v for i, v in enumerate(values)}


def test_unscored_and_errored_rows_are_left_out_and_counted_never_zero() -> None:
    baseline = {"a": 3.0, "b": None, "c": 3.0, "d": 4.0, "e": 2.0, "f": 4.0}
    variant = {"a": 4.0, "b": 5.0, "c": None, "d": 5.0, "e": 3.0, "g": 1.0}
    result = compare(baseline, variant, errors_variant={"e"}, errors_baseline={"h"})
    # paired: a, d (+1 each); unscored: b, c, f (no variant), g (no baseline); errored: e, h
    assert (result.n, result.excluded_unscored, result.excluded_errors) == (2, 4, 2)
    assert result.delta == 1.0
    assert (result.mean_baseline, result.mean_variant) == (3.5, 4.5)
    assert (result.wins, result.ties, result.losses) == (2, 0, 0)
    assert result.summary.endswith(
        "n=2 (4 unscored, 2 errored left out): underpowered"
    )  # fewer than 10 pairs


def test_compare_with_no_pairs_or_one_pair() -> None:
    empty = compare({"a": None}, {"a": 4.0})
    assert (empty.n, empty.excluded_unscored, empty.verdict) == (0, 1, "no data")
    assert empty.delta is None and empty.ci is None and empty.p_sign is None
    assert empty.summary == "no paired rows (1 unscored left out): no data"
    one = compare({"a": 3.0}, {"a": 4.0})
    # one row on [1, 5] bounds the mean delta only by the scale: honest, and useless
    assert one.ci is not None and one.ci.mean == 1.0 and one.mde is None and one.sd is None
    assert re.fullmatch(
        r"\+1\.00 \(95% CI -\d\.\d\d to \+\d\.\d\d\), n=1: underpowered", one.summary
    )


@pytest.mark.parametrize(
    ("deltas", "verdict"),
    [
        ([0.5, 0.25, 1.0] * 20, "better"),
        ([-0.5, 0.0, -1.0, 0.25] * 15, "worse"),
        # mean 0, sd ≈ 0.1, 200 rows: the whole CI within ±0.2
        ([0.1, -0.1] * 100, "within noise"),
        ([1.0, -1.0] * 5, "underpowered"),
        # ten tied rows: not "within noise" (a change of 0.2 could hide in 10 rows)
        ([0.0] * 10, "underpowered"),
    ],
)
def test_verdicts(deltas: list[float], verdict: str) -> None:
    base = [3.0 + (i % 3) * 0.5 for i in range(len(deltas))]
    variant = [b + d for b, d in zip(base, deltas, strict=True)]
    assert compare(scores(base), scores(variant), seed=5).verdict == verdict


def test_compare_depends_on_the_data_and_seed_not_on_row_order() -> None:
    rng = np.random.default_rng(3)
    base, var = scores(list(rng.normal(3, 1, 30))), scores(list(rng.normal(3.2, 1, 30)))
    shuffled = dict(reversed(list(var.items())))
    assert compare(base, var, seed=9) == compare(base, shuffled, seed=9)
    summary = compare(base, var, variant_name="v", baseline_name="b").summary
    assert re.fullmatch(r"[+-]\d\.\d\d \(95% CI [+-]\d\.\d\d to [+-]\d\.\d\d\), n=30: .+", summary)


def test_summary_reads_as_one_line() -> None:
    result = Comparison(
        variant="support/concise", baseline="support/production", category=None, n=58,
        excluded_unscored=0, excluded_errors=0, mean_baseline=3.5, mean_variant=3.92,
        delta=0.42, ci=Interval(0.42, 0.10, 0.75), t=Interval(0.42, 0.09, 0.75),
        p_sign=0.01, p_wilcoxon=0.01, wins=30, ties=20, losses=8, mde=0.3, verdict="better",
    )  # fmt: skip
    assert result.summary == "+0.42 (95% CI +0.10 to +0.75), n=58: better"


def test_compare_pass_rates_counts_the_flips() -> None:
    base = {"a": True, "b": True, "c": True, "d": False, "e": True, "f": True, "x": True}
    var = {"a": True, "b": False, "c": False, "d": True, "e": False, "f": True, "y": False}
    result = compare_pass_rates(base, var)
    # rows a..f; pass→fail: b, c, e (b = 3); fail→pass: d (c = 1); 2·(1+4)/16 = 0.625
    assert (result.n, result.b, result.c) == (6, 3, 1)
    assert result.rate_baseline == pytest.approx(5 / 6)
    assert result.rate_variant == pytest.approx(3 / 6)
    assert result.delta == pytest.approx(-2 / 6)
    assert result.p == pytest.approx(0.625)
    empty = compare_pass_rates({}, {"a": True})
    assert (empty.n, empty.rate_baseline, empty.delta, empty.p) == (0, None, None, 1.0)


def test_ten_tied_rows_are_not_within_noise_and_say_what_they_can_detect() -> None:
    tied = compare(scores([4.0] * 10), scores([4.0] * 10))
    assert tied.ci is not None and tied.ci.low is not None and tied.ci.high is not None
    # −4·(1 − 0.025^(1/10)) = −1.23: 0 losses in 10 rows allow 31% of rows losing 4 points
    assert tied.ci.low == pytest.approx(-1.234, abs=0.06)
    assert tied.ci.high == pytest.approx(1.234, abs=0.06)
    assert tied.verdict == "underpowered" and tied.sd == 0.0
    assert tied.mde is not None and tied.mde > 1.0  # was 0: "detects any change"


def test_the_scale_and_the_level_set_the_interval() -> None:
    base, var = scores([4.0] * 30), scores([4.0] * 29 + [3.0])
    wide = compare(base, var, scale=(1, 10))
    narrow = compare(base, var)  # [1, 5]
    family = compare(base, var, level=1 - 0.05 / 5)
    assert wide.ci is not None and narrow.ci is not None and family.ci is not None
    assert wide.ci.low is not None and narrow.ci.low is not None and family.ci.low is not None
    assert wide.ci.low < narrow.ci.low and family.ci.low < narrow.ci.low
    assert "(99% CI" in family.summary and "(95% CI" in narrow.summary
    sequence = compare(base, var, anytime=True)
    assert "(95% anytime CI" in sequence.summary and sequence.anytime


def test_score_scale_and_mean_ci() -> None:
    assert score_scale(None) == (1.0, 5.0)
    assert score_scale((1, 10), [3.0, 4.0]) == (1.0, 10.0)
    assert score_scale(None, [0.0, 4.0], [math.nan]) == (0.0, 5.0)  # widened to what was seen
    with pytest.raises(ValueError, match="high > low"):
        score_scale((5, 1))
    assert mean_ci([], low=0, high=1) is None
    ci = mean_ci([1.0] * 3 + [0.0] * 7, low=0.0, high=1.0)
    # 0/1 values: the Clopper–Pearson interval for 3 of 10, 0.0667 to 0.6525
    assert ci is not None and ci.mean == 0.3
    assert ci.low == pytest.approx(0.0667, abs=0.01) and ci.high == pytest.approx(0.6525, abs=0.01)
    with pytest.raises(ValueError, match="lie in"):
        mean_ci([2.0], low=0.0, high=1.0)
