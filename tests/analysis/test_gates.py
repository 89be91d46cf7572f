import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pytest

from promptdeck.analysis.gates import GateResult, evaluate_gates, overall_status, parse_gate
from promptdeck.errors import ConfigError

BASE, NEW = "support/production", "support/concise"


def cell(row: str, variant: str, score: float | None = 4.0, **extra: Any) -> dict[str, Any]:
    return {
        "row_id": row, "category": "billing", "variant": variant, "repeat": 0, "error": None,
        "latency_ms": 800.0, "cost_usd": 0.001, "judge_score": score, "checks_passed": 2,
        "checks_total": 2, **extra,
    }  # fmt: skip


def paired(deltas: Sequence[float | None], category: str = "billing") -> list[dict[str, Any]]:
    """Baseline cells scoring 3, 3.5 or 4, and variant cells that differ by `deltas`."""
    cells = []
    for i, d in enumerate(deltas):
        row, base = f"{category}-{i:03d}", 3.0 + (i % 3) * 0.5
        cells.append(cell(row, BASE, base, category=category))
        cells.append(cell(row, NEW, None if d is None else base + d, category=category))
    return cells


def frame(cells: Sequence[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(cells))


def only(cells: pd.DataFrame, gate: dict[str, Any], baseline: str | None = BASE) -> GateResult:
    [result] = evaluate_gates(cells, baseline, [gate])
    return result


CLOSE = [0.0, 0.25, -0.25, 0.0] * 10  # mean 0, sd 0.18: too few rows to rule out 0.2
STEADY = [0.0, 0.25, -0.25, 0.0] * 30  # the same spread over 120 rows: enough
DROP = [-0.5, -1.0, -0.75] * 12  # mean −0.75, the whole CI below −0.2
GAIN = [1.0, 0.5, 1.5] * 14  # mean +1
WIDE = [-2.0, 2.0, -1.5, 1.0, 0.0]  # mean −0.1, five rows
TIED = [0.0] * 10


@pytest.mark.parametrize(
    ("deltas", "gate", "status", "observed", "reason"),
    [
        # ten tied rows are no evidence against a drop: 0 losses in 10 rows is consistent
        # with 31% of rows losing (up to 4 points on [1, 5]); the old bootstrap said
        # "+0.00 (95% CI +0.00 to +0.00)" and passed
        (TIED, {"max_drop": 0.0}, "insufficient evidence",
         r"^\+0\.00 \(95% CI -1\.2\d to \+1\.2\d\), n=10$",
         "no number of rows rules out every drop of a variant that changes nothing"),
        (TIED, {"max_drop": 0.2}, "insufficient evidence", r"n=10$",
         r"the CI spans −0\.20, so this run cannot tell; to rule out a drop of 0\.2 you need "
         r"about 75 paired rows if nothing changed \(row sd 0\.00\); this run has 10$"),
        (CLOSE, {"max_drop": 0.2}, "insufficient evidence",
         r"^\+0\.00 \(95% CI -0\.3\d to \+0\.3\d\), n=40$",
         r"you need about 8\d paired rows if nothing changed \(row sd 0\.18\); this run has 40"),
        (STEADY, {"max_drop": 0.2}, "pass", r"^\+0\.00 \(95% CI -0\.1\d to \+0\.1\d\), n=120$",
         "^the whole CI is at or above −0.20$"),
        (GAIN, {"max_drop": 0.2}, "pass", r"^\+1\.00 \(95% CI \+0\.\d\d to \+1\.\d\d\), n=42$",
         "at or above −0.20"),
        (DROP, {"max_drop": 0.2}, "fail", r"^-0\.75 \(95% CI -1\.\d\d to -0\.\d\d\), n=36$",
         "^the whole CI is below −0.20$"),
        (WIDE, {"max_drop": 0.2}, "insufficient evidence", r"^-0\.10 \(95% CI .*\), n=5$",
         r"^only 5 rows: gates decide from 10; to rule out a drop of 0\.2 you need about"),
        # a drop of exactly the margin in ten rows cannot be told from a larger one
        ([-0.2] * 10, {"max_drop": 0.2}, "insufficient evidence", r"^-0\.20 .*n=10$",
         "the CI spans −0.20"),
        ([-1.0], {"max_drop": 0.2}, "insufficient evidence", r"^-1\.00 \(95% CI .*\), n=1$",
         "only 1 rows"),
        ([None, None], {"max_drop": 0.2}, "insufficient evidence",
         r"no paired rows \(2 unscored left out\)", "no row is scored on both sides"),
        # on: mean judges the point estimate, even with a wide CI
        (WIDE, {"max_drop": 0.2, "on": "mean"}, "pass", r"-0\.10", "estimate is at or above"),
        (WIDE, {"max_drop": 0.05, "on": "mean"}, "fail", r"-0\.10", "estimate is below −0.05"),
        # an absolute minimum on the mean score: 3 + 0.5·(13·1 + 13·2)/40 = 3.4875
        (CLOSE, {"min": 3.0}, "pass", r"^3\.49 \(95% CI 3\.\d\d to 3\.\d\d\), n=40$",
         "at or above 3.00"),
        (CLOSE, {"min": 4.0}, "fail", r"3\.49", "the whole CI is below 4.00"),
        (CLOSE, {"min": 3.5}, "insufficient evidence", r"3\.49",
         r"the CI spans 3\.50, so this run cannot tell; to show it is below 3\.5 you need about "
         r"\d+ rows if the mean is 3\.49 as here \(row sd 0\.45\); this run has 40"),
        (TIED[:6], {"min": 1.0}, "insufficient evidence", r"n=6", "only 6 rows"),
    ],
)  # fmt: skip
def test_judge_score_gates(
    deltas: list[float | None], gate: dict[str, Any], status: str, observed: str, reason: str
) -> None:
    result = only(frame(paired(deltas)), {"metric": "judge_score", **gate})
    assert (result.variant, result.status) == (NEW, status)
    assert re.search(observed, result.observed), result.observed
    assert re.search(reason, result.reason), result.reason


def test_ten_tied_rows_are_not_a_pass_at_any_margin_a_tied_run_can_honestly_claim() -> None:
    cells = frame(paired(TIED))
    for margin in (0.0, 0.2, 0.5, 1.0):
        assert only(cells, {"metric": "judge_score", "max_drop": margin}).status != "pass"
    # on [1, 5], ten tied rows rule out a drop of 1.2 and more, and nothing smaller
    assert only(cells, {"metric": "judge_score", "max_drop": 1.3}).status == "pass"


def test_the_scale_sets_how_far_an_unseen_row_could_fall() -> None:
    tied = frame(paired([0.0] * 100))
    gate = {"metric": "judge_score", "max_drop": 0.2}
    # 100 tied rows: −4·(1 − 0.025^(1/100)) = −0.145 on [1, 5]; −0.33 on [1, 10]
    [five] = evaluate_gates(tied, BASE, [gate], scale=(1, 5))
    [ten] = evaluate_gates(tied, BASE, [gate], scale=(1, 10))
    assert (five.status, ten.status) == ("pass", "insufficient evidence")
    assert re.search(r"CI -0\.1[45] to", five.observed), five.observed
    assert re.search(r"CI -0\.3\d to", ten.observed), ten.observed
    assert evaluate_gates(tied, BASE, [gate]) == [five]  # default: [1, 5]
    # scores outside the scale (here 3 and 3.5 on [4, 5]) widen it, to [3, 5]
    assert evaluate_gates(tied, BASE, [gate], scale=(4, 5)) == evaluate_gates(
        tied, BASE, [gate], scale=(3, 5)
    )


def test_the_gate_names_read_plainly() -> None:
    gates = [
        {"metric": "judge_score", "max_drop": 0.2},
        {"metric": "judge_score", "max_drop": 0.3, "category": "billing", "on": "mean"},
        {"metric": "error_rate", "max": 0.02},
        {"metric": "check_pass_rate", "min": 0.95},
        {"metric": "latency_p95_ms", "max": 2000},
        {"metric": "cost_per_answer_usd", "max": 0.0005},
        {"metric": "confidence", "min": 0.7},
    ]
    assert [parse_gate(g).name for g in gates] == [
        "judge_score drop ≤ 0.2",
        "judge_score drop ≤ 0.3 (billing, point estimate)",
        "error_rate ≤ 0.02",
        "check_pass_rate ≥ 0.95",
        "latency_p95_ms ≤ 2000",
        "cost_per_answer_usd ≤ 0.0005",
        "confidence ≥ 0.7",
    ]


def variant_cells(columns: Mapping[str, Sequence[Any]], n: int = 10) -> pd.DataFrame:
    """n baseline cells and n variant cells; `columns` give the variant's values per cell."""
    cells = [cell(f"r{i}", BASE) for i in range(n)]
    for i in range(n):
        cells.append(cell(f"r{i}", NEW, **{k: v[i] for k, v in columns.items()}))
    return frame(cells)


ERR = "ProviderTimeout: no answer in 60 s"
LATENCY = [float(ms) for ms in range(100, 1100, 100)]  # p95 (linear) = 900 + 0.55·100 = 955


@pytest.mark.parametrize(
    ("gate", "columns", "status", "observed", "reason"),
    [
        ({"metric": "error_rate", "max": 0.1}, {"error": [ERR] + [None] * 9},
         "pass", "10.0% (1 of 10 cells)", "at or below the limit 0.1"),
        ({"metric": "error_rate", "max": 0.1}, {"error": [ERR, ERR] + [None] * 8},
         "fail", "20.0% (2 of 10 cells)", "above the limit 0.1"),
        ({"metric": "check_pass_rate", "min": 0.9}, {"checks_passed": [2] * 8 + [1, 1]},
         "pass", "90.0% (18 of 20 checks)", "at or above the minimum 0.9"),
        ({"metric": "check_pass_rate", "min": 0.9},
         {"checks_passed": [2] * 7 + [0, 1, 1], "error": [None] * 9 + [ERR]},
         "fail", "83.3% (15 of 18 checks), 1 errored cells left out", "below the minimum 0.9"),
        ({"metric": "check_pass_rate", "min": 0.9}, {"checks_passed": [0] * 10,
         "checks_total": [0] * 10}, "insufficient evidence", "no checks", "no check ran"),
        ({"metric": "latency_p95_ms", "max": 1000}, {"latency_ms": LATENCY},
         "pass", "955 ms (n=10)", "at or below the limit 1000"),
        ({"metric": "latency_p95_ms", "max": 900}, {"latency_ms": LATENCY},
         "fail", "955 ms (n=10)", "above the limit 900"),
        ({"metric": "latency_p95_ms", "max": 900}, {"error": [ERR] * 10},
         "insufficient evidence", "no latency, 10 errored cells left out", "no answer has"),
        ({"metric": "cost_per_answer_usd", "max": 0.001}, {"cost_usd": [0.001] * 10},
         "pass", "$0.001 per answer (n=10)", "at or below the limit 0.001"),
        ({"metric": "cost_per_answer_usd", "max": 0.001}, {"cost_usd": [0.002] * 10},
         "fail", "$0.002 per answer (n=10)", "above the limit 0.001"),
        ({"metric": "cost_per_answer_usd", "max": 0.001}, {"cost_usd": [0.0005] * 9 + [None]},
         "insufficient evidence", "≥ $0.00045 per answer (1 of 10 costs unknown)", "no price"),
        ({"metric": "cost_per_answer_usd", "max": 0.001}, {"cost_usd": [0.003] * 9 + [None]},
         "fail", "≥ $0.0027 per answer (1 of 10 costs unknown)", "the known part alone"),
        ({"metric": "confidence", "min": 0.7}, {"confidence": [0.8] * 10},
         "pass", "0.80 (n=10)", "at or above the minimum 0.7"),
        ({"metric": "confidence", "min": 0.7}, {"confidence": [0.6] * 9 + [None]},
         "fail", "0.60 (n=9)", "below the minimum 0.7"),
        ({"metric": "confidence", "min": 0.7}, {"confidence": [None] * 10},
         "insufficient evidence", "no confidence", "no answer has a confidence"),
        ({"metric": "confidence", "min": 0.7}, {},
         "insufficient evidence", "-", "the run records no confidence"),
    ],
)  # fmt: skip
def test_absolute_gates(
    gate: dict[str, Any], columns: dict[str, list[Any]], status: str, observed: str, reason: str
) -> None:
    result = only(variant_cells(columns), gate)
    assert (result.variant, result.status, result.observed) == (NEW, status, observed)
    assert reason in result.reason


def test_repeats_are_averaged_per_row_before_pairing() -> None:
    cells = []
    for i in range(12):
        row = f"r{i}"
        cells.append(cell(row, BASE, 3.0, repeat=0))
        cells.append(cell(row, BASE, 3.0, repeat=1))
        cells.append(cell(row, NEW, 2.0, repeat=0))  # 2 and 4: the row's mean is 3
        cells.append(cell(row, NEW, 4.0, repeat=1))
    # one repeat errored: the other one counts; both errored: the row is left out
    cells[-1] = cell("r11", NEW, None, repeat=1, error=ERR)
    cells[-2] = cell("r11", NEW, 3.0, repeat=0)
    cells += [cell("r12", BASE, 3.0), cell("r12", NEW, None, error=ERR)]
    cells += [cell("r12", NEW, None, repeat=1, error=ERR)]
    result = only(frame(cells), {"metric": "judge_score", "max_drop": 0.0})
    # 12 paired rows, each with a delta of exactly 0 (as cells, 24 deltas of ±1); tied rows
    # are not a pass (this used to read "+0.00 (95% CI +0.00 to +0.00)" and pass)
    assert re.fullmatch(
        r"\+0\.00 \(95% CI -1\.\d\d to \+1\.\d\d\), n=12 \(1 errored left out\)", result.observed
    ), result.observed
    assert result.status == "insufficient evidence"
    errors = only(frame(cells), {"metric": "error_rate", "max": 0.1})
    assert errors.observed == "11.5% (3 of 26 cells)"  # error_rate counts every repeat


BIG_DROP = [-1.0, -1.5, -1.25] * 12  # mean −1.25


def test_a_category_gate_tests_only_that_category_with_bonferroni_widened_intervals() -> None:
    cells = frame(paired(BIG_DROP, "billing") + paired(GAIN, "shipping"))
    gates = [
        {"metric": "judge_score", "max_drop": 0.2, "category": "billing"},
        {"metric": "judge_score", "max_drop": 0.2, "category": "shipping"},
        {"metric": "error_rate", "max": 0.0, "category": "shipping"},
    ]
    billing, shipping, errors = evaluate_gates(cells, BASE, gates)
    assert (billing.gate, billing.status) == ("judge_score drop ≤ 0.2 (billing)", "fail")
    assert (shipping.gate, shipping.status) == ("judge_score drop ≤ 0.2 (shipping)", "pass")
    # two gates in the family: each CI is a 1 − 0.05/2 = 97.5% interval
    assert "(97.5% CI" in billing.observed and "n=36" in billing.observed
    assert "(97.5% CI" in shipping.observed and "n=42" in shipping.observed
    assert (errors.status, errors.observed) == ("pass", "0.0% (0 of 42 cells)")
    overall = only(cells, {"metric": "judge_score", "max_drop": 0.2})
    assert "(95% CI" in overall.observed and "n=78" in overall.observed


def test_category_each_is_one_gate_per_category() -> None:
    cells = frame(paired(BIG_DROP, "billing") + paired(GAIN, "shipping") + paired(CLOSE, "returns"))
    results = evaluate_gates(cells, BASE, [{"metric": "judge_score", "max_drop": 0.2,
                                            "category": "each"}])  # fmt: skip
    assert [(r.gate, r.status) for r in results] == [
        ("judge_score drop ≤ 0.2 (billing)", "fail"),
        ("judge_score drop ≤ 0.2 (returns)", "insufficient evidence"),
        ("judge_score drop ≤ 0.2 (shipping)", "pass"),
    ]
    assert all("(98.3% CI" in r.observed for r in results)
    # the family's rows_needed accounts for its wider intervals
    assert "you need about" in results[1].reason


def test_a_family_shares_its_error_so_each_interval_is_wider_than_alone() -> None:
    categories = ["a", "b", "c", "d", "e"]
    cells = frame([c for name in categories for c in paired(STEADY, name)])
    alone = evaluate_gates(cells, BASE, [{"metric": "judge_score", "max_drop": 0.2,
                                          "category": "a"}])  # fmt: skip
    family = evaluate_gates(cells, BASE, [{"metric": "judge_score", "max_drop": 0.2,
                                           "category": "each"}])  # fmt: skip
    width = [float(x) for x in re.findall(r"[+-]\d\.\d\d", alone[0].observed)[1:]]
    wider = [float(x) for x in re.findall(r"[+-]\d\.\d\d", family[0].observed)[1:]]
    assert "(95% CI" in alone[0].observed and "(99% CI" in family[0].observed
    assert wider[0] < width[0] and wider[1] > width[1]
    # on: mean gates and absolute gates do not join the family
    mixed = evaluate_gates(cells, BASE, [
        {"metric": "judge_score", "max_drop": 0.2, "category": "a"},
        {"metric": "judge_score", "max_drop": 0.2, "category": "b", "on": "mean"},
        {"metric": "error_rate", "max": 0.1, "category": "c"},
    ])  # fmt: skip
    assert mixed[0] == alone[0]


def test_a_category_without_cells_is_insufficient_evidence() -> None:
    result = only(frame(paired(CLOSE)), {"metric": "error_rate", "max": 0.1, "category": "legal"})
    assert (result.status, result.reason) == (
        "insufficient evidence",
        "the run has no cells in category 'legal'",
    )


def test_which_variants_are_gated() -> None:
    cells = frame([*paired(CLOSE), cell("billing-000", "support/empathetic")])
    gates = [{"metric": "error_rate", "max": 0.1}, {"metric": "judge_score", "max_drop": 0.2}]
    # the baseline (production) is not gated; every other variant is
    assert [(r.gate, r.variant) for r in evaluate_gates(cells, BASE, gates)] == [
        ("error_rate ≤ 0.1", NEW),
        ("error_rate ≤ 0.1", "support/empathetic"),
        ("judge_score drop ≤ 0.2", NEW),
        ("judge_score drop ≤ 0.2", "support/empathetic"),
    ]
    # without a baseline: every variant, and comparisons cannot be made
    results = evaluate_gates(cells, None, gates)
    assert [r.variant for r in results] == [BASE, NEW, "support/empathetic"] * 2
    assert {r.status for r in results[3:]} == {"insufficient evidence"}
    assert results[3].reason == "the suite names no baseline to compare with"
    # a baseline with no cells, and a run with nothing but the baseline
    missing = evaluate_gates(frame(paired(CLOSE)), "other", gates[1:])
    assert {r.reason for r in missing} == {"the baseline other has no cells here"}
    lonely = only(frame([cell("r1", BASE)]), gates[0])
    assert (lonely.variant, lonely.status) == ("", "insufficient evidence")


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        ([], "pass"),
        (["pass", "pass"], "pass"),
        (["pass", "insufficient evidence"], "insufficient evidence"),
        (["insufficient evidence", "fail", "pass"], "fail"),
    ],
)
def test_overall_status(statuses: list[Any], overall: str) -> None:
    assert overall_status([GateResult("g", "v", s, "-", "") for s in statuses]) == overall


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"metric": "bleu", "min": 0.3}, "unknown metric 'bleu'"),
        ({"metric": "error_rate", "min": 0.3}, "error_rate takes exactly one of max"),
        ({"metric": "judge_score", "max_drop": 0.2, "min": 3}, "exactly one of max_drop, min"),
        ({"metric": "judge_score"}, "exactly one of"),
        ({"metric": "error_rate", "max": True}, "max must be a number"),
        ({"metric": "error_rate", "max": "2%"}, "max must be a number"),
        ({"metric": "judge_score", "max_drop": -0.2}, "0 or more"),
        ({"metric": "error_rate", "max": 0.1, "on": "mean"}, "'on' is for judge_score"),
        ({"metric": "judge_score", "max_drop": 0.1, "on": "median"}, "ci (default) or mean"),
        ({"metric": "error_rate", "max": 0.1, "when": "always"}, "unknown key 'when'"),
    ],
)
def test_a_wrong_gate_says_what_is_wrong(gate: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        evaluate_gates(frame(paired(CLOSE)), BASE, [gate])


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="judge_score, checks_passed"):
        evaluate_gates(pd.DataFrame({"row_id": [], "category": [], "variant": [], "repeat": [],
                                     "error": [], "latency_ms": [], "cost_usd": [],
                                     "checks_total": []}), BASE, [])  # fmt: skip
