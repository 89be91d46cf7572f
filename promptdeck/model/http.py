"""Shared httpx plumbing for the HTTP providers.

- one `httpx.AsyncClient` per running event loop (`get_client`), closed by its owner
  (`close_client`, or `run_with_client` which does it for you);
- `open_stream`: a streaming POST that turns a non-2xx answer into the typed error and
  every httpx failure into `ProviderTimeout` / `ProviderConnectionError` / ...;
- `stream_chat`: the loop both HTTP providers share — SSE events in, text chunks (and any
  `TokenLogprobs`, `Thinking` and `ToolCallDelta` chunks) out, then exactly one `Usage`. Each
  provider only supplies a pure `parse` for its events;
- `HTTPProvider.prepare`: a request's headers, checked before anything is sent: its key and
  secret headers (`headers_env`) only to the hosts allowed for them (`key_hosts`), every
  header value sendable (else a ConfigError naming the header, never its value).

Every message built here masks the secrets of the request: the key, the secret and the
configured header values, and a `user:password@` of the URL (`model.secrets.redact`).

No retries or timing here: the caller wraps a provider once.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx

from promptdeck.errors import (
    AuthError,
    ConfigError,
    HTTPStatusError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    error_for_status,
)
from promptdeck.model.secrets import (
    check_headers,
    key_refusal,
    redact,
    url_host,
    url_secrets,
    url_server,
)
from promptdeck.model.sse import ServerSentEvent, SSEDecoder
from promptdeck.model.types import (
    DEFAULT_TIMEOUTS,
    ChatRequest,
    Chunk,
    Thinking,
    Timeouts,
    TokenLogprobs,
    ToolCallDelta,
    Usage,
    estimate_usage,
)

T = TypeVar("T")

# An error page can be huge (HTML from a proxy); the first bytes say enough.
MAX_ERROR_BODY = 64 * 1024

# httpx connections belong to the loop that opened them: never share a client across loops.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)
_clients_lock = threading.Lock()
# Loading the CA bundle takes ~15 ms; an SSLContext is not tied to a loop, so load it once.
_ssl_context: ssl.SSLContext | None = None


def http_timeout(timeouts: Timeouts) -> httpx.Timeout:
    """httpx's read timeout applies per socket read, i.e. to the gap between two chunks."""
    return httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
    )


def get_client() -> httpx.AsyncClient:
    """The running loop's shared client, created on first use."""
    loop = asyncio.get_running_loop()
    with _clients_lock:
        for old_loop in [other for other in _clients if other.is_closed()]:
            # Its loop is gone, so it cannot be closed any more; drop it rather than leak it.
            del _clients[old_loop]
        client = _clients.get(loop)
        if client is None or client.is_closed:
            verify = _shared_ssl_context()
            client = httpx.AsyncClient(verify=verify, timeout=http_timeout(DEFAULT_TIMEOUTS))
            _clients[loop] = client
        return client


def _shared_ssl_context() -> ssl.SSLContext:
    global _ssl_context  # one CA bundle load per process
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


async def close_client() -> None:
    """Close the running loop's client; call it before the loop ends."""
    with _clients_lock:
        client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def run_with_client(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)`, closing the loop's shared client before the loop ends."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await close_client()

    return asyncio.run(main())


def resolve_key(api_key: str | None, api_key_env: str | None) -> str | None:
    """The explicit key, else the named environment variable, read at call time."""
    if api_key:
        return api_key
    if api_key_env:
        return os.environ.get(api_key_env, "").strip() or None
    return None


def missing_key_error(provider: str, api_key_env: str | None) -> AuthError:
    if api_key_env:
        hint = f"set the environment variable {api_key_env} (e.g. in .env) and try again"
    else:
        hint = (
            "add api_key_env (the NAME of the environment variable that holds the key) "
            "to this provider in providers.yaml"
        )
    return AuthError(f"no API key is configured: {hint}.", provider=provider)


def masked(error: ProviderError, secrets: Sequence[str]) -> ProviderError:
    """`error` with the secrets masked in its message (str(exc) is built from args)."""
    error.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in error.args)
    return error


@asynccontextmanager
async def open_stream(
    url: str,
    *,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    timeouts: Timeouts,
    provider: str,
    secrets: Sequence[str] = (),
) -> AsyncIterator[httpx.Response]:
    """POST `body` as JSON and hold the streaming 2xx response open.

    httpx errors raised while the caller reads the body are mapped here too, since the
    context manager sees them on their way out. `secrets` are masked in every message.
    """
    client = get_client()
    try:
        async with client.stream(
            "POST", url, json=dict(body), headers=dict(headers), timeout=http_timeout(timeouts)
        ) as response:
            if not response.is_success:
                # read past the limit by the longest secret, mask, then cut: a secret that
                # straddles the limit is masked whole, never shown in part
                longest = max((len(s) for s in secrets), default=0)
                said = await _read_error_body(response, MAX_ERROR_BODY + longest)
                text = redact(said, secrets)[:MAX_ERROR_BODY]
                raise error_for_status(
                    response.status_code, text, response.headers, provider=provider
                )
            yield response
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        raise transport_error(
            exc, url=url, timeouts=timeouts, provider=provider, secrets=secrets
        ) from exc


async def get_json(
    url: str,
    *,
    headers: Mapping[str, str],
    timeouts: Timeouts,
    provider: str,
    secrets: Sequence[str] = (),
) -> Any:
    """GET `url` and decode its JSON body, with the same error mapping as `open_stream`."""
    try:
        response = await get_client().get(
            url, headers=dict(headers), timeout=http_timeout(timeouts)
        )
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        raise transport_error(
            exc, url=url, timeouts=timeouts, provider=provider, secrets=secrets
        ) from exc
    if not response.is_success:
        text = redact(response.text, secrets)[:MAX_ERROR_BODY]  # mask first, then cut
        raise error_for_status(response.status_code, text, response.headers, provider=provider)
    return load_json(redact(response.text, secrets), provider=provider)


async def _read_error_body(response: httpx.Response, limit: int) -> str:
    data = b""
    async for part in response.aiter_bytes():
        data += part
        if len(data) >= limit:
            break
    return data[:limit].decode(response.encoding or "utf-8", errors="replace")


def transport_error(
    exc: Exception, *, url: str, timeouts: Timeouts, provider: str, secrets: Sequence[str] = ()
) -> ProviderError:
    """Map an httpx exception to the error a caller can act on; the message says what to do.
    It names the server, never a user:password@, the path or the query (they may hold
    secrets), and masks `secrets` and the URL's credentials in what httpx said."""
    error = _transport_error(exc, url=url, timeouts=timeouts, provider=provider)
    return masked(error, [*secrets, *url_secrets(url)])


def _transport_error(
    exc: Exception, *, url: str, timeouts: Timeouts, provider: str
) -> ProviderError:
    server = url_server(url)
    if isinstance(exc, httpx.ConnectTimeout):
        message = (
            f"could not connect to {server} within {timeouts.connect:g}s. Check the base URL "
            "and that the server is running."
        )
        return ProviderTimeout(message, provider=provider)
    if isinstance(exc, httpx.PoolTimeout):
        message = f"no free connection within {timeouts.pool:g}s. Lower the concurrency."
        return ProviderTimeout(message, provider=provider)
    if isinstance(exc, httpx.TimeoutException):
        message = (
            f"{server} sent nothing for {timeouts.read:g}s (the longest allowed gap between "
            "chunks). The model may be overloaded; try again, or raise the read timeout."
        )
        return ProviderTimeout(message, provider=provider)
    if isinstance(exc, (httpx.ConnectError, httpx.ProxyError)):
        message = (
            f"could not connect to {server} ({exc}). Check the base URL, that the server is "
            "running, and the network."
        )
        return ProviderConnectionError(message, provider=provider)
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)):
        message = (
            f"the URL {server} cannot be used ({exc}). It must start with http:// or https://."
        )
        return ProviderError(message, provider=provider)
    if isinstance(exc, httpx.DecodingError):
        return ProtocolError(
            f"{server} sent a body that cannot be decoded ({exc}).", provider=provider
        )
    message = (
        f"{server} closed the connection before the answer was complete "
        f"({exc or type(exc).__name__}). Try again; if it keeps happening, check the server's logs."
    )
    return ProviderConnectionError(message, provider=provider)


async def iter_events(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    decoder = SSEDecoder()
    async for data in response.aiter_bytes():
        for event in decoder.feed(data):
            yield event
    for event in decoder.flush():
        yield event


@dataclass(frozen=True)
class StreamDelta:
    """What one event contributes. Token counts are the server's latest totals, not increments.
    Thinking text and its signature, and pieces of tool calls, are kept apart from the answer's
    `text`: `stream_chat` yields them as `Thinking` and `ToolCallDelta` chunks."""

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    done: bool = False
    logprobs: tuple[float, ...] = ()  # of the tokens this event carries, when asked for
    thinking: str = ""
    signature: str = ""  # Anthropic's signature of the thinking block
    tool_calls: tuple[ToolCallDelta, ...] = ()
    reasoning_tokens: int | None = None  # the part of output_tokens spent thinking


def load_json(data: str, *, provider: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        shown = data if len(data) <= 120 else data[:119] + "…"
        raise ProtocolError(
            f"the server sent a chunk that is not JSON: {shown!r}. Check that the base URL "
            "points at the right API.",
            provider=provider,
        ) from None


# Error type or code inside an error payload -> the HTTP status the same error would have had.
_STATUS_FOR_ERROR = {
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "insufficient_quota": 429,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "overloaded_error": 529,
    "server_error": 500,
    "api_error": 500,
}


def error_from_payload(error: object, *, provider: str) -> ProviderError:
    """The typed error for an error object sent inside a stream (OpenAI or Anthropic shape)."""
    if not isinstance(error, Mapping):
        return ProviderError(f"the server reported an error: {error}", provider=provider)
    message = str(error.get("message") or "no message")
    names = [str(error[key]) for key in ("code", "type") if error.get(key)]
    label = f"{message} ({'/'.join(names)})" if names else message
    for name in names:
        status = _STATUS_FOR_ERROR.get(name)
        if status is not None:
            return error_for_status(status, label, {}, provider=provider)
    return ProviderError(f"the server reported an error mid-answer: {label}", provider=provider)


async def stream_chat(
    request: ChatRequest,
    *,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    timeouts: Timeouts,
    provider: str,
    parse: Callable[[ServerSentEvent], StreamDelta],
    secrets: Sequence[str] = (),
) -> AsyncIterator[Chunk]:
    """Stream what each event carries, in this order: its Thinking, its ToolCallDeltas, its
    text, its TokenLogprobs; then exactly one Usage (estimated if the server sent none)."""
    said: list[str] = []  # everything the model output, for an estimate of its tokens
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    received = done = False
    try:
        async with open_stream(
            url, body=body, headers=headers, timeouts=timeouts, provider=provider, secrets=secrets
        ) as response:
            async for event in iter_events(response):
                received = True
                if done:
                    continue  # read to the end so the connection can be reused
                try:
                    delta = parse(event)
                except ProviderError as exc:
                    masked(exc, secrets)  # a server may echo the key in an error
                    raise
                input_tokens = _latest(input_tokens, delta.input_tokens)
                output_tokens = _latest(output_tokens, delta.output_tokens)
                reasoning_tokens = _latest(reasoning_tokens, delta.reasoning_tokens)
                done = delta.done
                if delta.thinking or delta.signature:
                    said.append(delta.thinking)
                    yield Thinking(delta.thinking, delta.signature)
                for call in delta.tool_calls:
                    said.append((call.name or "") + call.arguments)
                    yield call
                if delta.text:
                    said.append(delta.text)
                    yield delta.text
                if delta.logprobs:
                    yield TokenLogprobs(delta.logprobs)
    except HTTPStatusError as exc:
        clearer = _image_refusal(exc, request, provider)
        if clearer is None:
            raise
        raise clearer from exc
    if not received:
        raise ProtocolError(
            "the server answered with an empty stream. Check that the base URL and model are "
            "right and that the server supports streaming.",
            provider=provider,
        )
    usage = final_usage(request, "".join(said), input_tokens, output_tokens)
    if reasoning_tokens is not None:
        usage = replace(usage, reasoning_tokens=reasoning_tokens)
    yield usage


def _latest(known: int | None, new: int | None) -> int | None:
    return known if new is None else new


def _image_refusal(
    error: HTTPStatusError, request: ChatRequest, provider: str
) -> HTTPStatusError | None:
    """A 400 about an image, for a request that sends images, told with what to do about it
    (the usual cause is a model that reads only text); None for any other error."""
    has_images = any(m.images for m in request.messages)
    if error.status != 400 or not has_images or "image" not in str(error).lower():
        return None
    message = str(error)
    said = message[message.find("Server said:") :] if "Server said:" in message else ""
    return HTTPStatusError(
        "the model refused the image sent with the prompt (HTTP 400). It probably reads only "
        "text: choose a model that accepts images, or remove the image. " + said,
        provider=provider,
        status=400,
        retry_after=error.retry_after,
    )


def final_usage(
    request: ChatRequest, output: str, input_tokens: int | None, output_tokens: int | None
) -> Usage:
    """The server's counts, with any it did not send estimated from the request and `output`
    (all the model said: answer, thinking and tool calls)."""
    if input_tokens is not None and output_tokens is not None:
        return Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    guess = estimate_usage(request, output)
    return Usage(
        input_tokens=guess.input_tokens if input_tokens is None else input_tokens,
        output_tokens=guess.output_tokens if output_tokens is None else output_tokens,
        estimated=True,
    )


@dataclass(frozen=True)
class Prepared:
    """A request's headers, and the secrets to mask in anything that comes back."""

    headers: dict[str, str]
    secrets: tuple[str, ...]


class HTTPProvider:
    """What every HTTP provider holds: its name, base URL, key (by env-var name), extra and
    secret headers, the hosts its secrets may go to, and timeouts; the repr never shows a
    secret. Subclasses implement `stream` and call `prepare(url)` before sending.

    `headers_env` maps a header to (the NAME of its environment variable, its value when
    the caller already looked it up, else None: read from the environment at call time).
    `key_hosts` (see `model.secrets.host_allowed`) None: the host of `base_url`.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        headers_env: Mapping[str, tuple[str, str | None]] | None = None,
        key_hosts: Sequence[str] | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        requires_key: bool = True,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeouts = timeouts
        self.requires_key = requires_key
        self.key_hosts = tuple(key_hosts) if key_hosts is not None else (url_host(base_url),)
        self._api_key = api_key
        self._extra_headers = dict(headers or {})
        self._headers_env = dict(headers_env or {})

    def __repr__(self) -> str:
        # Hand-written so that no secret can show up in a log or a traceback.
        shown = url_server(self.base_url) if "@" in self.base_url else self.base_url
        return f"{type(self).__name__}(name={self.name!r}, base_url={shown!r})"

    def prepare(self, url: str) -> Prepared:
        """The headers of a request to `url`, or the error that stops it before it is sent:
        no key (AuthError), a secret for a host it may not go to, or a header value that
        cannot be sent (ConfigError)."""
        key = self._key()
        secret_headers = self._secret_headers()
        envs = [env for env, _ in secret_headers.values()]
        if key is not None:
            envs.insert(0, self.api_key_env or "the API key")
        refusal = key_refusal(self.name, url, self.key_hosts, envs)
        if refusal is not None:
            raise ConfigError(refusal)
        values = {header: value for header, (_, value) in secret_headers.items()}
        headers = {**self._request_headers(key), **values, **self._auth_headers(key)}
        check_headers(headers, self.name, {h: env for h, (env, _) in secret_headers.items()})
        # Configured header values are masked too (some put a token there); short ones such
        # as `X-Team: pm` are not, or masking them would garble the message.
        configured = [v for v in self._extra_headers.values() if len(v) >= 8]
        secrets = [*([key] if key else []), *values.values(), *configured, *url_secrets(url)]
        return Prepared(headers, tuple(secrets))

    def _key(self) -> str | None:
        """The key for this call (read now: it may have been set since), or AuthError."""
        key = resolve_key(self._api_key, self.api_key_env)
        if key is None and self.requires_key:
            raise missing_key_error(self.name, self.api_key_env)
        if key is not None and not all("!" <= char <= "~" for char in key):
            # httpx would refuse the header and quote it, key included, in its error
            where = f"The key in {self.api_key_env}" if self.api_key_env else "The API key"
            raise AuthError(
                f"{where} contains a space, a line break or a non-ASCII character: copy it "
                "again without them (check the end of its line in .env).",
                provider=self.name,
            )
        return key

    def _secret_headers(self) -> dict[str, tuple[str, str]]:
        """header -> (env-var name, value) of `headers_env`, read now; ConfigError if unset."""
        out = {}
        for header, (env, given) in self._headers_env.items():
            value = given or os.environ.get(env, "").strip()
            if not value:
                raise ConfigError(
                    f"{self.name}: the header {header} takes its value from the environment "
                    f"variable {env}, which is not set: set it (e.g. in .env) and try again."
                )
            out[header] = (env, value)
        return out

    async def list_models(self, timeouts: Timeouts | None = None) -> list[str]:
        """The model ids the server lists: one cheap authenticated GET, for a connection test."""
        url = self._models_url()
        prepared = self.prepare(url)
        payload = await get_json(
            url,
            headers=prepared.headers,
            timeouts=timeouts or self.timeouts,
            provider=self.name,
            secrets=prepared.secrets,
        )
        return model_ids(payload, provider=self.name)

    def _models_url(self) -> str:
        raise NotImplementedError

    def _request_headers(self, key: str | None) -> dict[str, str]:
        """This API's fixed headers plus the configured ones (auth headers come after)."""
        return dict(self._extra_headers)

    def _auth_headers(self, key: str | None) -> dict[str, str]:
        return {}


def model_ids(payload: object, *, provider: str) -> list[str]:
    """`data[*].id` of a models list (OpenAI, Azure and Anthropic share this shape)."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, list):
        raise ProtocolError(
            "the server answered, but not with a list of models. Check that the base URL "
            "points at the right API.",
            provider=provider,
        )
    return [str(m["id"]) for m in data if isinstance(m, Mapping) and m.get("id")]
