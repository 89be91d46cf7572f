import csv
import io
from html import escape

import pandas as pd
import pytest

from promptdeck.analysis.cells import CSV_COLUMNS, cell_rows
from promptdeck.analysis.gates import GateResult
from promptdeck.analysis.report import (
    ReportData,
    html_report,
    markdown_summary,
    neutralise,
    to_csv,
)
from promptdeck.store.rows import RunRecord

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


HEADLINES = pd.DataFrame([{
    "variant": "v2", "category": "(all)", "n": 40, "delta": -0.25, "low": -0.5, "high": 0.05,
    "wins": 5, "ties": 25, "losses": 10, "verdict": "underpowered", "mean_baseline": 4.0,
    "mean_variant": 3.75, "p_sign": 0.3, "p_wilcoxon": 0.2, "mde": 0.4,
    "excluded_unscored": 2, "excluded_errors": 1,
    "summary": "-0.25 (95% CI -0.50 to +0.05), n=40 (2 unscored, 1 errored left out): underpowered",
}])  # fmt: skip
BILLING = HEADLINES.assign(
    category="billing", n=10, delta=-1.0, low=-1.5, high=-0.5, verdict="worse",
    summary="-1.00 (95% CI -1.50 to -0.50), n=10: worse",
)  # fmt: skip
COMPARISONS = pd.concat([HEADLINES, BILLING], ignore_index=True)
VARIANTS = pd.DataFrame([
    {"variant": "v1", "cells": 43, "errors": 0, "score": 4.0, "unscored": 1, "ttft_p50": 200.0,
     "ttft_p95": 400.0, "latency_p50": 900.0, "latency_p95": 1500.0, "cost_per_answer": 0.0012,
     "check_pass_rate": 1.0},
    {"variant": "v2", "cells": 43, "errors": 1, "score": 3.75, "unscored": 1, "ttft_p50": 150.0,
     "ttft_p95": 300.0, "latency_p50": 700.0, "latency_p95": 1200.0, "cost_per_answer": None,
     "check_pass_rate": 0.9},
])  # fmt: skip
DIST = pd.DataFrame(
    {"variant": ["v1", "v2", "v2"], "score": ["4", "4", "unscored"], "answers": [42, 41, 1]}
)
GATES = [
    GateResult("judge_score drop ≤ 0.2", "v2", "insufficient evidence", "-0.25 (95% CI -0.50 "
               "to +0.05), n=40", "the CI spans −0.20, so this run cannot tell"),
    GateResult("error_rate ≤ 0.05", "v2", "pass", "2.3% (1 of 43 cells)",
               "at or below the limit 0.05"),
    GateResult("check_pass_rate ≥ 0.95", "v2", "fail", "90.0% | 9 of 10", "below the minimum 0.95"),
]  # fmt: skip
EXAMPLES = [
    {"row_id": "t1", "category": "billing", "variant": "v2", "question": "Refund <when>?",
     "baseline_answer": "In 5-7 days.", "variant_answer": "<script>alert(1)</script>",
     "baseline_score": 5.0, "variant_score": 1.0, "delta": -4.0},
    {"row_id": "t2", "category": "billing", "variant": "v2", "question": "Hi",
     "baseline_answer": "Hello", "variant_answer": "Hello there", "baseline_score": 3.0,
     "variant_score": None, "delta": None},
]  # fmt: skip
RUN = {"id": "20260101-000000-abcd", "created": "2026-01-01T00:00:00", "name": "nightly"}
INPUTS = (RUN, HEADLINES, COMPARISONS, VARIANTS, DIST, GATES, EXAMPLES)


def test_html_report_is_self_contained_and_escaped() -> None:
    page = html_report(ReportData("Support <prompt>", *INPUTS))
    assert page.startswith("<!DOCTYPE html>")
    assert 'src="http' not in page and 'href="http' not in page
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Support &lt;prompt&gt;" in page and "Refund &lt;when&gt;?" in page
    assert page.count("<svg") == 3


def test_html_report_has_headlines_gates_and_method() -> None:
    page = html_report(ReportData("Support", *INPUTS))
    assert "Δ -0.25 (95% CI -0.50 to +0.05), n=40 (2 unscored, 1 errored left out)" in page
    assert "Cannot tell yet" in page and "(it detects changes of 0.40 or more)" in page
    assert '<h2>Gates: <span class="badge fail">fail</span></h2>' in page
    for gate in GATES:
        assert escape(gate.gate) in page and escape(gate.reason) in page
    assert '<span class="badge insufficient">insufficient evidence</span>' in page
    assert "Gaffke bound on the judge's scale" in page and "v2: 2 unscored, 1 errored" in page
    assert "unknown" in page  # v2's cost per answer
    assert "Top losses" in page and "Top wins" not in page
    assert "20260101-000000-abcd · nightly" in page


def test_html_report_takes_a_run_record_and_empty_inputs() -> None:
    run = RunRecord("r1", "2026-01-01", "done", "empty", {}, 0, None)
    empty = pd.DataFrame()
    page = html_report(ReportData("Empty", run, empty, empty, empty, empty, [], []))
    assert "Run r1 · empty · 2026-01-01" in page
    assert "No comparison with a baseline." in page and "declares no gates" in page
    assert page.count("no data") == 3 and "No examples." in page


MARKDOWN = """\
### Support

Run `20260101-000000-abcd` (nightly)

- **v2**: Δ -0.25 (95% CI -0.50 to +0.05), n=40 (2 unscored, 1 errored left out), \
**underpowered**. Cannot tell yet: this run is too small to see a change of the size that \
matters (it detects changes of 0.40 or more). Add rows before deciding.

**Gates: ❌ fail**

| | gate | variant | observed | why |
|---|---|---|---|---|
| ⚠️ | judge_score drop ≤ 0.2 | v2 | -0.25 (95% CI -0.50 to +0.05), n=40 \
| the CI spans −0.20, so this run cannot tell |
| ✅ | error_rate ≤ 0.05 | v2 | 2.3% (1 of 43 cells) | at or below the limit 0.05 |
| ❌ | check_pass_rate ≥ 0.95 | v2 | 90.0% \\| 9 of 10 | below the minimum 0.95 |

Rows left out (never scored 0): v2 2 unscored, 1 errored.
"""


def test_markdown_summary_exact() -> None:
    assert markdown_summary(ReportData("Support", *INPUTS)) == MARKDOWN
    with_path = markdown_summary(ReportData("Support", *INPUTS), report_path="out/report.html")
    assert with_path == MARKDOWN + "Full report: out/report.html\n"


def test_markdown_summary_without_gates_or_comparisons() -> None:
    empty = pd.DataFrame()
    text = markdown_summary(ReportData("<b>x</b>", RUN, empty, empty, empty, empty, [], []))
    assert text.splitlines() == [
        "### &lt;b&gt;x&lt;/b&gt;", "", "Run `20260101-000000-abcd` (nightly)", "",
        "- No comparison with a baseline.", "", "**Gates:** the suite declares none.", "",
        "Rows left out (never scored 0): none.",
    ]  # fmt: skip


def test_both_reports_name_the_judge_and_keep_the_demo_judge_warning() -> None:
    data = ReportData("Support", *INPUTS, judge_model="local/smollm2", demo_judge=True)
    page, summary = html_report(data), markdown_summary(data)
    assert "· judge: local/smollm2" in page and "judge `local/smollm2`" in summary
    assert "Demo judge. These scores come from the embedded SmolLM2-135M model" in page
    assert "> Demo judge. These scores come from the embedded SmolLM2-135M model" in summary
    plain = ReportData("Support", *INPUTS, judge_model="openai/gpt-4o-mini")
    assert "Demo judge" not in html_report(plain) + markdown_summary(plain)
