"""A live side-by-side run: several variants streamed at once, in a background thread.

The UI never streams itself (a widget click would rerun the script and drop the
partial text). Instead a `LiveRun` owns a daemon thread with its own event loop,
streams every column concurrently into lock-protected buffers, and the page polls
`snapshot()`. `stop()` keeps whatever already arrived.

A run may override the variants' params for this press of Run only (temperature, max_tokens,
seed); each column shows what it overrode. With a store, every run is kept (its columns,
inputs and overrides, and each column's call), so an earlier run can be re-opened
(`stored_views`).

Each column answers through `evals.turn.run_turn`, as an eval cell does: the one call
policy (retries before the first token, per-provider limits, the variant's `fallback:` model
when the primary fails: the column then says so, and shows the fallback's answer) and the
variant's tool rounds, each tool call a step the column shows as it streams, then with its
mock's result. Thinking streams into its own part of the column, never into the answer.
The Playground does not use the response cache: pressing Run again asks for a new answer.

A conversation continues with `plan_follow_up`: every column gets the same next message
after its own history (its first prompt, tool rounds and answers so far).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from promptdeck.errors import ErrorKind, PromptDeckError
from promptdeck.evals.turn import Turn, TurnSinks, run_turn
from promptdeck.model.http import run_with_client
from promptdeck.model.policy import CallPolicy
from promptdeck.model.refs import split_model_ref
from promptdeck.model.registry import Registry
from promptdeck.model.types import (
    DEFAULT_MAX_TOKENS,
    Answer,
    CallResult,
    ChatRequest,
    Image,
    Message,
    ToolCall,
    ToolStep,
    Usage,
    estimate_usage,
)
from promptdeck.scoring.checks import CheckResult, run_checks
from promptdeck.store.db import Store
from promptdeck.store.rows import CallRow, PlaygroundRunRow, stored_steps
from promptdeck.workspace.images import with_images
from promptdeck.workspace.prompts import PromptVariant, render_messages


@dataclass(frozen=True)
class ColumnPlan:
    """What one column will run; `error` is set when it cannot run (e.g. a missing variable)."""

    key: str
    variant: PromptVariant  # with the run's overrides in its params
    messages: tuple[Message, ...] | None
    error: str | None = None
    overrides: Mapping[str, object] = field(default_factory=dict)  # what differs from the file


@dataclass(frozen=True)
class StepView:
    """A tool call in a column: its arguments as they stream, then what it returned (or
    why it was not run). `result` None: the call is still arriving or running."""

    round: int
    id: str
    name: str
    arguments: str
    result: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ColumnView:
    """A consistent copy of one column, safe to render from another thread. `model_ref` is
    the model answering: the variant's fallback once the primary has failed."""

    key: str
    model_ref: str
    status: str  # waiting | streaming | done | error | stopped
    text: str
    note: str = ""
    result: CallResult | None = None
    checks: tuple[CheckResult, ...] = ()
    call_id: int | None = None
    fallback_from: str | None = None  # the primary model, when the fallback answered
    max_tokens: int | None = None  # the limit the request set
    overrides: Mapping[str, object] = field(default_factory=dict)  # params set for this run
    thinking: str = ""
    steps: tuple[StepView, ...] = ()
    conversation: tuple[Message, ...] = ()  # once done: what a follow-up continues from
    thinking_ms: float | None = None  # time to the first thinking token, as soon as known

    @property
    def cut_off(self) -> bool:
        """Did the answer stop at the max_tokens limit (counted by the server, not estimated)?"""
        usage = self.result.usage if self.result is not None else None
        return (
            usage is not None
            and not usage.estimated
            and self.max_tokens is not None
            and usage.output_tokens >= self.max_tokens
        )

    @property
    def name(self) -> str:
        return self.key.split(":", 1)[1]


OVERRIDABLE = ("temperature", "max_tokens", "seed")


def plan_columns(
    variants: Sequence[PromptVariant],
    inputs: Mapping[str, object],
    overrides: Mapping[str, object] | None = None,
    images: Sequence[Image] = (),
) -> list[ColumnPlan]:
    """Render each variant with the same inputs; a failure stays in its own column.
    `overrides` (None values ignored) replace the variants' params for this run; `images`
    (an upload) go with each prompt's last user message."""
    wanted = {k: v for k, v in (overrides or {}).items() if k in OVERRIDABLE and v is not None}
    plans = []
    for i, variant in enumerate(variants):
        key = f"{i}:{variant.name}"
        changed = {k: v for k, v in wanted.items() if variant.params.get(k) != v}
        if changed:
            variant = replace(variant, params={**variant.params, **changed})
        try:
            messages = with_images(render_messages(variant, inputs), images)
            plans.append(ColumnPlan(key, variant, messages, None, changed))
        except PromptDeckError as exc:
            plans.append(ColumnPlan(key, variant, None, str(exc), changed))
    return plans


def plan_follow_up(
    previous: Sequence[ColumnView], variants: Sequence[PromptVariant], text: str
) -> list[ColumnPlan]:
    """The next turn of every column: `text` after the column's own conversation so far. A
    column whose last turn did not finish cannot go on (its plan says why)."""
    plans = []
    for view, variant in zip(previous, variants, strict=True):
        if view.status != "done" or not view.conversation:
            why = "this column's last answer did not finish: press Run to start again"
            plans.append(ColumnPlan(view.key, variant, None, why))
            continue
        messages = (*view.conversation, Message("user", text))
        plans.append(ColumnPlan(view.key, variant, messages, None, view.overrides))
    return plans


@dataclass
class _Column:
    plan: ColumnPlan
    model_ref: str
    status: str = "waiting"
    parts: list[str] = field(default_factory=list)
    note: str = ""
    result: CallResult | None = None
    checks: tuple[CheckResult, ...] = ()
    call_id: int | None = None
    ttft_ms: float | None = None
    fallback_from: str | None = None
    thinking: list[str] = field(default_factory=list)
    steps: list[StepView] = field(default_factory=list)
    conversation: tuple[Message, ...] = ()
    thinking_ms: float | None = None

    def tool_call(self, round: int, index: int, call: ToolCall) -> None:
        """A piece of a tool call arrived: show the call as it is so far."""
        self._put(StepView(round, call.id, call.name, call.arguments))

    def step(self, step: ToolStep) -> None:
        """A tool call finished: show its result (or why it was not run)."""
        arguments = _shown(step.arguments)
        self._put(StepView(step.round, step.id, step.name, arguments, step.result, step.error))

    def _put(self, view: StepView) -> None:
        """`view` in place of the step with its round and id, else after the others."""
        for at, shown in enumerate(self.steps):
            if (shown.round, shown.id) == (view.round, view.id):
                self.steps[at] = view
                return
        self.steps.append(view)


class LiveRun:
    """Streams every planned column concurrently; thread-safe to poll and stop."""

    def __init__(
        self,
        plans: Sequence[ColumnPlan],
        registry: Registry,
        store: Store | None,
        inputs: Mapping[str, object] | None = None,
    ) -> None:
        self._columns = [_Column(p, p.variant.model) for p in plans]
        self._policy = CallPolicy(registry)
        self._store = store
        self._inputs = dict(inputs or {})
        self.history_id: int | None = None  # this run in the store's Playground history
        if store is not None:
            overrides = {k: v for p in plans for k, v in p.overrides.items()}
            names = [p.variant.name for p in plans]
            self.history_id = store.new_playground_run(names, inputs or {}, overrides)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._main, name="promptdeck-live", daemon=True)
        for col in self._columns:
            if col.plan.error:
                col.status, col.note = "error", col.plan.error

    def start(self) -> LiveRun:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Cancel the streams that are still going; what arrived is kept."""
        with self._lock:
            self._stopped = True
            loop, tasks = self._loop, list(self._tasks)
        if loop is not None:
            for task in tasks:
                loop.call_soon_threadsafe(task.cancel)

    def snapshot(self) -> list[ColumnView]:
        with self._lock:
            return [
                ColumnView(
                    c.plan.key,
                    c.model_ref,
                    c.status,
                    "".join(c.parts),
                    c.note,
                    c.result,
                    c.checks,
                    c.call_id,
                    c.fallback_from,
                    int(c.plan.variant.params.get("max_tokens", DEFAULT_MAX_TOKENS)),
                    c.plan.overrides,
                    "".join(c.thinking),
                    tuple(c.steps),
                    c.conversation,
                    c.thinking_ms,
                )
                for c in self._columns
            ]

    def _main(self) -> None:
        run_with_client(self._run_all())

    async def _run_all(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._loop = asyncio.get_running_loop()
            self._tasks = [
                asyncio.create_task(self._run_column(c)) for c in self._columns if not c.plan.error
            ]
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run_column(self, col: _Column) -> None:
        variant, messages = col.plan.variant, col.plan.messages
        assert messages is not None
        start = time.perf_counter()

        def on_text(chunk: str) -> None:
            with self._lock:
                if col.ttft_ms is None:
                    col.ttft_ms = (time.perf_counter() - start) * 1000
                col.status, col.note = "streaming", ""
                col.parts.append(chunk)

        def on_status(note: str) -> None:
            with self._lock:
                col.note = note

        def on_fallback(model_ref: str, why: str) -> None:
            with self._lock:  # the primary's partial text is not the answer any more
                col.fallback_from, col.model_ref = col.model_ref, model_ref
                col.parts, col.ttft_ms, col.status = [], None, "waiting"
                col.thinking, col.thinking_ms = [], None
                col.note = f"{col.fallback_from} failed, asking the fallback {model_ref}: {why}"

        def on_thinking(chunk: str) -> None:
            with self._lock:
                if col.thinking_ms is None:
                    col.thinking_ms = (time.perf_counter() - start) * 1000
                col.status, col.note = "streaming", ""
                col.thinking.append(chunk)

        def on_tool_call(round: int, index: int, call: ToolCall) -> None:
            with self._lock:
                col.status, col.note = "streaming", ""
                col.tool_call(round, index, call)

        def on_step(step: ToolStep) -> None:
            with self._lock:
                col.step(step)

        sinks = TurnSinks(on_text, on_status, on_fallback, on_thinking, on_tool_call, on_step)
        turn: Turn | None = None
        try:
            turn = await run_turn(self._policy, variant, messages, self._inputs, sinks=sinks)
            answer = turn.answer
        except asyncio.CancelledError:
            answer = self._stopped_answer(col, messages, start)
        except Exception as exc:  # a bug in one column must not take the others down
            latency = (time.perf_counter() - start) * 1000
            failed = CallResult.failure(
                col.model_ref, f"unexpected error: {exc!r}", ErrorKind.INTERNAL, latency_ms=latency
            )
            answer = Answer(failed, None)
        self._finish(col, answer, turn)

    def _stopped_answer(self, col: _Column, messages: tuple[Message, ...], start: float) -> Answer:
        with self._lock:
            text, ttft, model_ref = "".join(col.parts), col.ttft_ms, col.model_ref
        params = col.plan.variant.params
        request = ChatRequest(split_model_ref(model_ref)[1], messages, dict(params))
        # The provider's usage record never arrived: estimate (and mark) what was shown.
        usage = estimate_usage(request, text) if text else None
        cost = self._policy.registry.prices.cost(model_ref, usage) if usage else None
        latency = (time.perf_counter() - start) * 1000
        stopped = CallResult(
            model_ref,
            text,
            usage,
            ttft,
            latency,
            cost,
            error="stopped by the user",
            error_kind=ErrorKind.STOPPED,
        )
        return Answer(stopped, request, fallback_used=col.fallback_from is not None)

    def _finish(self, col: _Column, answer: Answer, turn: Turn | None = None) -> None:
        variant, result = col.plan.variant, answer.result
        steps = turn.steps if turn is not None else ()
        checks: tuple[CheckResult, ...] = ()
        if result.ok and variant.checks:
            checks = tuple(
                run_checks(
                    variant.checks,
                    result.text,
                    latency_ms=result.latency_ms,
                    cost_usd=result.cost_usd,
                    tool_steps=steps,
                )
            )
        call_id = None
        if self._store is not None and answer.request is not None:
            call_id = self._store.record_call(
                result,
                answer.request,
                source="playground",
                variant=variant.name,
                fallback_used=answer.fallback_used,
                playground_run=self.history_id,
                steps=steps,
            )
        with self._lock:
            col.result, col.checks, col.call_id = result, checks, call_id
            col.parts = [result.text] if result.text else col.parts
            col.thinking = [result.thinking] if result.thinking else col.thinking
            col.thinking_ms = result.thinking_ms if result.ok else col.thinking_ms
            if turn is not None and result.ok:
                col.conversation = turn.messages
            col.status = {None: "done", ErrorKind.STOPPED: "stopped"}.get(
                result.error_kind, "error"
            )
            col.note = result.error or ""
            col.model_ref = result.model_ref
            if not answer.fallback_used:  # the primary answered, or both failed
                col.fallback_from = None
            elif result.ok:
                col.note = f"Answered by the fallback {col.model_ref}: {answer.primary_error}"


def stored_views(run: PlaygroundRunRow, calls: Sequence[CallRow]) -> list[ColumnView]:
    """The columns of an earlier Playground run, as they finished, from the store. A column
    whose call was never made (e.g. a missing variable) is left out."""
    by_variant = {call["variant"]: call for call in calls}
    overrides = json.loads(run["overrides_json"])
    views = []
    for i, name in enumerate(json.loads(run["columns_json"])):
        if (call := by_variant.get(name)) is None:
            continue
        params = json.loads(call["request_json"]).get("params", {})
        usage = None
        if call["input_tokens"] is not None and call["output_tokens"] is not None:
            usage = Usage(
                call["input_tokens"], call["output_tokens"], bool(call["tokens_estimated"])
            )
        kind = _error_kind(call["error_kind"])
        result = CallResult(
            call["model"],
            call["output"],
            usage,
            call["ttft_ms"],
            call["latency_ms"],
            call["cost_usd"],
            call["attempts"],
            call["error"],
            kind,
        )
        status = {None: "done", ErrorKind.STOPPED: "stopped"}.get(kind, "error")
        views.append(
            ColumnView(
                f"{i}:{name}",
                call["model"],
                status,
                call["output"],
                call["error"] or ("answered by the fallback" if call["fallback_used"] else ""),
                result,
                call_id=call["id"],
                max_tokens=int(params.get("max_tokens", DEFAULT_MAX_TOKENS)),
                overrides={k: v for k, v in overrides.items() if params.get(k) == v},
                thinking=call["thinking"],
                steps=tuple(
                    StepView(0, str(n), s.name, _shown(s.arguments), s.result, s.error)
                    for n, s in enumerate(stored_steps(call["tool_calls_json"]))
                ),
            )
        )
    return views


def _shown(arguments: object) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _error_kind(stored: str | None) -> ErrorKind | None:
    if not stored:
        return None
    try:
        return ErrorKind(stored)
    except ValueError:  # a kind this version does not name is a failure all the same
        return ErrorKind.INTERNAL
