"""Pairwise rates and position-swap disagreements, from stored values and reasons."""

import pandas as pd
import pytest

from promptdeck.analysis.pairwise import (
    pairwise_frame,
    pairwise_rates,
    swap_disagrees,
    swap_verdicts,
)


@pytest.mark.parametrize(
    ("reason", "verdicts"),
    [
        ("win: candidate first, the judge chose A; swapped, it chose B", ("A", "B")),
        ("tie: candidate first, the judge chose A; swapped, it chose A", ("A", "A")),
        ("tie: candidate first, the judge chose tie; swapped, it chose B", ("tie", "B")),
        ("unscored: a verdict did not parse", None),
        (None, None),
    ],
)
def test_swap_verdicts(reason: str | None, verdicts: tuple[str, str] | None) -> None:
    assert swap_verdicts(reason) == verdicts


@pytest.mark.parametrize(
    ("first", "second", "disagree"),
    [
        ("A", "B", False),  # the candidate both times
        ("B", "A", False),  # the baseline both times
        ("tie", "tie", False),
        ("A", "A", True),  # the first slot both times: position bias
        ("B", "B", True),
        ("A", "tie", True),
        ("tie", "A", True),
    ],
)
def test_swap_disagrees(first: str, second: str, disagree: bool) -> None:
    assert swap_disagrees(first, second) is disagree


def reason(outcome: str, first: str, second: str) -> str:
    return f"{outcome}: candidate first, the judge chose {first}; swapped, it chose {second}"


def test_pairwise_rates_count_exactly() -> None:
    values = [1.0, 1.0, 0.5, 0.5, 0.0, None]
    reasons = [reason("win", "A", "B"), reason("win", "A", "B"), reason("tie", "A", "A"),
               reason("tie", "tie", "B"), reason("loss", "B", "A"), "unscored: failed"]  # fmt: skip
    r = pairwise_rates(values, reasons)
    assert (r.n, r.unscored) == (5, 1)
    assert (r.wins.count, r.ties.count, r.losses.count) == (2, 2, 1)
    assert r.win_rate is not None and r.win_rate.mean == pytest.approx(3 / 5)
    assert (r.disagreements.count, r.disagreements.n, r.same_slot) == (2, 5, 1)
    assert r.wins.ci is not None and r.wins.ci.mean == pytest.approx(0.4)
    assert r.wins.text.startswith("2 of 5 (40%, CI ")
    assert r.win_rate.low is not None and 0 < r.win_rate.low < 0.6 < r.win_rate.high  # type: ignore[operator]


def test_pairwise_rates_without_reasons_or_values() -> None:
    r = pairwise_rates([1.0, 0.5])
    assert r.disagreements.n == 0 and r.disagreements.text == "0 of 0"
    empty = pairwise_rates([None])
    assert (empty.n, empty.unscored, empty.win_rate) == (0, 1, None)
    with pytest.raises(ValueError, match="as long"):
        pairwise_rates([1.0], [])


def test_pairwise_frame_has_one_row_per_judged_variant() -> None:
    cells = pd.DataFrame({
        "variant": ["base", "new", "new", "other"], "pairwise": [None, 1.0, 0.0, None],
        "pairwise_reason": [None, reason("win", "A", "B"), reason("loss", "A", "A"), None],
    })  # fmt: skip
    [row] = pairwise_frame(cells, "base").to_dict("records")
    assert (row["variant"], row["comparisons"], row["win_rate"]) == ("new", 2, 0.5)
    assert row["swap_disagreements"].startswith("1 of 2") and row["same_slot"] == 1
    assert pairwise_frame(cells.drop(columns=["pairwise"]), "base").empty
