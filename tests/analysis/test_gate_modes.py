"""The win_rate gate and run-until-decided (anytime) decisions."""

import re
from typing import Any

import pandas as pd
import pytest

from promptdeck.analysis.gates import evaluate_gates, parse_gate
from promptdeck.errors import ConfigError
from tests.analysis.test_gates import BASE, NEW, cell, frame, paired

# --- win_rate -----------------------------------------------------------------------------


def pairwise_cells(values: list[float | None], category: str = "billing") -> pd.DataFrame:
    """Baseline cells (no pairwise value, as the runner stores them) and variant cells whose
    pairwise verdict against the baseline is `values`."""
    cells = []
    for i, v in enumerate(values):
        row = f"{category}-{i:03d}"
        cells.append(cell(row, BASE, 4.0, category=category, pairwise=None))
        cells.append(cell(row, NEW, 4.0, category=category, pairwise=v))
    return frame(cells)


def win_rate(cells: pd.DataFrame, **gate: Any) -> Any:
    [result] = evaluate_gates(cells, BASE, [{"metric": "win_rate", **gate}])
    return result


@pytest.mark.parametrize(
    ("values", "gate", "status", "observed", "reason"),
    [
        # 30 wins, 10 ties: 0.875
        ([1.0] * 30 + [0.5] * 10, {"min": 0.5}, "pass",
         r"^0\.88 \(95% CI 0\.\d\d to 0\.9\d\), n=40: 30 won, 10 tied, 0 lost$",
         "the whole CI is at or above 0.50"),
        # ten ties: even, but ten rows cannot rule out a win rate below 0.45
        ([0.5] * 10, {"min": 0.45}, "insufficient evidence", r"^0\.50 .*n=10: 0 won, 10 tied",
         r"the CI spans 0\.45, so this run cannot tell; to show it is at or above 0\.45 you "
         r"need about \d+ rows"),
        ([0.0] * 30 + [0.5] * 10, {"min": 0.5}, "fail", r"^0\.12 .*30 lost",
         "the whole CI is below 0.50"),
        ([1.0] * 8, {"min": 0.2}, "insufficient evidence", r"n=8", "only 8 rows"),
        ([None, None, 1.0], {"min": 0.2}, "insufficient evidence",
         r"n=1: 1 won, 0 tied, 0 lost \(2 unscored left out\)$", "only 1 rows"),
    ],
)  # fmt: skip
def test_win_rate_gate(
    values: list[float | None], gate: dict[str, Any], status: str, observed: str, reason: str
) -> None:
    result = win_rate(pairwise_cells(values), **gate)
    assert (result.gate, result.variant, result.status) == (
        f"win_rate ≥ {gate['min']:g}",
        NEW,
        status,
    )
    assert re.search(observed, result.observed), result.observed
    assert re.search(reason, result.reason), result.reason


def test_win_rate_averages_repeats_per_row_and_needs_pairwise_verdicts() -> None:
    cells = []
    for i in range(12):
        cells.append(cell(f"r{i}", BASE, pairwise=None))
        cells.append(cell(f"r{i}", NEW, pairwise=1.0, repeat=0))
        cells.append(cell(f"r{i}", NEW, pairwise=0.0, repeat=1))  # a win and a loss: 0.5
    result = win_rate(frame(cells), min=0.3)
    assert result.observed.startswith("0.50 (95% CI") and "n=12: 0 won, 12 tied" in result.observed
    no_column = frame(paired([0.0] * 12))
    assert win_rate(no_column, min=0.5).reason == (
        "no pairwise verdicts here (the suite's judge mode: pairwise)"
    )
    alone = evaluate_gates(pairwise_cells([1.0] * 12), None, [{"metric": "win_rate", "min": 0.5}])
    assert {r.reason for r in alone} == {"the suite names no baseline to compare with"}


def test_win_rate_category_gates_join_the_family() -> None:
    cells = pd.concat([pairwise_cells([1.0] * 40, "a"), pairwise_cells([1.0] * 40, "b")])
    results = evaluate_gates(cells, BASE, [
        {"metric": "win_rate", "min": 0.5, "category": "a"},
        {"metric": "judge_score", "max_drop": 0.5, "category": "b"},
    ])  # fmt: skip
    assert all("(97.5% CI" in r.observed for r in results), results


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"metric": "win_rate", "max_drop": 0.1}, "win_rate takes exactly one of min"),
        ({"metric": "win_rate", "min": 55}, "win_rate min is a share of comparisons, 0 to 1"),
        ({"metric": "win_rate", "min": 0.5, "on": "mean"}, "'on' is for judge_score"),
    ],
)
def test_a_wrong_win_rate_gate_says_what_is_wrong(gate: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_gate(gate)
    assert parse_gate({"metric": "win_rate", "min": 0.45}).name == "win_rate ≥ 0.45"


# --- anytime ------------------------------------------------------------------------------

GATE = {"metric": "judge_score", "max_drop": 0.5}


def anytime(cells: pd.DataFrame, gate: dict[str, Any] = GATE) -> Any:
    [result] = evaluate_gates(cells, BASE, [gate], anytime=True)
    return result


def test_anytime_decisions_read_a_confidence_sequence() -> None:
    gain = frame(paired([1.0, 0.5, 1.5] * 14))
    fixed, running = evaluate_gates(gain, BASE, [GATE])[0], anytime(gain)
    assert fixed.status == running.status == "pass"
    assert "(95% anytime CI" in running.observed and "(95% CI" in fixed.observed
    low = [float(re.findall(r"CI ([+-]\d\.\d\d)", r.observed)[0]) for r in (fixed, running)]
    assert low[1] < low[0]  # valid at every look, so wider than one fixed look
    tied = anytime(frame(paired([0.0] * 10)))
    assert tied.status == "insufficient evidence"
    assert tied.reason.endswith("add rows and look again: the anytime CI stays valid at every look")


def test_anytime_decisions_once_made_stay_made_as_batches_arrive() -> None:
    deltas = [0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0] * 12
    cells = paired(deltas)
    statuses = []
    for rows in range(10, len(deltas) + 1, 10):  # the cells so far, in the order they ran
        statuses.append(anytime(frame(cells[: 2 * rows])).status)
    first = statuses.index("pass")
    assert set(statuses[first:]) == {"pass"}, statuses
    assert set(statuses[:first]) == {"insufficient evidence"}


def test_anytime_follows_the_batch_column_else_the_order_of_the_cells() -> None:
    deltas = [-3.0] * 5 + [0.0] * 35  # five early losses
    cells = paired(deltas)
    in_order = anytime(frame(cells))
    backwards = anytime(frame(cells[::-1]))
    assert in_order.observed != backwards.observed  # the sequence depends on the order
    batched = [{**c, "batch": 0 if int(c["row_id"][-3:]) < 5 else 1} for c in cells[::-1]]
    assert anytime(frame(batched)).observed == in_order.observed
