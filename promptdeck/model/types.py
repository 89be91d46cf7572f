"""The one interface every provider implements, and what a call gives back.

A provider turns a `ChatRequest` into an async stream of text chunks (with, when the
request asks for `logprobs` and the provider can give them, `TokenLogprobs` chunks between
them), followed by exactly one `Usage` record. A model that thinks streams its thinking as
`Thinking` chunks, never as text; a model that calls tools streams `ToolCallDelta` chunks
(the call's id and name first, its JSON arguments in pieces), which the call path assembles.
It does not time, retry, cache or store: the one call path (`model.call` wrapped by
`model.policy`) does, and returns a `CallResult`.

A conversation with tools is plain messages: an assistant message carries the `tool_calls`
it made, and a `tool` message answers one of them by `tool_call_id`. Running the tools (their
mocks) is not the model layer's: `evals.turn` does it, once, for the Playground and the runner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from promptdeck.errors import ErrorKind

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool as the model made it: `arguments` is the JSON text it sent, verbatim
    (it may not even be JSON: checking it is the caller's)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolStep:
    """One tool call of a turn and what went back to the model: `arguments` is the parsed
    JSON (the raw text when it did not parse), `result` the text the model was sent (the
    mock's output, or the error it was told), `error` why the call was not run as asked
    (arguments not JSON or not valid, an unknown tool, a mock that failed), else None."""

    round: int  # 1 for the first answer's calls
    id: str
    name: str
    arguments: object
    result: str
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"name": self.name, "arguments": self.arguments, "result": self.result}
        return out | ({"error": self.error} if self.error else {})


@dataclass(frozen=True)
class Image:
    """An image sent with a user message: base64 `data` of `media_type` (image/png, ...);
    `source` names where it came from (a file, an upload) for messages."""

    media_type: str
    data: str
    source: str = ""


@dataclass(frozen=True)
class Message:
    """One chat message. Besides its text: an assistant message's `tool_calls` (and its
    `thinking`, with the provider's `signature`, which Anthropic needs back unchanged), a tool
    message's `tool_call_id` and tool `name`, a user message's `images`."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    images: tuple[Image, ...] = ()
    thinking: str = ""
    signature: str = ""


@dataclass(frozen=True)
class Tool:
    """A function the model may call: `parameters` is the JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion: `model` is the provider's own model name (no 'provider/' prefix).
    `params` may hold `tool_choice` (OpenAI's spelling: auto, none, required, or a function)
    and `response_format` (OpenAI's spelling, which each provider translates)."""

    model: str
    messages: tuple[Message, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Tool, ...] = ()

    @property
    def max_tokens(self) -> int:
        return int(self.params.get("max_tokens", DEFAULT_MAX_TOKENS))


DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. `estimated` is True when the server reported none.
    `reasoning_tokens` are the part of `output_tokens` spent thinking (priced as output, as
    every provider bills them); None when the server did not say."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class TokenLogprobs:
    """Natural-log probabilities (<= 0) of generated tokens, in the order they were generated.

    Sent only when `request.params["logprobs"]` is true and the provider reports them; a
    stream may carry several of these chunks, each continuing where the previous one ended.
    """

    values: tuple[float, ...]


@dataclass(frozen=True)
class Thinking:
    """A piece of the model's thinking (reasoning) text, streamed apart from the answer.
    Anthropic's closing `signature` arrives as a Thinking chunk with empty text."""

    text: str
    signature: str = ""


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of the `index`-th tool call of this answer: its id and name arrive first (None
    in later pieces), its JSON `arguments` text in pieces to be joined."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


Chunk = str | Usage | TokenLogprobs | Thinking | ToolCallDelta


class Provider(Protocol):
    """Streams one chat completion: text chunks, optionally TokenLogprobs chunks among them
    (only when the request's params ask for `logprobs`), Thinking and ToolCallDelta chunks
    when the model thinks or calls tools, then exactly one Usage as the last item."""

    name: str

    def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]: ...


def message_json(message: Message) -> dict[str, Any]:
    """A message as plain JSON; fields a plain text message does not use are left out, so
    the request of a prompt without tools hashes as it always did."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    if message.images:
        out["images"] = [
            {"media_type": i.media_type, "sha256": hashlib.sha256(i.data.encode()).hexdigest()}
            | ({"source": i.source} if i.source else {})
            for i in message.images
        ]
    if message.thinking:
        out["thinking"] = message.thinking
    return out


def request_json(request: ChatRequest) -> str:
    """The request as canonical JSON: what the store records and the cache key hashes. An
    image is recorded by its hash, not its bytes."""
    out: dict[str, Any] = {
        "model": request.model,
        "messages": [message_json(m) for m in request.messages],
        "params": dict(request.params),
    }
    if request.tools:
        out["tools"] = [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            for t in request.tools
        ]
    return json.dumps(out, sort_keys=True, ensure_ascii=False)


def estimate_tokens(text: str) -> int:
    """A rough token count (~4 characters per token) for servers that report no usage."""
    return 0 if not text else max(1, round(len(text) / 4))


def estimate_usage(request: ChatRequest, output: str) -> Usage:
    prompt = "".join(
        m.content + "".join(c.arguments for c in m.tool_calls) for m in request.messages
    )
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
    PM) and `error_kind` names it; any text that arrived before it is kept in `text`.
    `ttft_ms` is the time to the first token of the answer (its text or a tool call), and
    `thinking_ms` the time to the first thinking token, so a reasoning model's two waits are
    told apart."""

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
    tool_calls: tuple[ToolCall, ...] = ()  # the tools the model called instead of answering
    thinking: str = ""  # the model's thinking text, never part of `text`
    thinking_ms: float | None = None  # time to the first thinking token
    signature: str = ""  # Anthropic's signature of the thinking, sent back with it

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
