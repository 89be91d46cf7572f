"""The one interface every provider implements.

A provider turns a `ChatRequest` into an async stream of text chunks (with, when the
request asks for `logprobs` and the provider can give them, `TokenLogprobs` chunks between
them), followed by exactly one `Usage` record. It does not time, retry, cache or store:
the caller (`promptdeck.call`) wraps it once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

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
