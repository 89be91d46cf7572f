"""Anthropic's Messages API, streamed (`POST /v1/messages`, named SSE events).

Usage arrives in two places: `message_start` carries the input tokens, and
`message_delta` carries the output tokens as a running TOTAL — the last one wins,
adding them up would count tokens twice.

Tools, thinking, images and structured output are translated from OpenAI's spelling (which
`ChatRequest` uses) to the Messages API's: `tools` with `input_schema`; an assistant turn's
thinking (with its signature, which the API checks), text and `tool_use` blocks; the answers
to one turn's calls as ONE user message of `tool_result` blocks; images as base64 `image`
blocks; `response_format` json_schema as `output_config.format`. Streamed, a `tool_use` block
becomes ToolCallDeltas indexed by its content block, and thinking arrives as Thinking chunks
(its signature in one with empty text).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from promptdeck.errors import ConfigError
from promptdeck.model.http import (
    HTTPProvider,
    StreamDelta,
    error_from_payload,
    load_json,
    stream_chat,
)
from promptdeck.model.sse import ServerSentEvent
from promptdeck.model.types import (
    DEFAULT_TIMEOUTS,
    ChatRequest,
    Chunk,
    Message,
    Timeouts,
    ToolCall,
    ToolCallDelta,
    Usage,
)

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
        empty: set[int] = set()  # tool calls whose arguments have not started yet
        async for chunk in chunks:
            if isinstance(chunk, ToolCallDelta):
                if chunk.arguments:
                    empty.discard(chunk.index)
                elif chunk.id is not None:
                    empty.add(chunk.index)
            elif isinstance(chunk, Usage):
                # A call of a tool without parameters streams no input at all: its
                # arguments are the empty object, as the block's `input: {}` said.
                for index in sorted(empty):
                    yield ToolCallDelta(index, arguments="{}")
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
    """System messages go to the top-level `system`; `max_tokens` is required by the API.
    Only PASSED_PARAMS are sent, besides `stop` (as `stop_sequences`), `tool_choice` (when
    there are tools) and `response_format` json_schema (as `output_config`)."""
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": turns(request.messages),
        "stream": True,
    }
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    if system:
        body["system"] = system
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
    for key, value in request.params.items():
        if value is None:
            continue
        if key == "stop":  # the OpenAI name, as prompt files usually say it
            body["stop_sequences"] = [value] if isinstance(value, str) else list(value)
        elif key == "tool_choice" and request.tools:
            choice = tool_choice(value)
            if choice is not None:
                body["tool_choice"] = choice
        elif key == "response_format":
            schema = _json_schema(value)
            if schema is not None:  # json_object has no equivalent: the prompt asks for JSON
                body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        elif key in PASSED_PARAMS:
            body[key] = value
    _check_thinking_with_tools(body, request.model)
    return body


def _check_thinking_with_tools(body: dict[str, Any], model: str) -> None:
    """The Messages API refuses extended thinking with a tool_choice that forces a tool (any
    or a named one); say so before sending, with what to change."""
    thinking = body.get("thinking")
    forced = body.get("tool_choice", {}).get("type") in ("any", "tool")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled" and forced:
        raise ConfigError(
            f"{model}: Anthropic does not allow thinking together with a tool_choice that "
            "forces a tool (required, or a tool's name): use tool_choice auto, or turn "
            "thinking off."
        )


def turns(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The non-system messages as Messages API turns. A plain text message stays
    `{role, content}`; consecutive tool messages become one user turn of tool results."""
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the tool results of the turn being built
    for message in messages:
        if message.role == "system":
            continue
        if message.role != "tool":
            results = None
            out.append(_turn(message))
            continue
        if results is None:
            results = []
            out.append({"role": "user", "content": results})
        results.append(
            {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
        )
    return out


def _turn(message: Message) -> dict[str, Any]:
    if message.role == "assistant" and message.tool_calls:
        blocks: list[dict[str, Any]] = []
        if message.thinking and message.signature:
            blocks.append(
                {"type": "thinking", "thinking": message.thinking, "signature": message.signature}
            )
        if message.content:
            blocks.append({"type": "text", "text": message.content})
        for call in message.tool_calls:
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call)}
            )
        return {"role": "assistant", "content": blocks}
    if message.role == "user" and message.images:
        blocks = [{"type": "text", "text": message.content}] if message.content else []
        for image in message.images:
            source = {"type": "base64", "media_type": image.media_type, "data": image.data}
            blocks.append({"type": "image", "source": source})
        return {"role": "user", "content": blocks}
    return {"role": message.role, "content": message.content}


def _input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the object `tool_use.input` must be; {} when the model's
    text was not a JSON object (the API would refuse anything else)."""
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def tool_choice(value: object) -> dict[str, Any] | None:
    """OpenAI's tool_choice in the Messages API's spelling; one already in that spelling is
    kept; None (not sent) for anything else."""
    if value == "auto":
        return {"type": "auto"}
    if value == "required":
        return {"type": "any"}
    if value == "none":
        return {"type": "none"}
    if not isinstance(value, Mapping):
        return None
    function = value.get("function")
    if value.get("type") == "function" and isinstance(function, Mapping) and function.get("name"):
        return {"type": "tool", "name": str(function["name"])}
    if value.get("type") in ("auto", "any", "none", "tool"):
        return dict(value)
    return None


def _json_schema(response_format: object) -> dict[str, Any] | None:
    """The schema of an OpenAI `json_schema` response_format, else None."""
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return dict(schema) if isinstance(schema, Mapping) else None


def parse_event(event: ServerSentEvent, *, provider: str) -> StreamDelta:
    """One Messages API event -> its text, thinking, tool-call piece, token totals, or end;
    unknown events are ignored."""
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
    if kind == "content_block_start":
        block = payload.get("content_block")
        index = _usage_count(payload, "index")
        if isinstance(block, dict) and block.get("type") == "tool_use" and index is not None:
            call = ToolCallDelta(index, id=_str(block.get("id")), name=_str(block.get("name")))
            return StreamDelta(tool_calls=(call,))
        return StreamDelta()
    if kind == "content_block_delta":
        return _block_delta(payload)
    if kind == "message_delta":
        usage = payload.get("usage")
        return StreamDelta(
            input_tokens=_usage_count(usage, "input_tokens"),
            output_tokens=_usage_count(usage, "output_tokens"),
        )
    if kind == "message_stop":
        return StreamDelta(done=True)
    return StreamDelta()


def _block_delta(payload: Mapping[str, Any]) -> StreamDelta:
    delta = payload.get("delta")
    if not isinstance(delta, dict):
        return StreamDelta()
    kind = delta.get("type")
    if kind == "text_delta":
        return StreamDelta(text=_str(delta.get("text")) or "")
    if kind == "thinking_delta":
        return StreamDelta(thinking=_str(delta.get("thinking")) or "")
    if kind == "signature_delta":
        return StreamDelta(signature=_str(delta.get("signature")) or "")
    index = _usage_count(payload, "index")
    if kind == "input_json_delta" and index is not None:
        arguments = _str(delta.get("partial_json")) or ""
        return StreamDelta(tool_calls=(ToolCallDelta(index, arguments=arguments),))
    return StreamDelta()  # e.g. a citation: not answer text


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _usage_count(usage: object, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
