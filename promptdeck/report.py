"""Exports of a run: a CSV with one row per (case, variant, repeat).

Spreadsheet formulas in user or model text are neutralised (a leading ', as OWASP
recommends for CSV injection), so opening the export in Excel or Sheets runs nothing.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

CSV_COLUMNS = (
    "run_id", "row_id", "category", "variant", "repeat", "model", "output", "error",
    "ttft_ms", "latency_ms", "input_tokens", "output_tokens", "tokens_estimated", "cost_usd",
    "cached", "fallback_used", "confidence", "judge_score", "judge_reason", "checks_passed",
    "checks_total", "checks_failed",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def cell_rows(
    run_id: str, results: Sequence[Mapping[str, Any]], scores: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Results joined with their judge verdict and check outcomes."""
    by_cell: dict[tuple[str, str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for s in scores:
        by_cell[(s["row_id"], s["variant"], s["repeat"])].append(s)
    rows = []
    for r in results:
        mine = by_cell[(r["row_id"], r["variant"], r["repeat"])]
        judge = next((s for s in mine if s["scorer"] == "judge"), None)
        checks = [s for s in mine if s["scorer"].startswith("check:")]
        failed = [s["scorer"].removeprefix("check:") for s in checks if not s["passed"]]
        rows.append({
            **{k: r.get(k) for k in CSV_COLUMNS if k in r},
            "run_id": run_id,
            "judge_score": judge["value"] if judge else None,
            "judge_reason": judge["reason"] if judge else None,
            "checks_passed": len(checks) - len(failed),
            "checks_total": len(checks),
            "checks_failed": "; ".join(failed),
        })  # fmt: skip
    return rows


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: neutralise(row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()
