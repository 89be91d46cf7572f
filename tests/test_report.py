import csv
import io

import pytest

from promptdeck.report import CSV_COLUMNS, cell_rows, neutralise, to_csv

RESULT = {
    "row_id": "r1", "category": "billing", "variant": "v", "repeat": 0, "model": "local/m",
    "output": "=HYPERLINK(\"http://x\")", "error": None, "ttft_ms": 10.0, "latency_ms": 50.0,
    "input_tokens": 5, "output_tokens": 7, "tokens_estimated": 0, "cost_usd": 0.0, "cached": 0,
    "fallback_used": 0,
}  # fmt: skip
SCORES = [
    {"row_id": "r1", "variant": "v", "repeat": 0, "scorer": "judge", "value": 4.0,
     "reason": "clear", "passed": None},
    {"row_id": "r1", "variant": "v", "repeat": 0, "scorer": "check:max_chars 10",
     "value": 0.0, "reason": "too long", "passed": 0},
    {"row_id": "r1", "variant": "v", "repeat": 0, "scorer": "check:contains 'a'",
     "value": 1.0, "reason": "ok", "passed": 1},
]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "out"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("plain", "plain"), (3, 3), (None, None)],
)  # fmt: skip
def test_neutralise(value: object, out: object) -> None:
    assert neutralise(value) == out


def test_csv_has_one_row_per_cell_with_judge_and_checks() -> None:
    text = to_csv(cell_rows("run1", [RESULT], SCORES))
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert list(row) == list(CSV_COLUMNS)
    assert row["output"] == '\'=HYPERLINK("http://x")'
    assert (row["run_id"], row["judge_score"], row["judge_reason"]) == ("run1", "4.0", "clear")
    assert (row["checks_passed"], row["checks_total"], row["checks_failed"]) == (
        "1", "2", "max_chars 10")  # fmt: skip
