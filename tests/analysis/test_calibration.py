"""Judge-human agreement against hand-computed values, and the undefined cases."""

from __future__ import annotations

import random

import numpy as np
import pytest

from promptdeck.analysis.calibration import Agreement, agreement, weighted_kappa

JUDGE = [1, 2, 3, 3, 2]
HUMAN = [1, 3, 3, 2, 2]


def test_five_pairs_equal_the_hand_computation() -> None:
    # Pairs (judge, human): (1,1) (2,3) (3,3) (3,2) (2,2); categories 1..3, so k - 1 = 2.
    # exact: 3 of 5 equal = 0.6. within one: every |j - h| <= 1 -> 5 of 5 = 1.0.
    #
    # Marginals: judge 1:1/5 2:2/5 3:2/5; human 1:1/5 2:2/5 3:2/5.
    # Expected joint p_j(i) * p_h(j), in 1/25: (1,2)=2 (1,3)=2 (2,1)=2 (2,3)=4 (3,1)=2 (3,2)=4
    # (the diagonal has weight 0 and is left out).
    #
    # Linear weights |i-j|/2: 1 apart -> 1/2, 2 apart -> 1.
    #   observed = (1/2 + 1/2) / 5 = 0.2
    #   expected = (2*1/2 + 2*1 + 2*1/2 + 4*1/2 + 2*1 + 4*1/2) / 25 = 10/25 = 0.4
    #   kappa_linear = 1 - 0.2 / 0.4 = 0.5
    # Quadratic weights (|i-j|/2)^2: 1 apart -> 1/4, 2 apart -> 1.
    #   observed = (1/4 + 1/4) / 5 = 0.1
    #   expected = (2/4 + 2 + 2/4 + 4/4 + 2 + 4/4) / 25 = 7/25 = 0.28
    #   kappa_quadratic = 1 - 0.1 / 0.28 = 9/14
    result = agreement(JUDGE, HUMAN)
    assert result.n == 5
    assert result.exact == pytest.approx(0.6)
    assert result.within_one == pytest.approx(1.0)
    assert result.kappa_linear == pytest.approx(0.5)
    assert result.kappa_quadratic == pytest.approx(9 / 14)


def test_weighted_kappa_directly_and_symmetric() -> None:
    assert weighted_kappa(JUDGE, HUMAN, [1, 2, 3], "linear") == pytest.approx(0.5)
    assert weighted_kappa(HUMAN, JUDGE, [1, 2, 3], "quadratic") == pytest.approx(9 / 14)
    # Categories nobody used change nothing: they add no observed or expected mass.
    assert weighted_kappa(JUDGE, HUMAN, [1, 2, 3, 4, 5], "quadratic") == pytest.approx(9 / 14)


def test_pairs_with_a_missing_score_are_left_out() -> None:
    judge = [1, None, 2, 3, 3, 2, 4]
    human = [1, 5, 3, 3, 2, 2, None]
    assert agreement(judge, human) == agreement(JUDGE, HUMAN)


def test_no_pairs_is_all_none_never_zero() -> None:
    empty = Agreement(0, None, None, None, None)
    assert agreement([], []) == empty
    assert agreement([None, 3], [4, None]) == empty


def test_one_pair_has_agreement_but_no_kappa() -> None:
    assert agreement([4], [4]) == Agreement(1, 1.0, 1.0, None, None)
    assert agreement([2], [4]) == Agreement(1, 0.0, 0.0, None, None)
    assert weighted_kappa([2], [4], [1, 2, 3, 4, 5], "linear") is None


def test_all_identical_ratings_have_no_kappa() -> None:
    # Every rating is 3: expected disagreement is 0, so chance correction is undefined.
    assert agreement([3, 3, 3, 3], [3, 3, 3, 3]) == Agreement(4, 1.0, 1.0, None, None)
    assert weighted_kappa([3, 3, 3], [3, 3, 3], [1, 2, 3, 4, 5], "quadratic") is None


def test_perfect_and_chance_level_agreement() -> None:
    assert agreement([1, 2, 5, 4], [1, 2, 5, 4]).kappa_quadratic == pytest.approx(1.0)
    # A judge that always says 3 agrees with humans only by chance: kappa 0.
    constant = agreement([3, 3, 3, 3], [1, 2, 3, 4])
    assert constant.kappa_linear == pytest.approx(0.0)
    assert constant.kappa_quadratic == pytest.approx(0.0)
    assert (constant.exact, constant.within_one) == (0.25, 0.75)
    # Systematic disagreement is worse than chance.
    reversed_scale = agreement([1, 2, 4, 5], [5, 4, 2, 1])
    assert reversed_scale.kappa_linear is not None and reversed_scale.kappa_linear < 0


def test_float_scores_round_for_kappa_but_not_for_exact() -> None:
    result = agreement([3.5, 2.0, 1.0], [4, 2, 1])
    assert result.exact == pytest.approx(2 / 3)  # 3.5 is not 4
    assert result.within_one == 1.0
    assert result.kappa_linear == pytest.approx(1.0)  # 3.5 rounds (half up) to 4


def test_matches_a_matrix_computation_on_random_scores() -> None:
    rng = random.Random(7)
    a = [rng.randint(1, 5) for _ in range(200)]
    b = [min(5, max(1, x + rng.choice([-1, 0, 0, 1]))) for x in a]
    observed = np.zeros((5, 5))
    for x, y in zip(a, b, strict=True):
        observed[x - 1, y - 1] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    distance = np.abs(np.subtract.outer(np.arange(5), np.arange(5))) / 4
    for weights, w in (("linear", distance), ("quadratic", distance**2)):
        reference = 1 - (w * observed).sum() / (w * expected).sum()
        assert weighted_kappa(a, b, [1, 2, 3, 4, 5], weights) == pytest.approx(reference)  # type: ignore[arg-type]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 judge scores but 1 human"):
        agreement([1, 2], [1])
    with pytest.raises(ValueError, match=r"ratings \[7\] are not among"):
        weighted_kappa([1, 7], [1, 2], [1, 2, 3], "linear")
    with pytest.raises(ValueError, match="weights must be"):
        weighted_kappa([1, 2], [1, 2], [1, 2], "cubic")  # type: ignore[arg-type]


def test_run_agreement_uses_dataset_labels_and_overrides() -> None:
    from promptdeck.analysis.calibration import run_agreement

    cases = [{"id": "a", "human_score": "4"}, {"id": "b", "human_score": ""}, {"id": "c"}]
    scores = [
        {"scorer": "judge", "row_id": "a", "variant": "v", "repeat": 0, "value": 4.0},
        {"scorer": "judge", "row_id": "b", "variant": "v", "repeat": 0, "value": 2.0},
        {"scorer": "judge", "row_id": "c", "variant": "v", "repeat": 0, "value": None},
        {"scorer": "check:x", "row_id": "a", "variant": "v", "repeat": 0, "value": 1.0},
    ]
    assert run_agreement(cases, scores) is not None
    only_labels = run_agreement(cases, scores)
    assert only_labels is not None and (only_labels.n, only_labels.exact) == (1, 1.0)
    both = run_agreement(cases, scores, {("b", "v", 0): 3.0})
    assert both is not None and (both.n, both.exact, both.within_one) == (2, 0.5, 1.0)
    assert run_agreement([{"id": "a"}], scores) is None
