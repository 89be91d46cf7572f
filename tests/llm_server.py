"""A real HTTP server that speaks the OpenAI, Azure OpenAI and Anthropic streaming wire formats.

For tests and benchmarks: HTTP/1.1, chunked streams, keep-alive, on 127.0.0.1 in a
background thread. What each request gets is chosen by the `Scenario` registered for its
model (`server.set_scenario(model, Scenario(...))`); unknown models get the default one.
An OpenAI/Azure request with `"logprobs": true` gets OpenAI's per-token `logprobs` in each
content chunk (`Scenario.logprobs`, else `server_logprob(index)`).

`Scenario.faults` (a `FaultPlan`) injects a seeded fault into a share of requests, drawn per
(model, last user message, attempt); each `RecordedRequest.fault` says which one was
injected, `completed` lists the streams that were sent in full, and `fault_outcome` says
what a client following the retry policy must have recorded for a cell.

    with LLMServer() as server:
        OpenAIProvider("openai", server.openai_url, api_key="k")   # POST /v1/chat/completions
        AnthropicProvider("anthropic", server.url, api_key="k")    # POST /v1/messages
        AzureProvider("azure", server.url, api_version="2024-10-21", api_key="k")

`GET /v1/models` lists models in OpenAI's shape, or in Anthropic's when the request carries
`anthropic-version`; Azure's is `GET /openai/models?api-version=...`. Those requests follow
the scenario set for `MODELS_LIST` (auth, fail_statuses, faults), else the default one.

Structured output: `Scenario.accepts` is the richest `response_format` the server takes,
"json_schema" (all), "json_object" (as llama-cpp-python's server) or "none" (no JSON mode);
a request asking for more is refused as those servers refuse it (`format_refusal`: 500 as
llama-cpp-python, 400 as OpenAI's API, 422 as a FastAPI validation error).
`Scenario.echo_headers` puts every request header into an error's message, as careless
servers do, so that tests prove clients mask header values and credentials.

Standalone: `python -m tests.llm_server --port 8765 --token-delay 0.02`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from promptdeck.errors import ProviderError
from promptdeck.model.http import run_with_client
from promptdeck.model.types import ChatRequest, Chunk, Provider

# Every fault a FaultPlan can inject -> (the error kind a client must record, or None for a
# good answer; whether the client may retry it). "refused" is the server accepting the
# connection, reading the request and hanging up before sending a byte: a real ECONNREFUSED
# is a property of a port, not of one request, so tests point a provider at a closed port
# for that. "timeout" sends the headers and the stream's preamble (no text) and then nothing
# for `FaultPlan.stall` seconds, longer than the client's read timeout, before hanging up.
# "drop" and "malformed" strike after the first text chunk, so a client must keep the
# partial text and not retry; "trickle" is a slow answer that still completes.
FAULTS: dict[str, tuple[str | None, bool]] = {
    "429": ("rate_limit", True),  # with `retry-after: FaultPlan.retry_after`
    "500": ("http_status", True),
    "502": ("http_status", True),
    "503": ("http_status", True),
    "529": ("http_status", True),  # Anthropic's "overloaded"
    "401": ("auth", False),
    "403": ("auth", False),
    "quota": ("quota", False),  # OpenAI: 429 insufficient_quota; Anthropic: 400 credit balance
    "refused": ("connection", True),
    "timeout": ("timeout", True),
    "drop": ("connection", False),
    "malformed": ("protocol", False),
    "trickle": (None, False),
}


@dataclass(frozen=True)
class FaultPlan:
    """Seeded per-request faults. The `attempt`-th request (0 = first) for one (model, last
    user message) gets a fault with probability `rate`, its kind drawn by `weights`. A draw
    is a hash of (seed, model, message, attempt), so an eval meets the same faults whatever
    the concurrency or the order requests arrive in."""

    rate: float = 0.2
    seed: int = 0
    weights: tuple[tuple[str, float], ...] = tuple((kind, 1.0) for kind in FAULTS)
    retry_after: float = 0.05  # seconds, sent with every injected 429
    stall: float = 1.0  # "timeout": seconds of silence; keep it above the read timeout
    trickle_delay: float = 0.02  # "trickle": seconds before each text chunk

    def __post_init__(self) -> None:
        unknown = {kind for kind, _ in self.weights} - set(FAULTS)
        if unknown or not self.weights or min(w for _, w in self.weights) < 0:
            raise ValueError(f"weights must be >= 0 over {sorted(FAULTS)}; unknown: {unknown}")

    def choose(self, model: str, message: str, attempt: int) -> str | None:
        """The fault for this request, or None for a normal answer."""
        key = f"{self.seed}\0{model}\0{message}\0{attempt}".encode()
        digest = hashlib.sha256(key).digest()
        if int.from_bytes(digest[:8]) / 2**64 >= self.rate:
            return None
        pick = int.from_bytes(digest[8:16]) / 2**64 * sum(w for _, w in self.weights)
        for kind, weight in self.weights:
            pick -= weight
            if pick < 0:
                return kind
        return self.weights[-1][0]


def fault_outcome(faults: Sequence[str | None], max_retries: int) -> tuple[str | None, int]:
    """What a client following the retry policy records for a cell whose requests met
    `faults` in order: (its error kind, None for an answer; the requests it should make).
    ("unfinished", n) when the client stopped although a retry was still due."""
    for attempt, fault in enumerate(faults):
        kind, retryable = FAULTS[fault] if fault else (None, False)
        if kind is None or not retryable or attempt >= max_retries:
            return kind, attempt + 1
    return "unfinished", len(faults)


@dataclass
class Scenario:
    """How the server answers one model. Delays are seconds."""

    tokens: list[str] | None = None  # None: "Echo:" + the last user message, a word per chunk
    token_delay: float = 0.0  # between two text chunks
    first_token_delay: float = 0.0  # after the headers, before the first text chunk
    fail_statuses: list[int] = field(default_factory=list)  # the first N requests get these
    retry_after: float | None = None  # `retry-after` header on a 429
    error_body: dict[str, Any] | None = None  # body of a failed request; None: the API's shape
    drop_after: int | None = None  # send N text chunks, then close the socket abruptly
    malformed_after: int | None = None  # send N text chunks, then one that is not JSON
    stream_error: dict[str, Any] | None = None  # an in-stream error object after the tokens
    include_usage: bool = True  # False: never send usage, whatever the client asked
    require_key: str | None = None  # 401 unless the request carries exactly this key
    quirks: bool = False  # add odd-but-legal chunks: comments, no delta, unknown fields
    # Token log-probs sent when a request asks (`"logprobs": true`), one per text chunk,
    # repeated if too few; None: `server_logprob(index)`. OpenAI and Azure (Anthropic has none).
    logprobs: list[float] | None = None
    stall: float | None = None  # after the preamble: silence this long, then hang up
    faults: FaultPlan | None = None  # seeded per-request faults (after fail_statuses)
    accepts: str = "json_schema"  # the richest response_format served: FORMAT_LEVELS
    format_refusal: int = 500  # the status of a refused response_format: 400, 422 or 500
    echo_headers: bool = False  # an error's message quotes the request's headers


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any
    model: str
    arrived: float  # time.monotonic()
    fault: str | None = None  # what Scenario.faults injected into this request

    @property
    def message(self) -> str:
        """The last user message: with the model, it names an eval cell."""
        return last_user_message(self.body)


FORMAT_LEVELS = ("json_schema", "json_object", "none")  # richest first


def asked_format(body: Any) -> str:
    """The response_format a request asks for: "json_schema", "json_object" or "none"."""
    fmt = body.get("response_format") if isinstance(body, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    return kind if kind in ("json_schema", "json_object") else "none"


def format_refusal_body(status: int, asked: str) -> dict[str, Any]:
    """What a server that does not take `asked` answers, byte for byte in shape."""
    if status == 500:  # llama-cpp-python 0.3.x, as seen on the wire
        return {
            "error": {
                "message": "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
                "'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", "
                f"'input': '{asked}'}}",
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        }
    if status == 422:  # FastAPI's own validation error
        loc = ["body", "response_format", "type"]
        detail = {"type": "literal_error", "loc": loc, "msg": "Input should be 'text'"}
        return {"detail": [detail | {"input": asked}]}
    return {  # OpenAI's API shape
        "error": {
            "message": f"Invalid parameter: 'response_format' of type '{asked}' is not "
            "supported with this model.",
            "type": "invalid_request_error",
            "param": "response_format",
            "code": None,
        }
    }


MODELS_LIST = "(models list)"  # the scenario key of GET .../models requests
LISTED_MODELS = ("echo-small", "echo-large")  # listed besides every model with a scenario

_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")


class LLMServer:
    """The server and what it saw: `requests`, `request_count(model)`, `max_in_flight`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.default_scenario = Scenario()
        self._address = (host, port)
        self._lock = threading.Lock()
        self._scenarios: dict[str, Scenario] = {}
        self._attempts: Counter[str] = Counter()  # per model, since its scenario was set
        self._cell_attempts: Counter[tuple[str, str]] = Counter()  # per (model, message)
        self._counts: Counter[str] = Counter()
        self._requests: list[RecordedRequest] = []
        self._completed: list[RecordedRequest] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start the server first"
        return int(self._httpd.server_address[1])

    def start(self) -> LLMServer:
        self.stopping.clear()
        self._httpd = _HTTPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None or self._thread is None:
            return
        self.stopping.set()  # wakes handlers that are sleeping between chunks
        self._httpd.shutdown()
        with self._lock:
            for conn in self._connections:
                _shutdown(conn)  # unblocks handlers waiting on a kept-alive connection
        self._httpd.server_close()  # joins the handler threads
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def set_scenario(self, model: str, scenario: Scenario) -> None:
        with self._lock:
            self._scenarios[model] = scenario
            self._attempts[model] = 0
            for cell in [cell for cell in self._cell_attempts if cell[0] == model]:
                del self._cell_attempts[cell]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def completed(self) -> list[RecordedRequest]:
        """The requests whose stream was sent in full, up to its terminating chunk."""
        with self._lock:
            return list(self._completed)

    def request_count(self, model: str) -> int:
        with self._lock:
            return self._counts[model]

    def listed_models(self) -> list[str]:
        """What GET .../models lists: a fixed pair plus every model with a scenario."""
        with self._lock:
            named = [m for m in self._scenarios if m != MODELS_LIST]
        return [*LISTED_MODELS, *sorted(set(named) - set(LISTED_MODELS))]

    def reset(self) -> None:
        """Forget scenarios, recorded requests and counters."""
        with self._lock:
            self._scenarios.clear()
            self._attempts.clear()
            self._cell_attempts.clear()
            self._counts.clear()
            self._requests.clear()
            self._completed.clear()
            self.max_in_flight = 0

    def begin(self, record: RecordedRequest) -> tuple[Scenario, int, RecordedRequest]:
        """Record a request; return its scenario, its attempt number (0 = first) and the
        record with the fault the scenario's FaultPlan chose for it."""
        with self._lock:
            scenario = self._scenarios.get(record.model, self.default_scenario)
            cell = (record.model, record.message)
            if scenario.faults is not None:
                fault = scenario.faults.choose(*cell, self._cell_attempts[cell])
                record = replace(record, fault=fault)
            self._cell_attempts[cell] += 1
            self._requests.append(record)
            self._counts[record.model] += 1
            attempt = self._attempts[record.model]
            self._attempts[record.model] += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return scenario, attempt, record

    def complete(self, record: RecordedRequest) -> None:
        with self._lock:
            self._completed.append(record)

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if not add:
                self._connections.discard(conn)
            elif self.stopping.is_set():
                _shutdown(conn)  # accepted while stopping: do not let it block the join
            else:
                self._connections.add(conn)


def _shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the peer may have closed it already
        conn.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close() joins them: nothing runs after stop()
    request_queue_size = 128  # the default 5 drops bursts of connections (slow client retries)

    def __init__(self, address: tuple[str, int], llm: LLMServer) -> None:
        self.llm = llm
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Tests hang up mid-stream on purpose: only a real bug deserves a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Without it Nagle's algorithm would batch a slow trickle of small chunks.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.llm.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.llm.track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._send_json(400, {"error": {"message": "the body is not a JSON object"}})
        route = _route(parts.path, query, body)
        if route is None:
            return self._send_json(404, {"error": {"message": f"no route for {self.path}"}})
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = RecordedRequest(parts.path, query, headers, body, route[1], time.monotonic())
        scenario, attempt, record = self.server.llm.begin(record)
        try:
            if self._answer(route[0], record, scenario, attempt):
                self.server.llm.complete(record)
        except OSError:
            self.close_connection = True  # the client hung up mid-answer
        finally:
            self.server.llm.end()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        kind = _models_route(parts.path, query, self.headers.get("anthropic-version"))
        if kind is None:
            return self._send_json(404, {"error": {"message": f"no route for {self.path}"}})
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = RecordedRequest(parts.path, query, headers, None, MODELS_LIST, time.monotonic())
        scenario, attempt, record = self.server.llm.begin(record)
        try:
            if self._answer_models(kind, record, scenario, attempt):
                self.server.llm.complete(record)
        except OSError:
            self.close_connection = True
        finally:
            self.server.llm.end()

    def _answer_models(
        self, kind: str, record: RecordedRequest, scenario: Scenario, attempt: int
    ) -> bool:
        """The models list in the API's own shape; faults as for a chat request."""
        scenario_or_none = self._refuse(kind, record, scenario, attempt)
        if scenario_or_none is None:
            return False
        scenario = scenario_or_none
        if scenario.stall is not None:  # silence, then hang up, as in a stream
            self.server.llm.stopping.wait(scenario.stall)
            self._drop()
            return False
        delay = scenario.first_token_delay
        if scenario.drop_after is not None or (delay and self.server.llm.stopping.wait(delay)):
            self._drop()
            return False
        models = self.server.llm.listed_models()
        payload = models_list(kind, models)
        if scenario.malformed_after is not None:
            data = json.dumps(payload).encode()[:20]  # cut mid-object
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return False
        self._send_json(200, payload)
        return True

    def _refuse(
        self, kind: str, record: RecordedRequest, scenario: Scenario, attempt: int
    ) -> Scenario | None:
        """Send the error a request gets (wrong key, fail_statuses, a fault before the answer)
        and return None; else the scenario to answer with (a fault may have changed it)."""
        echo = f" (request headers: {self._credentials()})" if scenario.echo_headers else ""
        if scenario.require_key is not None:
            given = self.headers.get(_KEY_HEADER[kind]) or ""
            if kind == "openai":
                given = given.removeprefix("Bearer ")
            if given != scenario.require_key:
                # Echoes the key, as careless servers do, so that tests prove clients redact it.
                self._send_json(401, error_body(kind, 401, f"Incorrect API key: {given}{echo}"))
                return None
        if attempt < len(scenario.fail_statuses):
            status = scenario.fail_statuses[attempt]
            extra = {}
            if status == 429 and scenario.retry_after is not None:
                extra["retry-after"] = f"{scenario.retry_after:g}"
            message = (_DEFAULT_MESSAGES.get(status) or f"simulated HTTP {status}") + echo
            payload = scenario.error_body or error_body(kind, status, message)
            self._send_json(status, payload, extra)
            return None
        asked = asked_format(record.body)
        if FORMAT_LEVELS.index(asked) < FORMAT_LEVELS.index(scenario.accepts):
            self._send_json(
                scenario.format_refusal, format_refusal_body(scenario.format_refusal, asked)
            )
            return None
        if record.fault is not None and scenario.faults is not None:
            return self._inject(kind, record.fault, scenario, scenario.faults)
        return scenario

    def _credentials(self) -> dict[str, str]:
        """The request's auth and custom (x-...) headers, names lower-cased, auth first."""
        names = sorted(
            (
                n.lower()
                for n in self.headers
                if n.lower() in _AUTH_HEADERS or n.lower()[:2] == "x-"
            ),
            key=lambda n: (n not in _AUTH_HEADERS, n),
        )
        return {n: self.headers.get(n) or "" for n in names}

    def _answer(self, kind: str, record: RecordedRequest, scenario: Scenario, attempt: int) -> bool:
        """Answer one request; True if a whole stream was sent."""
        model, body = record.model, record.body
        scenario_or_none = self._refuse(kind, record, scenario, attempt)
        if scenario_or_none is None:
            return False
        scenario = scenario_or_none
        prompt = count_words(body)
        tokens = reply_tokens(body, scenario.tokens)
        wire: _OpenAIWire | _AnthropicWire
        if kind == "anthropic":
            wire = _AnthropicWire(model, prompt, scenario.include_usage, scenario.quirks)
        else:
            usage = scenario.include_usage and _wants_usage(body)
            logprobs = None
            if body.get("logprobs") is True:
                logprobs = scenario.logprobs or [server_logprob(i) for i in range(len(tokens))]
            wire = _OpenAIWire(
                model, prompt, usage, scenario.quirks, azure=kind == "azure", logprobs=logprobs
            )
        return self._stream(wire, scenario, tokens)

    def _inject(
        self, kind: str, fault: str, scenario: Scenario, plan: FaultPlan
    ) -> Scenario | None:
        """Answer a fault that strikes before the stream (None), or the scenario that streams it."""
        if fault.isdigit():
            status = int(fault)
            extra = {"retry-after": f"{plan.retry_after:g}"} if status == 429 else {}
            self._send_json(status, error_body(kind, status, _DEFAULT_MESSAGES.get(status)), extra)
        elif fault == "quota":
            if kind == "anthropic":
                self._send_json(400, ANTHROPIC_CREDIT_ERROR)
            else:
                self._send_json(429, QUOTA_ERROR)
        elif fault == "refused":
            self._drop()
        elif fault == "timeout":
            return replace(scenario, stall=plan.stall)
        elif fault == "drop":
            return replace(scenario, drop_after=1)
        elif fault == "malformed":
            return replace(scenario, malformed_after=1)
        elif fault == "trickle":
            delay = plan.trickle_delay
            return replace(scenario, first_token_delay=delay, token_delay=delay)
        return None

    def _stream(
        self, wire: _OpenAIWire | _AnthropicWire, scenario: Scenario, tokens: list[str]
    ) -> bool:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._chunk(wire.start())
        if scenario.stall is not None:
            self.server.llm.stopping.wait(scenario.stall)
            self._drop()
            return False
        for index, token in enumerate([*tokens, None]):
            if index == scenario.drop_after:
                self._drop()
                return False
            if index == scenario.malformed_after:
                self._end(wire.malformed())
                return False
            if token is None:
                break
            delay = scenario.first_token_delay if index == 0 else scenario.token_delay
            if delay and self.server.llm.stopping.wait(delay):
                self._drop()
                return False
            self._chunk(wire.token(token, index))
        if scenario.stream_error is not None:
            self._end(wire.error(scenario.stream_error))
            return False
        self._end(wire.finish(len(tokens)))
        return True

    def _chunk(self, data: bytes) -> None:
        if data:  # an empty chunk would end the body
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end(self, data: bytes) -> None:
        self._chunk(data)
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Hang up with no terminating chunk, as a crashed server or a cut network does."""
        self.close_connection = True
        _shutdown(self.connection)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


_KEY_HEADER = {"openai": "authorization", "azure": "api-key", "anthropic": "x-api-key"}
_AUTH_HEADERS = frozenset(_KEY_HEADER.values())


def _route(path: str, query: dict[str, str], body: dict[str, Any]) -> tuple[str, str] | None:
    """(API kind, model) for a request path, or None for 404."""
    if path == "/v1/chat/completions":
        return "openai", str(body.get("model", ""))
    if path == "/v1/messages":
        return "anthropic", str(body.get("model", ""))
    match = _AZURE_PATH.match(path)
    if match and "api-version" in query:
        return "azure", unquote(match.group(1))
    return None


def _models_route(path: str, query: dict[str, str], anthropic_version: str | None) -> str | None:
    """The API kind of a models-list request, or None for 404."""
    if path == "/v1/models":
        return "anthropic" if anthropic_version else "openai"
    if path == "/openai/models" and "api-version" in query:
        return "azure"
    return None


def models_list(kind: str, models: Sequence[str]) -> dict[str, Any]:
    """A models list as each API sends it (OpenAI and Azure: `object: list`; Anthropic: paged)."""
    if kind == "anthropic":
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-02-19T00:00:00Z"}
            for m in models
        ]
        first, last = (models[0], models[-1]) if models else (None, None)
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}
    if kind == "azure":
        capabilities = {"chat_completion": True, "completion": False, "embeddings": False}
        data = [
            {"id": m, "object": "model", "status": "succeeded", "created_at": 1700000000}
            | {"capabilities": capabilities, "lifecycle_status": "generally-available"}
            for m in models
        ]
        return {"data": data, "object": "list"}
    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "llm-server"}
        for m in models
    ]
    return {"object": "list", "data": data}


def server_logprob(index: int) -> float:
    """The log-prob the server gives its `index`-th token by default: 0, -0.1, -0.2, 0, ..."""
    return -0.1 * (index % 3) or 0.0  # `or`: 0.0 rather than -0.0


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def last_user_message(body: Any) -> str:
    messages = body.get("messages") if isinstance(body, dict) else None
    users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def count_words(body: dict[str, Any]) -> int:
    """The server's "input tokens": words in the system field and every message."""
    texts = [str(body.get("system", ""))]
    texts += [str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict)]
    return sum(len(text.split()) for text in texts)


def reply_tokens(body: dict[str, Any], tokens: list[str] | None) -> list[str]:
    """The scenario's tokens, else "Echo:" + the last user message's words; capped by max_tokens."""
    if tokens is None:
        tokens = ["Echo:", *(" " + word for word in last_user_message(body).split())]
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    return tokens[:limit] if isinstance(limit, int) else list(tokens)


_DEFAULT_MESSAGES = {
    429: "Rate limit reached for requests. Please try again in 1s.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}
_OPENAI_ERROR_TYPES = {
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_ANTHROPIC_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

ANTHROPIC_CREDIT_ERROR = {  # Anthropic's answer (HTTP 400) when the credit balance is spent
    "type": "error",
    "error": {
        "type": "invalid_request_error",
        "message": "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    },
}
QUOTA_ERROR = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def error_body(kind: str, status: int, message: str | None = None) -> dict[str, Any]:
    """The error body the real API sends for this status."""
    message = message or f"simulated HTTP {status}"
    if kind == "anthropic":
        error_type = _ANTHROPIC_ERROR_TYPES.get(status, "invalid_request_error")
        return {"type": "error", "error": {"type": error_type, "message": message}}
    error_type, code = _OPENAI_ERROR_TYPES.get(status, ("invalid_request_error", None))
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _event(payload: Any, name: str | None = None, newline: str = "\n") -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    head = f"event: {name}{newline}" if name else ""
    return f"{head}data: {data}{newline}{newline}".encode()


@dataclass(frozen=True)
class _OpenAIWire:
    """The bytes of an OpenAI (or Azure) stream; each method returns whole events."""

    model: str
    prompt_tokens: int
    usage: bool
    quirks: bool
    azure: bool
    logprobs: list[float] | None = None  # None: not asked for

    def _chunk(self, choices: list[Any], **extra: Any) -> dict[str, Any]:
        chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000}
        chunk |= {"model": self.model, "system_fingerprint": "fp_test", "choices": choices}
        if self.usage:
            chunk["usage"] = None  # OpenAI sends usage: null until the last chunk
        return chunk | extra

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def start(self) -> bytes:
        out = b""
        if self.azure:  # Azure's content-filter preamble
            filters = [{"prompt_index": 0, "content_filter_results": {}}]
            preamble = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
            out += _event(preamble | {"prompt_filter_results": filters})
        out += _event(
            self._chunk([self._choice({"role": "assistant", "content": "", "refusal": None})])
        )
        if self.quirks:
            out += b": keep-alive\n\n"
            out += _event(self._chunk([{"index": 0, "finish_reason": None}], x_vendor={"a": 1}))
            out += _event(self._chunk([self._choice({})]))
            out += _event({"choices": [], "usage": None, "note": "usage-only chunk without usage"})
        return out

    def token(self, text: str, index: int) -> bytes:
        newline = "\r\n" if self.quirks else "\n"
        choice = self._choice({"content": text})
        if self.logprobs is not None:
            entry = {"token": text, "logprob": self.logprobs[index % len(self.logprobs)]}
            entry |= {"bytes": list(text.encode()), "top_logprobs": []}
            choice["logprobs"] = {"content": [entry], "refusal": None}
        return _event(self._chunk([choice]), newline=newline)

    def finish(self, output_tokens: int) -> bytes:
        out = _event(self._chunk([self._choice({}, "stop")]))
        if self.usage:
            usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": output_tokens}
            usage["total_tokens"] = self.prompt_tokens + output_tokens
            out += _event(self._chunk([], usage=usage))
        return out + b"data: [DONE]\n\n"

    def error(self, error: dict[str, Any]) -> bytes:
        return _event({"error": error})

    def malformed(self) -> bytes:
        return b'data: {"choices": [{"index": 0, "delta": {"content": "trunc\n\n'


@dataclass(frozen=True)
class _AnthropicWire:
    """The bytes of an Anthropic Messages stream, as the API sends them."""

    model: str
    prompt_tokens: int
    usage: bool
    quirks: bool

    def start(self) -> bytes:
        usage = {"input_tokens": self.prompt_tokens, "output_tokens": 1} if self.usage else {}
        message: dict[str, Any] = {"id": "msg_test", "type": "message", "role": "assistant"}
        message["content"] = []
        message |= {"model": self.model, "stop_reason": None, "stop_sequence": None, "usage": usage}
        out = _event({"type": "message_start", "message": message}, "message_start")
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        out += _event(block, "content_block_start")
        if self.quirks:
            out += b"event: future_event\ndata: not json at all\n\n"
        return out + b'event: ping\ndata: {"type": "ping"}\n\n'

    def token(self, text: str, index: int) -> bytes:
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        }
        return _event(delta, "content_block_delta")

    def finish(self, output_tokens: int) -> bytes:
        out = _event({"type": "content_block_stop", "index": 0}, "content_block_stop")
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        if self.usage:
            delta["usage"] = {"output_tokens": output_tokens}
        out += _event(delta, "message_delta")
        return out + _event({"type": "message_stop"}, "message_stop")

    def error(self, error: dict[str, Any]) -> bytes:
        return _event({"type": "error", "error": error}, "error")

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"ty\n\n'


@dataclass
class Collected:
    """What a consumer saw of one stream: its chunks (with arrival times) and how it ended."""

    chunks: list[Chunk]
    times: list[float]  # time.monotonic() per chunk
    error: ProviderError | None

    @property
    def text(self) -> str:
        return "".join(c for c in self.chunks if isinstance(c, str))


def collect(provider: Provider, request: ChatRequest) -> Collected:
    """Run one stream to its end in a fresh event loop, keeping a ProviderError as a value."""
    result = Collected([], [], None)

    async def consume() -> None:
        try:
            async for chunk in provider.stream(request):
                result.chunks.append(chunk)
                result.times.append(time.monotonic())
        except ProviderError as exc:
            result.error = exc

    run_with_client(consume())
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake LLM server for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--require-key", default=None)
    args = parser.parse_args(argv)
    server = LLMServer(args.host, args.port)
    server.default_scenario = Scenario(
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        require_key=args.require_key,
    )
    with server:
        print(f"serving on {server.url}  (OpenAI base URL: {server.openai_url})", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
