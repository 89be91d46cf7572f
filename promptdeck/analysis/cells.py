"""A stored run as one row per cell: the join every view of a run starts from.

`cell_rows` joins a run's results with their judge verdict and check outcomes (the CSV
export's rows); `load_cells` adds the pairwise verdicts and the human reviews, with a human
score override applied to the judge score (and marked), as a DataFrame.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import pandas as pd

from promptdeck.scoring.scorers import JUDGE, PAIRWISE, check_label
from promptdeck.store.db import Store
from promptdeck.store.rows import CellKey, ResultRow, ScoreRow

CSV_COLUMNS = (
    "run_id", "row_id", "category", "variant", "repeat", "model", "output", "error",
    "ttft_ms", "latency_ms", "input_tokens", "output_tokens", "tokens_estimated", "cost_usd",
    "cached", "fallback_used", "confidence", "judge_score", "judge_reason", "checks_passed",
    "checks_total", "checks_failed", "tool_calls", "thinking", "thinking_ms",
    "reasoning_tokens",
)  # fmt: skip


def cell_rows(
    run_id: str, results: Sequence[ResultRow], scores: Iterable[ScoreRow]
) -> list[dict[str, Any]]:
    """Results joined with their judge verdict and check outcomes (the CSV's rows)."""
    by_cell: dict[CellKey, list[ScoreRow]] = defaultdict(list)
    for s in scores:
        by_cell[(s["row_id"], s["variant"], s["repeat"])].append(s)
    rows = []
    # Every row of one read has the same columns: pick the CSV's once (100,000 cells).
    keep = [k for k in results[0] if k in CSV_COLUMNS] if results else []
    for r in cast(Sequence[Mapping[str, Any]], results):
        mine = by_cell[(r["row_id"], r["variant"], r["repeat"])]
        judge = next((s for s in mine if s["scorer"] == JUDGE), None)
        checks = [(label, s) for s in mine if (label := check_label(s["scorer"])) is not None]
        failed = [label for label, s in checks if not s["passed"]]
        rows.append({
            **{k: r[k] for k in keep},
            "run_id": run_id,
            "judge_score": judge["value"] if judge else None,
            "judge_reason": judge["reason"] if judge else None,
            "checks_passed": len(checks) - len(failed),
            "checks_total": len(checks),
            "checks_failed": "; ".join(failed),
            # a JSON list of {name, arguments (parsed), result[, error]}: [] without tools
            "tool_calls": r.get("tool_calls_json") or "[]",
        })  # fmt: skip
    return rows


def load_cells(store: Store, run_id: str) -> pd.DataFrame:
    """One row per (row, variant, repeat): answer, timings, cost, judge (override applied),
    pairwise verdict, human review, and `failed` (the cell has an error)."""
    scores = store.scores(run_id)
    cells = pd.DataFrame(cell_rows(run_id, store.results(run_id), scores))
    if cells.empty:
        return cells
    pairwise = {
        (s["row_id"], s["variant"], s["repeat"]): s for s in scores if s["scorer"] == PAIRWISE
    }
    reviews = store.reviews(run_id)
    columns = (cells[c].tolist() for c in ("row_id", "variant", "repeat"))  # not per element
    keys: list[CellKey] = list(zip(*columns, strict=True))
    cells["pairwise"] = [p["value"] if (p := pairwise.get(k)) else None for k in keys]
    cells["pairwise_reason"] = [p["reason"] if (p := pairwise.get(k)) else None for k in keys]
    cells["judge_raw"] = cells["judge_score"]
    overrides = [r["score_override"] if (r := reviews.get(k)) else None for k in keys]
    cells["overridden"] = [o is not None for o in overrides]
    cells["judge_score"] = [
        o if o is not None else j
        for o, j in zip(overrides, cells["judge_raw"].tolist(), strict=True)
    ]
    cells["thumbs"] = [r["thumbs"] if (r := reviews.get(k)) else None for k in keys]
    cells["note"] = [r["note"] if (r := reviews.get(k)) else None for k in keys]
    cells["failed"] = cells["error"].notna()
    return cells


def run_judge_scale(snapshot: Mapping[str, Any]) -> tuple[float, float]:
    """The judge's score scale a stored run was planned with ([1, 5] when none is stored)."""
    suite = snapshot.get("suite")
    judge = suite.get("judge") if isinstance(suite, dict) else None
    scale = judge.get("scale") if isinstance(judge, dict) else None
    if (
        isinstance(scale, list)
        and len(scale) == 2
        and all(isinstance(x, int | float) for x in scale)
    ):
        return float(scale[0]), float(scale[1])
    return 1.0, 5.0


def run_judge_model(snapshot: Mapping[str, Any]) -> str | None:
    """The judge model a stored run was planned with, from its snapshot."""
    suite = snapshot.get("suite")
    judge = suite.get("judge") if isinstance(suite, dict) else None
    model = judge.get("model") if isinstance(judge, dict) else None
    return model if isinstance(model, str) else None


def case_input(snapshot: Mapping[str, Any], row_id: str) -> dict[str, Any]:
    """The dataset row a run answered for `row_id`, as the run's snapshot kept it."""
    cases = snapshot.get("cases")
    rows = cases if isinstance(cases, list) else []
    return next((dict(c) for c in rows if isinstance(c, dict) and c.get("id") == row_id), {})


def judge_audits(scores: Iterable[ScoreRow], row_id: str) -> dict[tuple[str, int], ScoreRow]:
    """The judge's stored verdicts for one case, by (variant, repeat): prompt, raw output,
    latency and cost, for auditing a score."""
    return {
        (s["variant"], int(s["repeat"])): s
        for s in scores
        if s["row_id"] == row_id and s["scorer"] == JUDGE
    }


def audit_messages(score: ScoreRow) -> list[tuple[str, str]]:
    """(role, content) of the judge prompt a verdict was given for."""
    try:
        request = json.loads(score["prompt_json"] or "{}")
    except ValueError:
        return []
    messages = request.get("messages", []) if isinstance(request, dict) else []
    return [
        (str(m.get("role", "")), str(m.get("content", ""))) for m in messages if isinstance(m, dict)
    ]
