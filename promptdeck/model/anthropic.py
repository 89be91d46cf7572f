"""Anthropic's Messages API, streamed (`POST /v1/messages`, named SSE events).

Usage arrives in two places: `message_start` carries the input tokens, and
`message_delta` carries the output tokens as a running TOTAL — the last one wins,
adding them up would count tokens twice.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from promptdeck.model.http import (
    HTTPProvider,
    StreamDelta,
    error_from_payload,
    load_json,
    stream_chat,
)
from promptdeck.model.sse import ServerSentEvent
from promptdeck.model.types import DEFAULT_TIMEOUTS, ChatRequest, Chunk, Timeouts

ANTHROPIC_VERSION = "2023-06-01"

# The Messages API rejects fields it does not know (e.g. OpenAI's `seed`), so only these
# params are sent; a variant written for another provider still runs here.
PASSED_PARAMS = frozenset(
    {"temperature", "top_p", "top_k", "stop_sequences", "metadata", "thinking", "service_tier"}
)

_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)


class AnthropicProvider(HTTPProvider):
    """Streams `POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version`."""

    def __init__(
        self,
        name: str,
        base_url: str = "https://api.anthropic.com",
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        headers_env: Mapping[str, tuple[str, str | None]] | None = None,
        key_hosts: Sequence[str] | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        super().__init__(
            name,
            base_url,
            api_key=api_key,
            api_key_env=api_key_env,
            headers=headers,
            headers_env=headers_env,
            key_hosts=key_hosts,
            timeouts=timeouts,
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        url = f"{self.base_url}/v1/messages"
        prepared = self.prepare(url)
        chunks = stream_chat(
            request,
            url=url,
            body=messages_body(request),
            headers=prepared.headers,
            timeouts=self.timeouts,
            provider=self.name,
            parse=self._parse,
            secrets=prepared.secrets,
        )
        async for chunk in chunks:
            yield chunk

    def _models_url(self) -> str:
        return f"{self.base_url}/v1/models"

    def _request_headers(self, key: str | None) -> dict[str, str]:
        # Configured headers may pin another anthropic-version.
        return {"anthropic-version": ANTHROPIC_VERSION, **self._extra_headers}

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        return {"x-api-key": key or ""}  # never None: requires_key is on for Anthropic

    def _parse(self, event: ServerSentEvent) -> StreamDelta:
        return parse_event(event, provider=self.name)


def messages_body(request: ChatRequest) -> dict[str, Any]:
    """System messages go to the top-level `system`; `max_tokens` is required by the API."""
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ],
        "stream": True,
    }
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        body["system"] = system
    for key, value in request.params.items():
        if value is None:
            continue
        if key == "stop":  # the OpenAI name, as prompt files usually say it
            body["stop_sequences"] = [value] if isinstance(value, str) else list(value)
        elif key in PASSED_PARAMS:
            body[key] = value
    return body


def parse_event(event: ServerSentEvent, *, provider: str) -> StreamDelta:
    """One Messages API event -> its text, token totals, or end; unknown events are ignored."""
    if event.event is not None and event.event not in _EVENTS:
        return StreamDelta()  # a newer event type: its data need not even be JSON to us
    payload = load_json(event.data, provider=provider) if event.data.strip() else {}
    if not isinstance(payload, dict):
        return StreamDelta()
    kind = event.event or payload.get("type")
    if kind == "error":
        raise error_from_payload(payload.get("error", payload), provider=provider)
    if kind == "message_start":
        message = payload.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
        # Not its output_tokens: that is a placeholder until message_delta reports the total.
        return StreamDelta(input_tokens=_usage_count(usage, "input_tokens"))
    if kind == "content_block_delta":
        delta = payload.get("delta")
        if isinstance(delta, dict) and delta.get("type") == "text_delta":
            text = delta.get("text")
            return StreamDelta(text=text if isinstance(text, str) else "")
        return StreamDelta()  # tool input, thinking and signature deltas are not answer text
    if kind == "message_delta":
        usage = payload.get("usage")
        return StreamDelta(
            input_tokens=_usage_count(usage, "input_tokens"),
            output_tokens=_usage_count(usage, "output_tokens"),
        )
    if kind == "message_stop":
        return StreamDelta(done=True)
    return StreamDelta()


def _usage_count(usage: object, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
