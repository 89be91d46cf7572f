"""OpenAI-compatible chat completions over SSE, and Azure OpenAI.

One class serves OpenAI and everything that copies its API (Ollama, vLLM, LM Studio,
llama.cpp server, OpenRouter, Groq, Together, Gemini's compatible endpoint). Those
servers differ in small ways, so `parse_chunk` tolerates usage-only chunks, empty
`choices`, chunks without `delta`, unknown fields and a missing usage record.

Tools, images and thinking use OpenAI's chat-completions spelling: `tools` as functions, an
assistant message's `tool_calls`, `role: tool` messages answering them, images as `image_url`
parts of a user message (data URLs). Streamed tool calls arrive as `delta.tool_calls` pieces;
thinking as `delta.reasoning_content` (vLLM, llama.cpp, DeepSeek) or `delta.reasoning`
(OpenRouter, newer vLLM), and its token count as `completion_tokens_details.reasoning_tokens`.

Token log-probabilities are asked for (`"logprobs": true`, no `top_logprobs`) only when the
request's params say `logprobs: true`: some servers reject the field, so it is otherwise not
sent at all. Each chunk's `choices[0].logprobs.content[*].logprob` becomes a TokenLogprobs.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from promptdeck.errors import ProtocolError
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
    Tool,
    ToolCallDelta,
)


class OpenAIProvider(HTTPProvider):
    """Streams `POST {base_url}/chat/completions`; `base_url` usually ends in `/v1`."""

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        url = self._url(request)
        prepared = self.prepare(url)
        chunks = stream_chat(
            request,
            url=url,
            body=self._body(request),
            headers=prepared.headers,
            timeouts=self.timeouts,
            provider=self.name,
            parse=self._parse,
            secrets=prepared.secrets,
        )
        async for chunk in chunks:
            yield chunk

    def _url(self, request: ChatRequest) -> str:
        return f"{self.base_url}/chat/completions"

    def _models_url(self) -> str:
        return f"{self.base_url}/models"  # Ollama, vLLM, LM Studio, OpenRouter answer it too

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        return {"model": request.model, **chat_body(request)}

    def _parse(self, event: ServerSentEvent) -> StreamDelta:
        return parse_chunk(event.data, provider=self.name)


class AzureProvider(OpenAIProvider):
    """Azure OpenAI: the deployment (`request.model`) is in the URL, the key in `api-key`."""

    def __init__(
        self,
        name: str,
        endpoint: str,
        *,
        api_version: str,
        api_key: str | None = None,
        api_key_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        headers_env: Mapping[str, tuple[str, str | None]] | None = None,
        key_hosts: Sequence[str] | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        super().__init__(
            name,
            endpoint,
            api_key=api_key,
            api_key_env=api_key_env,
            headers=headers,
            headers_env=headers_env,
            key_hosts=key_hosts,
            timeouts=timeouts,
            requires_key=True,
        )
        self.api_version = api_version

    def _url(self, request: ChatRequest) -> str:
        deployment = quote(request.model, safe="")
        version = quote(self.api_version, safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}/chat/completions"
            f"?api-version={version}"
        )

    def _models_url(self) -> str:
        return f"{self.base_url}/openai/models?api-version={quote(self.api_version, safe='')}"

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        return {"api-key": key} if key else {}

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        return chat_body(request)


def chat_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body without `model`; params (temperature, seed, tool_choice, reasoning_effort,
    response_format, ...) pass through as given, except `logprobs`, which is sent (as `true`)
    only when asked for, and `tool_choice`, which is not sent without tools (OpenAI refuses
    it then)."""
    params = {key: value for key, value in request.params.items() if value is not None}
    stream_options = params.pop("stream_options", None)
    extra_options = dict(stream_options) if isinstance(stream_options, Mapping) else {}
    if params.pop("logprobs", None):
        params["logprobs"] = True
    if not request.tools:
        params.pop("tool_choice", None)
    body: dict[str, Any] = {"messages": [message_json(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [tool_json(t) for t in request.tools]
    body.update(params)
    body["stream"] = True
    body["stream_options"] = {**extra_options, "include_usage": True}
    return body


def message_json(message: Message) -> dict[str, Any]:
    """One message as the API takes it; a plain text message stays `{role, content}`."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
        # "" rather than null when the model said nothing besides its calls: OpenAI takes
        # either, llama-cpp-python's server refuses null (HTTP 500, measured)
        return {"role": "assistant", "content": message.content, "tool_calls": calls}
    if message.role == "user" and message.images:
        parts: list[dict[str, Any]] = []
        if message.content:
            parts.append({"type": "text", "text": message.content})
        for image in message.images:
            url = f"data:{image.media_type};base64,{image.data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        return {"role": "user", "content": parts}
    return {"role": message.role, "content": message.content}


def tool_json(tool: Tool) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description}
    return {"type": "function", "function": function | {"parameters": dict(tool.parameters)}}


def parse_chunk(data: str, *, provider: str) -> StreamDelta:
    """One `data:` payload of a chat completion stream -> its text, thinking, tool-call
    pieces and usage."""
    if not data.strip():
        return StreamDelta()  # an empty data line: some servers' keep-alive
    if data.strip() == "[DONE]":
        return StreamDelta(done=True)
    payload = load_json(data, provider=provider)
    if not isinstance(payload, dict):
        raise ProtocolError(
            f"the server sent a chunk that is not a JSON object: {data[:120]!r}.",
            provider=provider,
        )
    if payload.get("error"):
        raise error_from_payload(payload["error"], provider=provider)
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    details = usage.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    choice = _first_choice(payload.get("choices"))
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        delta = {}
    return StreamDelta(
        text=_text(delta.get("content")),
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        logprobs=_choice_logprobs(choice),
        # servers that send both spell the same text twice: one of them is enough
        thinking=_text(delta.get("reasoning_content")) or _text(delta.get("reasoning")),
        tool_calls=_tool_call_deltas(delta.get("tool_calls")),
        reasoning_tokens=_count(reasoning),
    )


def _tool_call_deltas(calls: object) -> tuple[ToolCallDelta, ...]:
    """`delta.tool_calls[*]` -> ToolCallDeltas. A server that leaves out `index` (some send
    each call whole, in one chunk) gets the call's place in the list; arguments sent as an
    object rather than JSON text are turned into JSON text."""
    if not isinstance(calls, list):
        return ()
    out = []
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        index = _count(call.get("index"))
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        arguments = function.get("arguments")
        if isinstance(arguments, dict | list):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out.append(
            ToolCallDelta(
                index=position if index is None else index,
                id=_text(call.get("id")) or None,
                name=_text(function.get("name")) or None,
                arguments=_text(arguments),
            )
        )
    return tuple(out)


def _first_choice(choices: object) -> dict[str, Any]:
    # With n > 1 a server interleaves several answers; PromptDeck shows the first one.
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                return choice
    return {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _choice_logprobs(choice: Mapping[str, Any]) -> tuple[float, ...]:
    """`logprobs.content[*].logprob`; `logprobs: null`, no `content` or odd entries give ()."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return ()
    values = []
    for item in content:
        value = item.get("logprob") if isinstance(item, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
            values.append(min(float(value), 0.0))  # a rounding error must not exceed p = 1
    return tuple(values)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
