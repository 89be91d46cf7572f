"""Scores of one answer: its deterministic checks and the LLM judge's verdict.

The judge's calls go through the runner's `call` (cache, per-provider concurrency,
retries), and each verdict keeps its request, raw output, latency and cost, so any score
can be audited. A verdict that does not parse is unscored (value None), never 0.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from promptdeck.evals.plan import Cell
from promptdeck.evals.suite import JudgeSpec
from promptdeck.model.call import CallResult
from promptdeck.model.types import Message
from promptdeck.scoring.checks import run_checks
from promptdeck.scoring.judge import (
    JUDGE_PARAMS,
    REASONING_MAX_CHARS,
    combine_pairwise,
    judge_messages,
    pairwise_messages,
    pairwise_response_format,
    parse_pairwise,
    parse_verdict,
    response_format,
)
from promptdeck.store.sqlite import ScoreRecord
from promptdeck.workspace.datasets import Case

CallFn = Callable[[str, tuple[Message, ...], Mapping[str, Any]], Awaitable[tuple[CallResult, bool]]]
PAIRWISE_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def check_scores(cell: Cell, result: CallResult) -> list[ScoreRecord]:
    if not result.ok:
        return []
    checks = run_checks(
        cell.variant.checks,
        result.text,
        expected=cell.case.values.get("expected") or None,
        latency_ms=result.latency_ms,
        cost_usd=result.cost_usd,
    )
    return [ScoreRecord(f"check:{c.name}", c.score, c.passed, c.reason) for c in checks]


def question_of(messages: tuple[Message, ...]) -> str:
    """What the user asked: the last user message as the variant rendered it."""
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def rubric_for(spec: JudgeSpec, case: Case) -> str:
    return case.values.get("rubric", "").strip() or spec.rubric


def judge_params(response: Mapping[str, Any]) -> dict[str, Any]:
    return {**JUDGE_PARAMS, "response_format": dict(response)}


async def pointwise_score(
    call: CallFn,
    spec: JudgeSpec,
    case: Case,
    messages: tuple[Message, ...],
    answer: str,
    *,
    cap_reasoning: bool = False,
) -> ScoreRecord:
    """`cap_reasoning`: a grammar-constrained local judge tends to copy the answer into its
    reasoning until max_tokens; a length cap in the schema makes it reach the score."""
    prompt = judge_messages(
        rubric_for(spec, case),
        question_of(messages),
        answer,
        reference=case.values.get("expected") or None,
        scale=spec.scale,
    )
    cap = REASONING_MAX_CHARS if cap_reasoning else None
    params = judge_params(response_format(spec.scale, max_reasoning_chars=cap))
    result, cached = await call(spec.model, prompt, params)
    if not result.ok:
        reason, value = f"unscored: the judge call failed: {result.error}", None
    else:
        verdict = parse_verdict(result.text, spec.scale)
        value = verdict.score
        reason = verdict.reasoning if verdict.scored else f"unscored: {verdict.unscored_reason}"
    return ScoreRecord(
        "judge",
        value,
        None,
        reason,
        spec.model,
        result.text,
        _prompt_json(prompt, params),
        result.latency_ms,
        result.cost_usd,
        cached,
    )


async def pairwise_score(
    call: CallFn,
    spec: JudgeSpec,
    case: Case,
    question: str,
    candidate: str,
    baseline: str,
    *,
    cap_reasoning: bool = False,
) -> ScoreRecord:
    """Asked twice with the order swapped; only agreement counts as a win or a loss."""
    rubric, reference = rubric_for(spec, case), case.values.get("expected") or None
    cap = REASONING_MAX_CHARS if cap_reasoning else None
    params = judge_params(pairwise_response_format(max_reasoning_chars=cap))
    first = pairwise_messages(rubric, question, candidate, baseline, reference=reference)
    second = pairwise_messages(rubric, question, baseline, candidate, reference=reference)
    (r1, c1), (r2, c2) = (
        await call(spec.model, first, params),
        await call(spec.model, second, params),
    )
    w1 = parse_pairwise(r1.text).winner if r1.ok else None
    w2 = parse_pairwise(r2.text).winner if r2.ok else None
    outcome = combine_pairwise(w1, w2)  # the candidate was A first, then B
    failures = [r.error for r in (r1, r2) if not r.ok]
    if outcome is None:
        reason = "unscored: " + (
            "; ".join(f"the judge call failed: {e}" for e in failures) or "a verdict did not parse"
        )
    else:
        reason = f"{outcome}: candidate first, the judge chose {w1}; swapped, it chose {w2}"
    costs = [r1.cost_usd, r2.cost_usd]
    return ScoreRecord(
        "pairwise",
        PAIRWISE_VALUE.get(outcome or ""),
        None,
        reason,
        spec.model,
        json.dumps([r1.text, r2.text], ensure_ascii=False),
        _prompt_json(first, params),
        (r1.latency_ms or 0) + (r2.latency_ms or 0),
        None if None in costs else sum(c for c in costs if c is not None),
        c1 and c2,
    )


def _prompt_json(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "params": dict(params),
        },
        ensure_ascii=False,
    )
