"""Scores of one answer: its deterministic checks and the LLM judge's verdict.

A scorer is named in the store and in exports: `judge` (pointwise verdict), `pairwise`
(against the baseline) and `check:<label>` for each check; `check_scorer` / `check_label`
are the only places that build or read those names.

The judge's calls go through the call policy (`CallFn`: cache, per-provider concurrency,
retries, and the structured-output negotiation: the judge asks for a `json_schema`
verdict, and a server that refuses it gets `json_object`, then a plain prompt, parsed
strictly either way). Each verdict keeps the request as it was sent, raw output, latency
and cost, so any score can be audited. A verdict that does not parse is unscored (value
None), never 0.

A llama.cpp judge (`local=True`) scores by the expected-score method unless its spec says
otherwise (`scoring.judge`, `judge_method`): its raw output is then the provider's read-out,
`{"output": ..., "score_logprobs": {...}}`, and the reason shows the probabilities.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from promptdeck.model.types import Answer, CallResult, Message, ToolStep
from promptdeck.scoring.checks import Check, run_checks
from promptdeck.scoring.judge import (
    EXPECTED,
    JUDGE_METHODS,
    JUDGE_PARAMS,
    REASONING_MAX_CHARS,
    JudgeSpec,
    combine_pairwise,
    expected_fits,
    expected_params,
    judge_messages,
    judge_method,
    pairwise_messages,
    pairwise_response_format,
    parse_expected,
    parse_pairwise,
    parse_verdict,
    response_format,
)

JUDGE = "judge"
PAIRWISE = "pairwise"
_CHECK = "check:"
PAIRWISE_VALUE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def check_scorer(label: str) -> str:
    return _CHECK + label


def check_label(scorer: str) -> str | None:
    """The check's label when `scorer` names a check, else None."""
    return scorer.removeprefix(_CHECK) if scorer.startswith(_CHECK) else None


class CallFn(Protocol):
    """How a scorer reaches a model: `CallPolicy.call`."""

    def __call__(
        self, model_ref: str, messages: tuple[Message, ...], params: Mapping[str, Any]
    ) -> Awaitable[Answer]: ...


@dataclass(frozen=True)
class Score:
    scorer: str  # JUDGE, PAIRWISE or check_scorer(label)
    value: float | None  # None: unscored (counted and shown, never 0)
    passed: bool | None  # checks only
    reason: str
    judge_model: str | None = None
    raw: str | None = None  # the judge's output, verbatim
    prompt_json: str | None = None  # the judge's request (messages, params)
    latency_ms: float | None = None
    cost_usd: float | None = None
    cached: bool = False


@dataclass(frozen=True)
class Graded:
    """What the judge sees of one case besides the answer: the question as the variant asked
    it, the reference answer and the row's own rubric (None: the suite's)."""

    question: str
    reference: str | None = None
    rubric: str | None = None

    def rubric_for(self, spec: JudgeSpec) -> str:
        return (self.rubric or "").strip() or spec.rubric


def question_of(messages: Sequence[Message]) -> str:
    """What the user asked: the last user message as the variant rendered it."""
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def answer_with_steps(answer: str, steps: Sequence[ToolStep]) -> str:
    """What the judge reads as the answer: the text alone, or, when the model called tools
    on the way, each call and what it returned before the final answer."""
    if not steps:
        return answer
    lines = ["[Tool calls made while answering]"]
    for number, step in enumerate(steps, start=1):
        arguments = json.dumps(step.arguments, ensure_ascii=False)
        outcome = f"failed: {step.error}" if step.error else f"returned: {step.result}"
        lines.append(f"{number}. {step.name}({arguments}) {outcome}")
    return "\n".join([*lines, "[Final answer]", answer])


def check_scores(
    checks: Sequence[Check],
    result: CallResult,
    *,
    expected: str | None = None,
    tool_steps: Sequence[ToolStep] = (),
) -> list[Score]:
    """One score per check of a finished answer; none for a failed call."""
    if not result.ok:
        return []
    outcomes = run_checks(
        checks,
        result.text,
        expected=expected or None,
        latency_ms=result.latency_ms,
        cost_usd=result.cost_usd,
        tool_steps=tool_steps,
    )
    return [Score(check_scorer(c.name), c.score, c.passed, c.reason) for c in outcomes]


def pointwise_prompt(
    spec: JudgeSpec, graded: Graded, answer: str, *, local: bool = False
) -> tuple[Message, ...]:
    """The judge's exact prompt for one answer (the Evaluate page shows it before a run);
    `local`: the judge model is a llama.cpp one (the expected method asks for the score alone)."""
    return judge_messages(
        graded.rubric_for(spec), graded.question, answer, reference=graded.reference,
        scale=spec.scale, reasoning=judge_method(spec, local=local) != EXPECTED,
    )  # fmt: skip


async def pointwise_score(
    call: CallFn,
    spec: JudgeSpec,
    graded: Graded,
    answer: str,
    *,
    local: bool = False,
    cap_reasoning: bool = False,
) -> Score:
    """`local`: the judge is a llama.cpp model (`CallPolicy.is_local`), which by default
    scores by the expected-score method and has its reasoning capped. `cap_reasoning`: a
    grammar-constrained local judge tends to copy the answer into its reasoning until
    max_tokens; a length cap in the schema makes it reach the score."""
    method = judge_method(spec, local=local)
    prompt = pointwise_prompt(spec, graded, answer, local=local)
    if method == EXPECTED:
        params = expected_params(spec.scale) if expected_fits(spec.scale) else {}
    else:
        cap = REASONING_MAX_CHARS if cap_reasoning or local else None
        params = _params(response_format(spec.scale, max_reasoning_chars=cap))
    refused = _refused(method, spec, local=local)
    if refused is not None:
        sent = _prompt_json(prompt, params)
        return Score(JUDGE, None, None, f"unscored: {refused}", spec.model, None, sent)
    done = await call(spec.model, prompt, params)
    result = done.result
    if not result.ok:
        reason, value = f"unscored: the judge call failed: {result.error}", None
    else:
        parse = parse_expected if method == EXPECTED else parse_verdict
        verdict = parse(result.text, spec.scale)
        value = verdict.score
        reason = verdict.reasoning if verdict.scored else f"unscored: {verdict.unscored_reason}"
    sent = _prompt_json(prompt, _sent(done, params))
    return Score(
        JUDGE, value, None, reason, spec.model, result.text, sent, result.latency_ms,
        result.cost_usd, done.cached,
    )  # fmt: skip


def _refused(method: str, spec: JudgeSpec, *, local: bool) -> str | None:
    """Why `method` cannot judge with `spec` (None: it can), said so a PM can fix it."""
    if method not in JUDGE_METHODS:
        return f"unknown judge method {method!r}: use {' or '.join(JUDGE_METHODS)}"
    if method != EXPECTED:
        return None
    if not local:
        return (
            f"the expected-score method reads log-probs from a llama.cpp judge (a `kind: local` "
            f"provider); {spec.model} is not one: use method: verdict"
        )
    if not expected_fits(spec.scale):
        low, high = spec.scale
        return f"the expected-score method needs one-digit scores; the scale is {low}-{high}"
    return None


async def pairwise_score(
    call: CallFn,
    spec: JudgeSpec,
    graded: Graded,
    candidate: str,
    baseline: str,
    *,
    cap_reasoning: bool = False,
) -> Score:
    """Asked twice with the order swapped; only agreement counts as a win or a loss."""
    rubric, reference = graded.rubric_for(spec), graded.reference
    cap = REASONING_MAX_CHARS if cap_reasoning else None
    params = _params(pairwise_response_format(max_reasoning_chars=cap))
    first = pairwise_messages(rubric, graded.question, candidate, baseline, reference=reference)
    second = pairwise_messages(rubric, graded.question, baseline, candidate, reference=reference)
    a1, a2 = await call(spec.model, first, params), await call(spec.model, second, params)
    r1, r2 = a1.result, a2.result
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
    return Score(
        PAIRWISE,
        PAIRWISE_VALUE.get(outcome or ""),
        None,
        reason,
        spec.model,
        json.dumps([r1.text, r2.text], ensure_ascii=False),
        _prompt_json(first, _sent(a1, params)),
        (r1.latency_ms or 0) + (r2.latency_ms or 0),
        None if None in costs else sum(c for c in costs if c is not None),
        a1.cached and a2.cached,
    )


def _params(response: Mapping[str, Any]) -> dict[str, Any]:
    return {**JUDGE_PARAMS, "response_format": dict(response)}


def _sent(answer: Answer, asked: Mapping[str, Any]) -> Mapping[str, Any]:
    """The params as sent: the call path may have lowered the response_format."""
    return answer.request.params if answer.request is not None else asked


def _prompt_json(messages: tuple[Message, ...], params: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "params": dict(params),
        },
        ensure_ascii=False,
    )
