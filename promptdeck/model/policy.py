"""The one call policy: how every model call is made, wherever it comes from.

The Playground, the eval runner, the judge and the connection test all call
`CallPolicy.call`, so they behave the same:

- the model reference is resolved through the registry (a bad one is a failed call, not
  a crash);
- per provider, a semaphore bounds the calls in flight (`concurrency`, else the
  provider's `max_concurrency`) and an optional requests-per-minute limit spaces their
  starts;
- the call itself is `stream_call`: timed, retried before the first token only;
- a structured-output request (`response_format`) is negotiated with the provider: asked
  as `json_schema`, then, if the server refuses that format, as `json_object`, then with
  none (the prompt still asks for JSON; the judge's parser is strict). What a provider
  needed is remembered in the registry's `FormatMemory`, so later calls ask for it
  straight away (`model.formats`). `Answer.request` is what was sent last;
- a variant's `fallback` model answers when the primary fails (and says so);
- an optional response cache, keyed by everything that determines the answer, makes an
  unchanged request free (evals use it; the Playground does not, a PM pressing Run again
  wants a new answer).

Semaphores and locks belong to the event loop that made them; a policy notices when it is
used from a new loop (a new background run) and makes new ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from promptdeck.errors import ErrorKind, PromptDeckError
from promptdeck.model.call import Sleep, TextSink, ToolCallSink, stream_call
from promptdeck.model.formats import (
    FormatLevel,
    format_level,
    next_level,
    refuses_format,
    with_level,
)
from promptdeck.model.refs import provider_of
from promptdeck.model.registry import Registry
from promptdeck.model.retry import MAX_RETRIES
from promptdeck.model.types import Answer, CallResult, ChatRequest, Message, Tool, request_json

DEFAULT_CONCURRENCY = 4  # calls in flight for a provider the registry does not know


class ResponseCache(Protocol):
    """Where answers are kept by request key (the store implements it)."""

    def cache_get(self, key: str) -> CallResult | None: ...

    def cache_put(self, key: str, result: CallResult) -> None: ...


# Told when the fallback takes over: (fallback model, why the primary failed). A streaming
# view clears the primary's partial text, which is not the answer any more.
FallbackSink = Callable[[str, str], None]


def request_key(model_ref: str, request: ChatRequest, sample: int = 0) -> str:
    """The cache key: everything that determines the answer, nothing else. `sample` tells
    repeats apart, so k repeats of a cell are k real answers (and re-running them is free)."""
    digest = hashlib.sha256(f"{model_ref}\n{request_json(request)}".encode()).hexdigest()
    return digest + (f"#{sample}" if sample else "")


@dataclass(frozen=True)
class _Sinks:
    """Who is told what a call streams (a Playground column; an eval cell tells nobody)."""

    text: TextSink | None = None
    status: TextSink | None = None
    thinking: TextSink | None = None
    tool_call: ToolCallSink | None = None

    def replay(self, hit: CallResult) -> None:
        """A cached answer arrives whole: tell the sinks what a stream would have told."""
        if self.thinking is not None and hit.thinking:
            self.thinking(hit.thinking)
        if self.tool_call is not None:
            for index, call in enumerate(hit.tool_calls):
                self.tool_call(index, call)
        if self.text is not None and hit.text:
            self.text(hit.text)


class _RateLimit:
    """Spaces request starts at least 60/rpm seconds apart."""

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self.next_at = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self.lock:
            now = time.monotonic()
            delay = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class CallPolicy:
    """Resolve, bound, rate-limit, cache, call, fall back: see the module docstring."""

    def __init__(
        self,
        registry: Registry,
        *,
        cache: ResponseCache | None = None,
        concurrency: int | None = None,
        rpm: float | None = None,
        max_retries: int = MAX_RETRIES,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.concurrency = concurrency
        self.rpm = rpm
        self.max_retries = max_retries
        self._sleep = sleep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._rates: dict[str, _RateLimit] = {}

    def limit_for(self, provider: str) -> int:
        """Calls in flight for `provider`: the policy's concurrency, else the provider's own."""
        if self.concurrency is not None:
            return self.concurrency
        config = self.registry.configs.get(provider)
        return config.max_concurrency if config is not None else DEFAULT_CONCURRENCY

    def is_local(self, model_ref: str) -> bool:
        return self.registry.is_local(model_ref)

    async def call(
        self,
        model_ref: str,
        messages: tuple[Message, ...],
        params: Mapping[str, Any],
        *,
        sample: int = 0,
        fallback: str | None = None,
        tools: tuple[Tool, ...] = (),
        on_text: TextSink | None = None,
        on_status: TextSink | None = None,
        on_fallback: FallbackSink | None = None,
        on_thinking: TextSink | None = None,
        on_tool_call: ToolCallSink | None = None,
    ) -> Answer:
        """One call of `model_ref`, and of `fallback` if that fails. Never raises a
        PromptDeckError: a failure is an Answer whose result has an error."""
        sinks = _Sinks(on_text, on_status, on_thinking, on_tool_call)
        first = await self._call_one(model_ref, messages, params, tools, sample, sinks)
        if first.result.ok or fallback is None:
            return first
        why = first.result.error or ""
        if on_fallback is not None:
            on_fallback(fallback, why)
        second = await self._call_one(fallback, messages, params, tools, sample, sinks)
        if second.result.ok:
            return Answer(second.result, second.request, second.cached, True, why)
        # Both failed: the primary's failure is the cell's, with the fallback's added.
        note = f"{why} (the fallback {fallback} failed too: {second.result.error})"
        failed = CallResult(
            model_ref,
            first.result.text,
            first.result.usage,
            first.result.ttft_ms,
            first.result.latency_ms + second.result.latency_ms,
            first.result.cost_usd,
            first.result.attempts,
            note,
            first.result.error_kind,
            first.result.confidence,
        )
        return Answer(failed, first.request, first.cached, False, None)

    async def _call_one(
        self,
        model_ref: str,
        messages: tuple[Message, ...],
        params: Mapping[str, Any],
        tools: tuple[Tool, ...],
        sample: int,
        sinks: _Sinks,
    ) -> Answer:
        try:
            provider, model = self.registry.resolve(model_ref)
        except PromptDeckError as exc:
            return Answer(CallResult.failure(model_ref, str(exc), ErrorKind.of(exc)), None)
        request = ChatRequest(model, messages, dict(params), tools)
        key = request_key(model_ref, request, sample)
        if self.cache is not None and (hit := self.cache.cache_get(key)) is not None:
            sinks.replay(hit)
            return Answer(hit, request, cached=True)
        on_status = sinks.status
        name = provider_of(model_ref)
        limit, rate = self._bounds(name)
        async with limit:
            sent = self._negotiated(name, request)
            while True:
                if rate is not None:
                    await rate.wait()
                result = await stream_call(
                    provider,
                    sent,
                    model_ref=model_ref,
                    prices=self.registry.prices,
                    on_text=sinks.text,
                    on_status=on_status,
                    on_thinking=sinks.thinking,
                    on_tool_call=sinks.tool_call,
                    max_retries=self.max_retries,
                    sleep=self._sleep,
                )
                lower = self._format_refused(name, sent, result)
                if lower is None:
                    break
                if on_status is not None:
                    on_status(f"{name} refused the response format; asking again with {lower}")
                sent = ChatRequest(
                    sent.model, sent.messages, with_level(sent.params, lower), sent.tools
                )
        # The cache key is the request as asked: the answer is the same whatever format
        # the server needed.
        if result.ok and self.cache is not None:
            self.cache.cache_put(key, result)
        return Answer(result, sent)

    def _negotiated(self, provider: str, request: ChatRequest) -> ChatRequest:
        """`request` with its response_format lowered to what `provider` is known to need."""
        level = self.registry.formats.get(provider)
        if level is None or format_level(request.params) is None:
            return request
        params = with_level(request.params, level)
        return ChatRequest(request.model, request.messages, params, request.tools)

    def _format_refused(
        self, provider: str, sent: ChatRequest, result: CallResult
    ) -> FormatLevel | None:
        """The next format to ask for when the server refused this one (remembered for the
        provider), else None."""
        level = format_level(sent.params)
        if level is None or result.ok or not refuses_format(result.status, result.error):
            return None
        lower = next_level(level)
        if lower is not None:
            self.registry.formats.lower(provider, lower)
        return lower

    def _bounds(self, provider: str) -> tuple[asyncio.Semaphore, _RateLimit | None]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new run in a new loop: its own semaphores
            self._loop, self._limits, self._rates = loop, {}, {}
        if provider not in self._limits:
            self._limits[provider] = asyncio.Semaphore(self.limit_for(provider))
            if self.rpm:
                self._rates[provider] = _RateLimit(self.rpm)
        return self._limits[provider], self._rates.get(provider)
