"""The one interface every provider implements, and what a call gives back.

A provider turns a `ChatRequest` into an async stream of text chunks (with, when the
request asks for `logprobs` and the provider can give them, `TokenLogprobs` chunks between
them), followed by exactly one `Usage` record. It does not time, retry, cache or store:
the one call path (`model.call` wrapped by `model.policy`) does, and returns a `CallResult`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from promptdeck.errors import ErrorKind

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion: `model` is the provider's own model name (no 'provider/' prefix)."""

    model: str
    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def max_tokens(self) -> int:
        return int(self.params.get("max_tokens", DEFAULT_MAX_TOKENS))


DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. `estimated` is True when the server reported none."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False


@dataclass(frozen=True)
class TokenLogprobs:
    """Natural-log probabilities (<= 0) of generated tokens, in the order they were generated.

    Sent only when `request.params["logprobs"]` is true and the provider reports them; a
    stream may carry several of these chunks, each continuing where the previous one ended.
    """

    values: tuple[float, ...]


Chunk = str | Usage | TokenLogprobs


class Provider(Protocol):
    """Streams one chat completion: text chunks, optionally TokenLogprobs chunks among them
    (only when the request's params ask for `logprobs`), then exactly one Usage as the last
    item."""

    name: str

    def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]: ...


def request_json(request: ChatRequest) -> str:
    """The request as canonical JSON: what the store records and the cache key hashes."""
    return json.dumps(
        {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "params": dict(request.params),
        },
        sort_keys=True,
        ensure_ascii=False,
    )


def estimate_tokens(text: str) -> int:
    """A rough token count (~4 characters per token) for servers that report no usage."""
    return 0 if not text else max(1, round(len(text) / 4))


def estimate_usage(request: ChatRequest, output: str) -> Usage:
    prompt = "".join(m.content for m in request.messages)
    # ~4 tokens of chat-template overhead per message.
    return Usage(
        input_tokens=estimate_tokens(prompt) + 4 * len(request.messages),
        output_tokens=estimate_tokens(output),
        estimated=True,
    )


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `read` is the longest allowed gap between two chunks of a stream."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 10.0
    pool: float = 10.0


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True)
class CallResult:
    """One finished call, measured. A failure is a value: `error` says what went wrong (for a
    PM) and `error_kind` names it; any text that arrived before it is kept in `text`."""

    model_ref: str
    text: str
    usage: Usage | None
    ttft_ms: float | None
    latency_ms: float
    cost_usd: float | None
    attempts: int = 1
    error: str | None = None
    error_kind: ErrorKind | None = None
    confidence: float | None = None  # exp(mean token log-prob), 0..1; None: no log-probs
    status: int | None = None  # the HTTP status of a failure the server answered with

    @classmethod
    def failure(
        cls, model_ref: str, error: str, kind: ErrorKind, *, latency_ms: float = 0.0
    ) -> CallResult:
        """A call that produced nothing (it was never sent, or a bug stopped it)."""
        return cls(model_ref, "", None, None, latency_ms, None, error=error, error_kind=kind)

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


@dataclass(frozen=True)
class Answer:
    """A finished call as the call policy made it. `request` is what was sent last (None when
    nothing could be sent); `primary_error` says why the primary model did not answer when
    the fallback did."""

    result: CallResult
    request: ChatRequest | None
    cached: bool = False
    fallback_used: bool = False
    primary_error: str | None = None
