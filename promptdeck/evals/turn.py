"""One turn of a conversation: the model's answer to the last message, tool rounds included.

The Playground's columns and the eval runner's cells both answer through `run_turn`, so a
variant with tools behaves the same in both. A turn is one call of the variant's model
(through the one call policy: limits, retries, fallback, cache) when the model answers, or
several when it calls tools:

1. the model calls tools (the call path has joined the streamed pieces into whole calls);
2. each call's arguments are parsed and checked against the tool's `parameters` schema; a
   valid call runs the tool's mock (the row's variables plus `args`), an invalid one is
   answered with what was wrong, as a real tool would answer it, so the model can correct it;
   either way it is a `ToolStep`, kept with the cell and shown;
3. the calls and their results go back to the model, which answers or calls again, for at
   most `max_tool_rounds` rounds of calls; still calling after that is the turn's error.

`tool_choice` applies to the first round; later rounds ask with `auto`, or a `required`
choice would never let the model answer (the OpenAI Agents SDK resets it the same way).

A mock template that fails is the cell's error (a TemplateError naming the variant and the
tool): the prompt's test set-up is broken, not the model. The turn's `CallResult` is the whole
turn: the final text, tokens and cost summed over its calls, latency from the first call's
start to the last one's end, TTFT of the first call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from promptdeck.errors import ErrorKind, TemplateError
from promptdeck.model.call import TextSink
from promptdeck.model.policy import CallPolicy, FallbackSink
from promptdeck.model.types import Answer, CallResult, Message, ToolCall, ToolStep, Usage
from promptdeck.scoring.checks import schema_violation
from promptdeck.workspace.prompts import PromptVariant
from promptdeck.workspace.tools import parse_arguments, render_mock

# Told each piece of a tool call as it streams: (round, index in the round, the call so far).
ToolCallSink = Callable[[int, int, ToolCall], None]
StepSink = Callable[[ToolStep], None]


@dataclass(frozen=True)
class TurnSinks:
    """Who is told what happens during a turn (a Playground column; an eval cell: nobody)."""

    text: TextSink | None = None
    status: TextSink | None = None
    fallback: FallbackSink | None = None
    thinking: TextSink | None = None
    tool_call: ToolCallSink | None = None
    step: StepSink | None = None  # a tool call finished: its result is known


@dataclass(frozen=True)
class Turn:
    """A finished turn: `answer.result` is the turn as a whole (see the module docstring),
    `steps` its tool calls in order, `messages` the conversation with this turn's tool rounds
    and final answer appended (a follow-up message continues from it)."""

    answer: Answer
    steps: tuple[ToolStep, ...]
    messages: tuple[Message, ...]


def run_tool(
    variant: PromptVariant, call: ToolCall, variables: Mapping[str, object], round: int
) -> ToolStep:
    """One tool call answered: by its mock when the arguments are valid, else by what is
    wrong with them. A mock that fails raises TemplateError."""
    tool = next((t for t in variant.tools if t.name == call.name), None)
    arguments, problem = parse_arguments(call.arguments)
    if tool is None:
        declared = ", ".join(t.name for t in variant.tools) or "none"
        problem = f"there is no tool named {call.name!r} (declared: {declared})"
    elif problem is None:
        invalid = schema_violation(tool.parameters, arguments)
        problem = f"the arguments do not fit the tool's parameters {invalid}" if invalid else None
    if problem is not None:
        return ToolStep(round, call.id, call.name, arguments, f"Error: {problem}", problem)
    assert tool is not None
    return ToolStep(
        round, call.id, call.name, arguments, render_mock(variant.name, tool, variables, arguments)
    )


async def run_turn(
    policy: CallPolicy,
    variant: PromptVariant,
    messages: Sequence[Message],
    variables: Mapping[str, object],
    *,
    sample: int = 0,
    sinks: TurnSinks | None = None,
) -> Turn:
    """Answer the last message of `messages` with `variant`, running its tools' mocks with
    `variables` (the row) for as many rounds as the model calls them. Never raises a
    PromptDeckError: a failure is the answer's error."""
    sinks = sinks or TurnSinks()
    tools = tuple(t.tool for t in variant.tools)
    params = variant.request_params
    conversation = list(messages)
    steps: list[ToolStep] = []
    answers: list[Answer] = []
    start = time.perf_counter()
    problem: tuple[str, ErrorKind] | None = None
    for round in range(1, variant.max_tool_rounds + 2):
        if round == 2 and params.get("tool_choice") not in (None, "none"):
            params = {**params, "tool_choice": "auto"}

        def on_tool_call(index: int, call: ToolCall, round: int = round) -> None:
            if sinks.tool_call is not None:
                sinks.tool_call(round, index, call)

        thought = [bool(answers) and any(a.result.thinking for a in answers)]

        def on_thinking(chunk: str, thought: list[bool] = thought) -> None:
            """A later round's thinking starts a paragraph of its own, as in the result."""
            if sinks.thinking is None:
                return
            if thought[0]:
                chunk, thought[0] = "\n\n" + chunk, False
            sinks.thinking(chunk)

        answer = await policy.call(
            variant.model,
            tuple(conversation),
            params,
            sample=sample,
            fallback=variant.fallback,
            tools=tools,
            on_text=sinks.text,
            on_status=sinks.status,
            on_fallback=sinks.fallback,
            on_thinking=on_thinking,
            on_tool_call=on_tool_call,
        )
        answers.append(answer)
        result = answer.result
        if not result.ok or not result.tool_calls:
            break
        if round > variant.max_tool_rounds:
            names = ", ".join(c.name for c in result.tool_calls)
            problem = (
                f"the model was still calling tools ({names}) after max_tool_rounds "
                f"({variant.max_tool_rounds}) rounds: raise max_tool_rounds, or check the "
                "mocks' results tell it what it needs",
                ErrorKind.TOOLS,
            )
            break
        conversation.append(
            Message(
                "assistant",
                result.text,
                tool_calls=result.tool_calls,
                thinking=result.thinking,
                signature=result.signature,
            )
        )
        try:
            for call in result.tool_calls:
                step = run_tool(variant, call, variables, round)
                steps.append(step)
                if sinks.step is not None:
                    sinks.step(step)
                conversation.append(
                    Message("tool", step.result, tool_call_id=call.id, name=call.name)
                )
        except TemplateError as exc:
            steps.append(
                ToolStep(
                    round, call.id, call.name, parse_arguments(call.arguments)[0], "", str(exc)
                )
            )
            if sinks.step is not None:
                sinks.step(steps[-1])
            problem = (str(exc), ErrorKind.TEMPLATE)
            break
    final = answers[-1]
    if final.result.ok and problem is None:
        conversation.append(Message("assistant", final.result.text, thinking=final.result.thinking))
    if len(answers) == 1 and problem is None:
        return Turn(final, tuple(steps), tuple(conversation))
    whole = _whole(answers, (time.perf_counter() - start) * 1000, problem)
    return Turn(whole, tuple(steps), tuple(conversation))


def _whole(
    answers: list[Answer], latency_ms: float, problem: tuple[str, ErrorKind] | None
) -> Answer:
    """The answers of a turn's calls as one: see the module docstring."""
    results = [a.result for a in answers]
    last = results[-1]
    usages = [r.usage for r in results if r.usage is not None]
    usage = None
    if usages:
        reasoning = [u.reasoning_tokens for u in usages if u.reasoning_tokens is not None]
        usage = Usage(
            sum(u.input_tokens for u in usages),
            sum(u.output_tokens for u in usages),
            any(u.estimated for u in usages),
            sum(reasoning) if reasoning else None,
        )
    costs = [r.cost_usd for r in results]
    result = replace(
        last,
        usage=usage,
        ttft_ms=next((r.ttft_ms for r in results if r.ttft_ms is not None), None),
        thinking_ms=next((r.thinking_ms for r in results if r.thinking_ms is not None), None),
        latency_ms=latency_ms,
        cost_usd=None if any(c is None for c in costs) else sum(c for c in costs if c is not None),
        attempts=1 + sum(r.attempts - 1 for r in results),  # 1 + the retries of its calls
        thinking="\n\n".join(r.thinking for r in results if r.thinking),
        tool_calls=last.tool_calls if problem is not None else (),
    )
    if problem is not None:
        result = replace(result, error=problem[0], error_kind=problem[1])
    primary_error = next((a.primary_error for a in answers if a.primary_error), None)
    return Answer(
        result,
        answers[-1].request,
        cached=all(a.cached for a in answers),
        fallback_used=any(a.fallback_used for a in answers),
        primary_error=primary_error,
    )


def failed_turn(model_ref: str, messages: Sequence[Message], error: str, kind: ErrorKind) -> Turn:
    """A turn that could not be asked at all (e.g. its prompt did not render)."""
    return Turn(Answer(CallResult.failure(model_ref, error, kind), None), (), tuple(messages))
