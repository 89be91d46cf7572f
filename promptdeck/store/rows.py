"""What the store returns, typed: one TypedDict per table row, and the run record.

Rows stay dicts (they go straight into pandas frames and CSV writers) but their keys and
types are checked: a reader that asks for a column the table does not have fails mypy.
Booleans stored as 0/1 integers stay ints here, as SQLite returns them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from promptdeck.model.types import CallResult, ToolStep


class CallRow(TypedDict):
    """One Playground call (table `calls`), with its thumbs from `feedback`."""

    id: int
    created: str
    source: str
    variant: str | None
    model: str
    request_json: str
    output: str
    error: str | None
    error_kind: str | None
    ttft_ms: float | None
    latency_ms: float
    input_tokens: int | None
    output_tokens: int | None
    tokens_estimated: int
    cost_usd: float | None
    attempts: int
    fallback_used: int
    playground_run: int | None
    tool_calls_json: str | None
    thinking: str
    thinking_ms: float | None
    reasoning_tokens: int | None
    author: str | None
    thumbs: int | None


class PlaygroundRunRow(TypedDict):
    """One press of Run in the Playground (table `playground_runs`): its columns (variant
    names, in order), the inputs and the param overrides, as JSON."""

    id: int
    created: str
    columns_json: str
    inputs_json: str
    overrides_json: str
    author: str | None


class ResultRow(TypedDict):
    """One eval cell (table `results`): a (row, variant, repeat) answer, measured."""

    run_id: str
    row_id: str
    variant: str
    repeat: int
    category: str
    model: str
    output: str
    error: str | None
    error_kind: str | None
    ttft_ms: float | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    tokens_estimated: int
    cost_usd: float | None
    cached: int
    fallback_used: int
    attempts: int
    created: str
    confidence: float | None
    tool_calls_json: str | None  # the tool steps: [{name, arguments, result[, error]}]
    thinking: str
    thinking_ms: float | None
    reasoning_tokens: int | None


class ScoreRow(TypedDict):
    """One score of one cell (table `scores`): a check, the judge or a pairwise verdict."""

    run_id: str
    row_id: str
    variant: str
    repeat: int
    scorer: str
    value: float | None
    passed: int | None
    reason: str
    judge_model: str | None
    raw: str | None
    prompt_json: str | None
    latency_ms: float | None
    cost_usd: float | None
    cached: int


class ReviewRow(TypedDict):
    """A human review of one eval cell (table `feedback`)."""

    row_id: str
    variant: str
    repeat: int
    score_override: float | None
    thumbs: int | None
    note: str | None
    created: str
    author: str | None  # who reviewed it (None: no sign-in)


class VersionRow(TypedDict):
    """One saved version of a workspace file (table `file_versions`)."""

    id: int
    saved: str
    path: str
    name: str
    action: str
    content: str
    fingerprint: str
    author: str | None  # who saved it (None: no sign-in)


CellKey = tuple[str, str, int]  # (row_id, variant, repeat)


def steps_json(steps: tuple[ToolStep, ...]) -> str | None:
    """Tool steps as stored: a JSON list, None for an answer without tools."""
    if not steps:
        return None
    return json.dumps([step.as_json() for step in steps], ensure_ascii=False)


def stored_steps(stored: str | None) -> tuple[ToolStep, ...]:
    """The tool steps of a stored cell or call ({name, arguments, result[, error]} each)."""
    value = json.loads(stored) if stored else []
    return tuple(
        ToolStep(
            0, "", str(s.get("name")), s.get("arguments"), str(s.get("result")), s.get("error")
        )
        for s in value
        if isinstance(s, dict)
    )


@dataclass(frozen=True)
class RunRecord:
    id: str
    created: str
    status: str  # running | done | cancelled | failed
    name: str
    snapshot: Mapping[str, Any]
    total_cells: int
    finished: str | None
    author: str | None = None  # who started it (None: no sign-in)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        return cls(
            row["id"],
            row["created"],
            row["status"],
            row["name"],
            json.loads(row["snapshot_json"]),
            row["total_cells"],
            row["finished"],
            row.get("author"),
        )


@dataclass(frozen=True)
class CellRecord:
    """What the runner stores for one finished cell."""

    row_id: str
    variant: str
    repeat: int
    category: str
    result: CallResult
    cached: bool = False
    fallback_used: bool = False
    steps: tuple[ToolStep, ...] = ()  # the tool calls made on the way to the answer
