"""OpenAI-compatible chat completions over SSE, and Azure OpenAI.

One class serves OpenAI and everything that copies its API (Ollama, vLLM, LM Studio,
llama.cpp server, OpenRouter, Groq, Together, Gemini's compatible endpoint). Those
servers differ in small ways, so `parse_chunk` tolerates usage-only chunks, empty
`choices`, chunks without `delta`, unknown fields and a missing usage record.

Token log-probabilities are asked for (`"logprobs": true`, no `top_logprobs`) only when the
request's params say `logprobs: true`: some servers reject the field, so it is otherwise not
sent at all. Each chunk's `choices[0].logprobs.content[*].logprob` becomes a TokenLogprobs.
"""

from __future__ import annotations

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
from promptdeck.model.types import DEFAULT_TIMEOUTS, ChatRequest, Chunk, Timeouts


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
    """The JSON body without `model`; params (temperature, seed, ...) pass through as given,
    except `logprobs`, which is sent (as `true`) only when asked for."""
    params = {key: value for key, value in request.params.items() if value is not None}
    stream_options = params.pop("stream_options", None)
    extra_options = dict(stream_options) if isinstance(stream_options, Mapping) else {}
    if params.pop("logprobs", None):
        params["logprobs"] = True
    return {
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        **params,
        "stream": True,
        "stream_options": {**extra_options, "include_usage": True},
    }


def parse_chunk(data: str, *, provider: str) -> StreamDelta:
    """One `data:` payload of a chat completion stream -> its text and usage."""
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
    choice = _first_choice(payload.get("choices"))
    return StreamDelta(
        text=_choice_text(choice),
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        logprobs=_choice_logprobs(choice),
    )


def _first_choice(choices: object) -> dict[str, Any]:
    # With n > 1 a server interleaves several answers; PromptDeck shows the first one.
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                return choice
    return {}


def _choice_text(choice: Mapping[str, Any]) -> str:
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


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
