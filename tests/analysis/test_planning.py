"""Sample-size planning: exact tied cases, monotonicity, the gates it plans."""

import itertools
import math

import numpy as np
import pytest

from promptdeck.analysis.bounds import gaffke_bounds
from promptdeck.analysis.planning import default_sd, detectable_change, rows_needed

DROP = {"metric": "judge_score", "max_drop": 0.2}
SCALE = (1, 5)


def test_tied_rows_need_the_exact_clopper_pearson_count_plus_the_monte_carlo_slack() -> None:
    # all ties: pass once 4.16·(1 − 0.025^(1/n)) ≤ 0.2 (4 points of fall, 4% slack)
    exact = math.ceil(math.log(0.025) / math.log(1 - 0.2 / (4 * 1.04)))
    assert rows_needed(DROP, scale=SCALE, sd=0.0) == exact == 75
    # and at that size the bound of tied rows is a pass
    low, _ = gaffke_bounds(np.zeros(exact), low=-4, high=4)
    assert low[0] >= -0.2


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"sd": 0.98}, 244),  # the harness's symmetric shape
        ({}, 252),  # no history: sd 1.0 on [1, 5]
        ({"values": [0.0, 1.0, -1.0, 0.0] * 10}, None),  # sd of the values: checked below
    ],
)
def test_rows_needed_for_a_drop_gate(kwargs: dict[str, object], expected: int | None) -> None:
    got = rows_needed(DROP, scale=SCALE, **kwargs)  # type: ignore[arg-type]
    if expected is not None:
        assert got == expected
    else:
        sd = float(np.std([0.0, 1.0, -1.0, 0.0] * 10, ddof=1))
        assert got == rows_needed(DROP, scale=SCALE, sd=sd)


def test_more_spread_a_smaller_margin_a_wider_scale_or_a_family_need_more_rows() -> None:
    base = rows_needed(DROP, scale=SCALE, sd=0.8)
    assert base is not None
    for other in (
        rows_needed(DROP, scale=SCALE, sd=1.2),
        rows_needed({**DROP, "max_drop": 0.1}, scale=SCALE, sd=0.8),
        rows_needed(DROP, scale=(1, 10), sd=0.8),
        rows_needed(DROP, scale=SCALE, sd=0.8, family=5),
    ):
        assert other is not None and other > base
    assert rows_needed({**DROP, "max_drop": 0.5}, scale=SCALE, sd=0.8) < base  # type: ignore[operator]


def test_what_no_number_of_rows_decides() -> None:
    assert rows_needed({**DROP, "max_drop": 0.0}, scale=SCALE, sd=0.5) is None
    assert rows_needed({"metric": "judge_score", "min": 4.0}, scale=SCALE, expected=4.0) is None
    with pytest.raises(ValueError, match="plans judge_score"):
        rows_needed({"metric": "error_rate", "max": 0.1}, scale=SCALE)
    with pytest.raises(ValueError, match="expected mean"):
        rows_needed({"metric": "judge_score", "min": 4.0}, scale=SCALE)


def test_min_and_win_rate_gates_plan_from_the_expected_value() -> None:
    above = rows_needed(
        {"metric": "judge_score", "min": 4.0}, scale=SCALE, values=[4.5, 4.0, 5.0] * 5
    )
    below = rows_needed({"metric": "judge_score", "min": 4.0}, scale=SCALE, expected=3.5, sd=0.6)
    assert above is not None and below is not None
    # win_rate: [0, 1], 0.5 expected without history
    even = rows_needed({"metric": "win_rate", "min": 0.4}, scale=SCALE)
    assert even == rows_needed({"metric": "win_rate", "min": 0.4}, scale=(0, 1), expected=0.5,
                               sd=default_sd((0, 1)))  # fmt: skip


def test_default_sd_and_detectable_change() -> None:
    assert (default_sd((1, 5)), default_sd((0, 1)), default_sd((1, 10))) == (1.0, 0.5, 2.25)
    assert detectable_change(1, 1.0, 4.0) is None
    assert detectable_change(10, 0.0, 4.0) == pytest.approx(4 * 1.04 * (1 - 0.025**0.1) + 0.0)
    changes = [detectable_change(n, 1.0, 4.0) for n in (10, 30, 100, 1000)]
    assert all(a > b for a, b in itertools.pairwise(changes))  # type: ignore[operator]
    with pytest.raises(ValueError, match="sd"):
        detectable_change(10, -1.0, 4.0)
