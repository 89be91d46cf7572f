"""One model call, measured: the single place that wraps a provider with timing and retries.

TTFT and latency are measured from the moment the call starts (so they include any
retry waits, as the user experiences them). Retries happen only before the first
token; after it, a failure keeps the partial text and records the error.

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
from dataclasses import dataclass

from promptdeck.errors import PromptDeckError, ProviderError
from promptdeck.model.pricing import PriceTable
from promptdeck.model.retry import MAX_RETRIES, retry_delay, should_retry
from promptdeck.model.types import (
    ChatRequest,
    Provider,
    TokenLogprobs,
    Usage,
    estimate_usage,
)


@dataclass(frozen=True)
class CallResult:
    model_ref: str
    text: str
    usage: Usage | None
    ttft_ms: float | None
    latency_ms: float
    cost_usd: float | None
    attempts: int = 1
    error: str | None = None
    error_kind: str | None = None
    confidence: float | None = None  # exp(mean token log-prob), 0..1; None: no log-probs

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second of generation (after the first token)."""
        if self.usage is None or self.ttft_ms is None or self.usage.output_tokens < 2:
            return None
        gen_s = (self.latency_ms - self.ttft_ms) / 1000
        return (self.usage.output_tokens - 1) / gen_s if gen_s > 0 else None


TextSink = Callable[[str], None]
Sleep = Callable[[float], Awaitable[None]]


async def stream_call(
    provider: Provider,
    request: ChatRequest,
    *,
    model_ref: str,
    prices: PriceTable,
    on_text: TextSink | None = None,
    on_status: TextSink | None = None,
    max_retries: int = MAX_RETRIES,
    sleep: Sleep = asyncio.sleep,
) -> CallResult:
    """Stream `request` through `provider`, calling `on_text` per chunk; never raises
    PromptDeckError (a failure is returned as a CallResult with `error`)."""
    start = time.perf_counter()
    parts: list[str] = []
    ttft: float | None = None
    usage: Usage | None = None
    logprobs: list[float] = []
    attempt = 0
    while True:
        logprobs.clear()  # a retried attempt starts its answer afresh
        try:
            # aclosing: a provider's cleanup (e.g. freeing a local model) runs right away.
            async with contextlib.aclosing(provider.stream(request)) as stream:
                async for chunk in stream:
                    if isinstance(chunk, Usage):
                        usage = chunk
                    elif isinstance(chunk, TokenLogprobs):
                        logprobs.extend(chunk.values)
                    elif chunk:
                        if ttft is None:
                            ttft = (time.perf_counter() - start) * 1000
                        parts.append(chunk)
                        if on_text is not None:
                            on_text(chunk)
            error: PromptDeckError | None = None
        except PromptDeckError as exc:
            error = exc
        if error is None or not should_retry(
            error, attempt=attempt, got_first_token=ttft is not None, max_retries=max_retries
        ):
            break
        delay = retry_delay(error, attempt=attempt)
        if on_status is not None:
            on_status(f"{_kind(error)}: retrying in {delay:.1f}s (attempt {attempt + 2})")
        await sleep(delay)
        attempt += 1
    latency = (time.perf_counter() - start) * 1000
    text = "".join(parts)
    if usage is None and text:
        usage = estimate_usage(request, text)
    return CallResult(
        model_ref=model_ref,
        text=text,
        usage=usage,
        ttft_ms=ttft,
        latency_ms=latency,
        cost_usd=prices.cost(model_ref, usage) if usage else prices.cost(model_ref, _NO_USAGE),
        attempts=attempt + 1,
        error=str(error) if error else None,
        error_kind=_kind(error) if error else None,
        confidence=confidence(logprobs),
    )


def confidence(logprobs: Sequence[float]) -> float | None:
    """exp(mean log-prob): the geometric-mean token probability (0..1), None for no tokens."""
    if not logprobs:
        return None
    return min(1.0, math.exp(math.fsum(logprobs) / len(logprobs)))


_NO_USAGE = Usage(0, 0)


def _kind(error: PromptDeckError) -> str:
    return error.kind if isinstance(error, ProviderError) else type(error).__name__
