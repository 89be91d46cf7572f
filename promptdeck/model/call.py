"""One model call, measured: the single place that wraps a provider with timing and retries.

`model.policy.CallPolicy` is the only caller: it adds fallback, limits and the cache.

TTFT and latency are measured from the moment the call starts (so they include any
retry waits, as the user experiences them). Retries happen only before the first
token; after it, a failure keeps the partial text and records the error.

Thinking is collected apart from the answer (`CallResult.thinking`, timed by `thinking_ms`)
and tool-call pieces are joined into whole `ToolCall`s, in the order the model made them.
Any output, thinking included, counts as the first token for retries: a stream that showed
something is never silently started again.

`confidence` is the geometric-mean probability of the answer's tokens, exp(mean log-prob),
when the provider sent TokenLogprobs (a variant with `params: {logprobs: true}` on an
OpenAI-compatible or the local provider); None otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence

from promptdeck.errors import ErrorKind, PromptDeckError
from promptdeck.model.pricing import PriceTable
from promptdeck.model.retry import MAX_RETRIES, retry_delay, should_retry
from promptdeck.model.types import (
    CallResult,
    ChatRequest,
    Provider,
    Thinking,
    TokenLogprobs,
    ToolCall,
    ToolCallDelta,
    Usage,
    estimate_usage,
)

TextSink = Callable[[str], None]
# Told the tool call as assembled so far, each time a piece of it arrives: (index, call).
ToolCallSink = Callable[[int, ToolCall], None]
Sleep = Callable[[float], Awaitable[None]]


class _ToolCalls:
    """Tool calls joined from their streamed pieces, by index."""

    def __init__(self) -> None:
        self.calls: dict[int, ToolCall] = {}

    def add(self, delta: ToolCallDelta) -> ToolCall:
        old = self.calls.get(delta.index) or ToolCall("", "", "")
        call = ToolCall(
            delta.id or old.id or f"call_{delta.index}",
            delta.name or old.name,
            old.arguments + delta.arguments,
        )
        self.calls[delta.index] = call
        return call

    def done(self) -> tuple[ToolCall, ...]:
        return tuple(self.calls[index] for index in sorted(self.calls))


async def stream_call(
    provider: Provider,
    request: ChatRequest,
    *,
    model_ref: str,
    prices: PriceTable,
    on_text: TextSink | None = None,
    on_status: TextSink | None = None,
    on_thinking: TextSink | None = None,
    on_tool_call: ToolCallSink | None = None,
    max_retries: int = MAX_RETRIES,
    sleep: Sleep = asyncio.sleep,
) -> CallResult:
    """Stream `request` through `provider`, calling `on_text` per chunk (`on_thinking` per
    piece of thinking, `on_tool_call` per piece of a tool call); never raises
    PromptDeckError (a failure is returned as a CallResult with `error`)."""
    start = time.perf_counter()
    parts: list[str] = []
    thought: list[str] = []
    signature = ""
    calls = _ToolCalls()
    ttft: float | None = None
    thinking_ms: float | None = None
    usage: Usage | None = None
    logprobs: list[float] = []
    attempt = 0
    while True:
        logprobs.clear()  # a retried attempt starts its answer afresh
        try:
            # aclosing: a provider's cleanup (e.g. freeing a local model) runs right away.
            async with contextlib.aclosing(provider.stream(request)) as stream:
                async for chunk in stream:
                    now = (time.perf_counter() - start) * 1000
                    if isinstance(chunk, Usage):
                        usage = chunk
                    elif isinstance(chunk, TokenLogprobs):
                        logprobs.extend(chunk.values)
                    elif isinstance(chunk, Thinking):
                        signature += chunk.signature
                        if chunk.text:
                            thinking_ms = now if thinking_ms is None else thinking_ms
                            thought.append(chunk.text)
                            if on_thinking is not None:
                                on_thinking(chunk.text)
                    elif isinstance(chunk, ToolCallDelta):
                        ttft = now if ttft is None else ttft
                        call = calls.add(chunk)
                        if on_tool_call is not None:
                            on_tool_call(chunk.index, call)
                    elif chunk:
                        ttft = now if ttft is None else ttft
                        parts.append(chunk)
                        if on_text is not None:
                            on_text(chunk)
            error: PromptDeckError | None = None
        except PromptDeckError as exc:
            error = exc
        shown = ttft is not None or thinking_ms is not None
        if error is None or not should_retry(
            error, attempt=attempt, got_first_token=shown, max_retries=max_retries
        ):
            break
        delay = retry_delay(error, attempt=attempt)
        if on_status is not None:
            on_status(f"{ErrorKind.of(error)}: retrying in {delay:.1f}s (attempt {attempt + 2})")
        await sleep(delay)
        attempt += 1
    latency = (time.perf_counter() - start) * 1000
    text = "".join(parts)
    said = text + "".join(thought) + "".join(c.arguments for c in calls.done())
    if usage is None and said:
        usage = estimate_usage(request, said)
    return CallResult(
        model_ref=model_ref,
        text=text,
        usage=usage,
        ttft_ms=ttft,
        latency_ms=latency,
        cost_usd=prices.cost(model_ref, usage) if usage else prices.cost(model_ref, _NO_USAGE),
        attempts=attempt + 1,
        error=str(error) if error else None,
        error_kind=ErrorKind.of(error) if error else None,
        confidence=confidence(logprobs),
        status=getattr(error, "status", None),
        tool_calls=calls.done(),
        thinking="".join(thought),
        thinking_ms=thinking_ms,
        signature=signature,
    )


def confidence(logprobs: Sequence[float]) -> float | None:
    """exp(mean log-prob): the geometric-mean token probability (0..1), None for no tokens."""
    if not logprobs:
        return None
    return min(1.0, math.exp(math.fsum(logprobs) / len(logprobs)))


_NO_USAGE = Usage(0, 0)
