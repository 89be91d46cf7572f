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

Answers, when `Scenario.tokens` is None: a request asking for a schema (`response_format`
json_schema, or json_object with a `schema`; Anthropic's `output_config.format`) gets a JSON
document valid against it (`schema_value`: strings are words of the last user message), in
several text chunks, without the field `Scenario.omit_field` names for its message; right
after a tool result, "Echo:" + that result's words; else "Echo:" + the last user message.

Tools: a request that declares `tools` (tool_choice not "none") whose conversation has fewer
tool-result rounds than `Scenario.tool_rounds` gets tool calls instead of text, streamed as
each API does (OpenAI: id and name first, then the arguments in 3+ pieces, finish_reason
"tool_calls"; Anthropic: a `tool_use` block, `input_json_delta` pieces, stop_reason
"tool_use"): `Scenario.tool_calls`, else the first declared tool (or the one tool_choice
names) with arguments built from its schema's required properties. `Scenario.thinking` is
streamed before any answer: OpenAI's `delta.reasoning_content` (or `Scenario.thinking_field`,
e.g. OpenRouter's "reasoning") counted in `completion_tokens_details.reasoning_tokens`;
Anthropic's thinking block, closed by a `signature_delta` (`thinking_signature`).

Requests are checked as the real APIs check them, with their 400 error shapes: every tool
call answered by a tool result right after it (and no result without its call); on
Anthropic with `thinking` enabled, a tool-calling assistant turn sent back starts with its
thinking block, whose signature must be the one the server gave; an image (OpenAI
`image_url` part, Anthropic `image` block) only for a model with `Scenario.accepts_images`.
`last_user_message` and `count_words` read the text of content arrays; a user turn of
Anthropic tool results is not a user message, so a cell keeps its name across tool rounds.

Standalone: `python -m tests.llm_server --port 8765 --token-delay 0.02`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
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
from typing import Any, Literal
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
    # Chunks of the answer count its text, thinking and tool-call pieces alike.
    drop_after: int | None = None  # send N chunks, then close the socket abruptly
    malformed_after: int | None = None  # send N chunks, then one that is not JSON
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
    # Tool calls (name, arguments JSON text) made while the conversation has fewer tool-result
    # rounds than `tool_rounds`; None: the first declared tool, arguments from its schema.
    tool_calls: list[tuple[str, str]] | None = None
    tool_rounds: int = 1  # a large number: the model never stops calling tools
    thinking: list[str] | None = None  # thinking pieces streamed before every answer
    thinking_field: str = "reasoning_content"  # OpenAI/Azure delta field; OpenRouter: "reasoning"
    # A substring of the last user message -> a field the JSON answer leaves out.
    omit_field: dict[str, str] = field(default_factory=dict)
    accepts_images: bool = True  # False: an image gets the API's 400 for a text-only model


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
        if record.body is not None:
            invalid = conversation_error(kind, record.body)
            if invalid is None and not scenario.accepts_images:
                invalid = image_refusal(kind, record.body, record.model)
            if invalid is not None:
                self._send_json(400, invalid)
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
        calls = tool_calls_for(kind, body, scenario)
        tokens = [] if calls else reply_tokens(body, scenario.tokens, scenario.omit_field)
        thinking = list(scenario.thinking or [])
        steps = [_Step("thinking", text) for text in thinking]
        for index, (name, arguments) in enumerate(calls):
            steps.append(_Step("call", name, index, call_id(kind, body, index)))
            steps += [_Step("arguments", piece, index) for piece in split_pieces(arguments)]
        steps += [_Step("text", token, index) for index, token in enumerate(tokens)]
        wire: _OpenAIWire | _AnthropicWire
        if kind == "anthropic":
            wire = _AnthropicWire(
                model,
                prompt,
                scenario.include_usage,
                scenario.quirks,
                signature=thinking_signature("".join(thinking)),
                calls=bool(calls),
                opens_text=not thinking and not calls,
            )
        else:
            usage = scenario.include_usage and _wants_usage(body)
            logprobs = None
            if body.get("logprobs") is True:
                logprobs = scenario.logprobs or [server_logprob(i) for i in range(len(tokens))]
            wire = _OpenAIWire(
                model,
                prompt,
                usage,
                scenario.quirks,
                azure=kind == "azure",
                logprobs=logprobs,
                thinking_field=scenario.thinking_field,
                reasoning_tokens=len(thinking),
                calls=bool(calls),
            )
        return self._stream(wire, scenario, steps)

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
        self, wire: _OpenAIWire | _AnthropicWire, scenario: Scenario, steps: list[_Step]
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
        for index, step in enumerate([*steps, None]):
            if index == scenario.drop_after:
                self._drop()
                return False
            if index == scenario.malformed_after:
                self._end(wire.malformed())
                return False
            if step is None:
                break
            delay = scenario.first_token_delay if index == 0 else scenario.token_delay
            if delay and self.server.llm.stopping.wait(delay):
                self._drop()
                return False
            self._chunk(wire.step(step))
        if scenario.stream_error is not None:
            self._end(wire.error(scenario.stream_error))
            return False
        self._end(wire.finish(len(steps)))
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
    data: list[dict[str, Any]]
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


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a content array
    (OpenAI's `{"type": "text"}` parts, Anthropic's text blocks and tool results' text)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "tool_result":
            texts.append(_text_of(part.get("content")))
    return "\n".join(texts)


def _messages(body: Any) -> list[dict[str, Any]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    return [m for m in messages or [] if isinstance(m, dict)]


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The content blocks of one type (Anthropic's tool_use, tool_result, thinking, ...)."""
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _is_tool_result(message: dict[str, Any]) -> bool:
    """An answer to tool calls: OpenAI's `role: tool`, Anthropic's user turn of tool results."""
    if message.get("role") == "tool":
        return True
    return message.get("role") == "user" and bool(_blocks(message, "tool_result"))


def last_user_message(body: Any) -> str:
    """The text of the last user message; a turn of tool results is not one."""
    users = [m for m in _messages(body) if m.get("role") == "user" and not _is_tool_result(m)]
    return _text_of(users[-1].get("content")) if users else ""


def count_words(body: dict[str, Any]) -> int:
    """The server's "input tokens": words in the system field and every message's text."""
    texts = [_text_of(body.get("system"))]
    texts += [_text_of(m.get("content")) for m in _messages(body)]
    return sum(len(text.split()) for text in texts)


def tool_rounds(body: Any) -> int:
    """How many times the conversation answered tool calls (runs of tool results)."""
    rounds, previous = 0, False
    for message in _messages(body):
        current = _is_tool_result(message)
        rounds += current and not previous
        previous = current
    return rounds


def last_tool_result(body: Any) -> str | None:
    """The text of the last tool result when the conversation ends with tool results."""
    messages = _messages(body)
    if not messages or not _is_tool_result(messages[-1]):
        return None
    last = messages[-1]
    if last.get("role") == "tool":
        return _text_of(last.get("content"))
    return _text_of(_blocks(last, "tool_result")[-1].get("content"))


def declared_tools(kind: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, parameters schema) of each tool the request declares, in either API's shape."""
    out = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        spec = tool if kind == "anthropic" else tool.get("function") or {}
        schema = spec.get("input_schema" if kind == "anthropic" else "parameters")
        out.append((str(spec.get("name", "")), schema if isinstance(schema, dict) else {}))
    return out


def tool_calls_for(kind: str, body: dict[str, Any], scenario: Scenario) -> list[tuple[str, str]]:
    """The calls this answer makes: none without tools, with tool_choice "none", or once the
    conversation has answered `scenario.tool_rounds` rounds of calls."""
    tools = declared_tools(kind, body)
    choice = body.get("tool_choice")
    if not tools or choice in ("none", {"type": "none"}):
        return []
    if tool_rounds(body) >= scenario.tool_rounds:
        return []
    if scenario.tool_calls is not None:
        return list(scenario.tool_calls)
    name, schema = tools[0]
    if isinstance(choice, dict):  # a named tool: OpenAI's function, Anthropic's tool
        function = choice.get("function")
        named = function.get("name") if isinstance(function, dict) else choice.get("name")
        name, schema = next(((n, s) for n, s in tools if n == named), (name, schema))
    words = re.findall(r"\w+", last_user_message(body))
    arguments = schema_value(schema, words, all_properties=False)
    return [(name, json.dumps(arguments))]


def call_id(kind: str, body: dict[str, Any], index: int) -> str:
    """A tool call's id, as each API spells them; unique per conversation turn and call."""
    seed = f"{body.get('model')}\0{last_user_message(body)}\0{len(_messages(body))}\0{index}"
    digest = hashlib.sha256(seed.encode()).hexdigest()[:24]
    return f"toolu_{digest}" if kind == "anthropic" else f"call_{digest}"


def thinking_signature(thinking: str) -> str:
    """The signature the server gives a thinking block (and checks when it comes back)."""
    return "sig_" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def split_pieces(text: str, size: int = 16) -> list[str]:
    """`text` in pieces of about `size` characters, at least 3 when it has 3 characters."""
    count = min(len(text), max(3, -(-len(text) // size)))
    if count <= 1:
        return [text]
    bounds = [round(i * len(text) / count) for i in range(count + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def asked_schema(body: Any) -> dict[str, Any] | None:
    """The JSON schema a request wants its answer to follow: OpenAI's response_format
    json_schema (or json_object with a `schema`), Anthropic's `output_config.format`."""
    if not isinstance(body, dict):
        return None
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        spec = fmt.get("json_schema")
        if fmt.get("type") == "json_schema" and isinstance(spec, dict):
            schema = spec.get("schema")
        else:
            schema = fmt.get("schema") if fmt.get("type") == "json_object" else None
        return schema if isinstance(schema, dict) else None
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def schema_value(
    schema: dict[str, Any],
    words: Sequence[str],
    *,
    all_properties: bool = True,
    omit: frozenset[str] = frozenset(),
) -> Any:
    """A value valid against `schema`: strings are `words` in turn, numbers 1 (within their
    bounds), booleans true, enums their first value, arrays of one item (or minItems).
    Objects get their required properties (every property when `all_properties`), except
    the names in `omit`, wherever they occur. `$ref`s to `#/$defs` or `#/definitions` are
    followed."""
    counter = itertools.count()

    def word() -> str:
        return words[next(counter) % len(words)] if words else "word"

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
            target: Any = schema
            for key in node["$ref"][2:].split("/"):
                target = target.get(key, {}) if isinstance(target, dict) else {}
            node = target if isinstance(target, dict) else {}
        return node

    def value(node: Any) -> Any:
        if not isinstance(node, dict):
            return word()
        node = resolve(node)
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return node["enum"][0]
        for key in ("anyOf", "oneOf", "allOf"):
            options = [o for o in node.get(key) or [] if resolve(o).get("type") != "null"]
            if options:
                return value(options[0])
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in node else "array" if "items" in node else "string"
        if kind == "object":
            properties = node.get("properties") or {}
            required = [n for n in node.get("required") or [] if isinstance(n, str)]
            names = list(properties) if all_properties else []
            names += [n for n in required if n not in names]
            return {n: value(properties.get(n, {})) for n in names if n not in omit}
        if kind == "array":
            return [value(node.get("items", {})) for _ in range(max(1, node.get("minItems", 1)))]
        if kind in ("integer", "number"):
            return _number(node, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        text = _formatted(node.get("format"), word())
        shortest = node.get("minLength", 0)
        if len(text) < shortest:
            text = (text * shortest)[:shortest]
        return text[: node["maxLength"]] if "maxLength" in node else text

    return value(schema)


def _number(node: dict[str, Any], *, integer: bool) -> int | float:
    """1, or the nearest number its bounds allow."""
    number: float = 1
    if isinstance(node.get("minimum"), int | float):
        number = max(number, node["minimum"])
    if isinstance(node.get("exclusiveMinimum"), int | float):
        number = max(number, node["exclusiveMinimum"] + 1)
    if isinstance(node.get("maximum"), int | float):
        number = min(number, node["maximum"])
    if isinstance(node.get("exclusiveMaximum"), int | float):
        number = min(number, node["exclusiveMaximum"] - (1 if integer else 0.5))
    return math.ceil(number) if integer else number


def _formatted(fmt: Any, word: str) -> str:
    """A string in a common `format`, built around `word`."""
    examples = {
        "date": "2025-01-31",
        "date-time": "2025-01-31T12:00:00Z",
        "time": "12:00:00Z",
        "email": f"{word}@example.com",
        "uri": f"https://example.com/{word}",
        "uuid": "123e4567-e89b-42d3-a456-426614174000",
    }
    return examples.get(fmt, word) if isinstance(fmt, str) else word


def reply_tokens(
    body: dict[str, Any], tokens: list[str] | None, omit_field: dict[str, str] | None = None
) -> list[str]:
    """The scenario's tokens, else the default answer (the module's docstring says which):
    a JSON document for a schema, the echo of the last tool result right after one, else
    "Echo:" + the last user message's words. Capped by max_tokens."""
    if tokens is None:
        message = last_user_message(body)
        schema = asked_schema(body)
        result = last_tool_result(body)
        if schema is not None:
            omit = frozenset(f for key, f in (omit_field or {}).items() if key in message)
            document = schema_value(schema, re.findall(r"\w+", message), omit=omit)
            tokens = split_pieces(json.dumps(document), size=12)
        else:
            words = (message if result is None else result).split()
            tokens = ["Echo:", *(" " + word for word in words)]
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


def _invalid(kind: str, message: str, param: str | None = None) -> dict[str, Any]:
    """A 400 invalid_request_error body in the API's shape."""
    if kind == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return {"error": error}


def conversation_error(kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The 400 body the real API sends for a conversation whose tool calls and results do not
    pair up (or, on Anthropic, whose thinking came back wrong); None when it is valid."""
    if kind == "anthropic":
        return _anthropic_conversation_error(body)
    pending: list[str] = []  # ids of the last assistant turn's calls not answered yet
    calls_at: int | None = None  # that assistant message's place
    for index, message in enumerate(_messages(body)):
        if message.get("role") == "tool":
            if calls_at is None:
                return _invalid(
                    kind,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            answered = message.get("tool_call_id")
            if answered not in pending:
                return _invalid(
                    kind,
                    f"Invalid parameter: 'tool_call_id' of '{answered}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                )
            pending.remove(answered)
            continue
        if pending:
            break
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        calls_at = index if calls else None
        pending = [str(c.get("id")) for c in calls or [] if isinstance(c, dict)]
    if pending:
        return _invalid(
            kind,
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(pending)}",
            f"messages.[{calls_at}].role",
        )
    return None


def _anthropic_conversation_error(body: dict[str, Any]) -> dict[str, Any] | None:
    messages = _messages(body)
    thinking = body.get("thinking")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    for index, message in enumerate(messages):
        content = message.get("content")
        for place, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            if block.get("signature") != thinking_signature(str(block.get("thinking", ""))):
                return _invalid(
                    "anthropic",
                    f"messages.{index}.content.{place}: Invalid `signature` in `thinking` block",
                )
        before = messages[index - 1] if index else {}
        uses = [b.get("id") for b in _blocks(before, "tool_use")]
        for place, block in enumerate(_blocks(message, "tool_result")):
            if block.get("tool_use_id") not in uses:
                return _invalid(
                    "anthropic",
                    f"messages.{index}.content.{place}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                    "block must have a corresponding `tool_use` block in the previous message.",
                )
        uses = [b.get("id") for b in _blocks(message, "tool_use")]
        if not uses or index + 1 == len(messages):
            continue
        results = {b.get("tool_use_id") for b in _blocks(messages[index + 1], "tool_result")}
        missing = [str(u) for u in uses if u not in results]
        if missing:
            return _invalid(
                "anthropic",
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message.",
            )
    assistants = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    last = assistants[-1] if assistants else None
    if thinking_on and last is not None and _blocks(messages[last], "tool_use"):
        content = messages[last].get("content")
        opening = content[0] if isinstance(content, list) and content else None
        first = opening.get("type") if isinstance(opening, dict) else None
        if first not in ("thinking", "redacted_thinking"):
            return _invalid(
                "anthropic",
                f"messages.{last}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                f"but found `{first}`. When `thinking` is enabled, a final `assistant` message "
                "must start with a thinking block (preceeding the lastmost set of `tool_use` "
                "and `tool_result` blocks). We recommend you include thinking blocks from "
                "previous turns. To avoid this requirement, disable `thinking`.",
            )
    return None


def image_refusal(kind: str, body: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The 400 body an API sends for an image to a model that reads only text, None for a
    request without images."""
    for index, message in enumerate(_messages(body)):
        content = message.get("content")
        for place, part in enumerate(content if isinstance(content, list) else []):
            if not isinstance(part, dict):
                continue
            if kind == "anthropic" and part.get("type") == "image":
                return _invalid(kind, f"'{model}' does not support image input.")
            if kind != "anthropic" and part.get("type") == "image_url":
                return _invalid(
                    kind,
                    "Invalid content type. image_url is only supported by certain models.",
                    f"messages.[{index}].content.[{place}].type",
                )
    return None


def _event(payload: Any, name: str | None = None, newline: str = "\n") -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    head = f"event: {name}{newline}" if name else ""
    return f"{head}data: {data}{newline}{newline}".encode()


@dataclass(frozen=True)
class _Step:
    """One chunk of an answer: a piece of thinking, a text token, the start of the `index`-th
    tool call (`text` is its name) or a piece of its arguments."""

    kind: Literal["thinking", "text", "call", "arguments"]
    text: str
    index: int = 0  # the token's place (text), the tool call's (call, arguments)
    call_id: str = ""


@dataclass(frozen=True)
class _OpenAIWire:
    """The bytes of an OpenAI (or Azure) stream; each method returns whole events."""

    model: str
    prompt_tokens: int
    usage: bool
    quirks: bool
    azure: bool
    logprobs: list[float] | None = None  # None: not asked for
    thinking_field: str = "reasoning_content"
    reasoning_tokens: int = 0  # thinking pieces, part of the completion tokens
    calls: bool = False  # the answer is tool calls

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

    def step(self, step: _Step) -> bytes:
        if step.kind == "text":
            return self.token(step.text, step.index)
        if step.kind == "thinking":  # as DeepSeek and vLLM send it: content null beside it
            delta: dict[str, Any] = {"content": None, self.thinking_field: step.text}
        elif step.kind == "call":
            function = {"name": step.text, "arguments": ""}
            call = {"index": step.index, "id": step.call_id, "type": "function"}
            delta = {"tool_calls": [call | {"function": function}]}
        else:
            delta = {"tool_calls": [{"index": step.index, "function": {"arguments": step.text}}]}
        return _event(self._chunk([self._choice(delta)]))

    def token(self, text: str, index: int) -> bytes:
        newline = "\r\n" if self.quirks else "\n"
        choice = self._choice({"content": text})
        if self.logprobs is not None:
            entry = {"token": text, "logprob": self.logprobs[index % len(self.logprobs)]}
            entry |= {"bytes": list(text.encode()), "top_logprobs": []}
            choice["logprobs"] = {"content": [entry], "refusal": None}
        return _event(self._chunk([choice]), newline=newline)

    def finish(self, output_tokens: int) -> bytes:
        out = _event(self._chunk([self._choice({}, "tool_calls" if self.calls else "stop")]))
        if self.usage:
            usage: dict[str, Any] = {"prompt_tokens": self.prompt_tokens}
            usage["completion_tokens"] = output_tokens
            usage["total_tokens"] = self.prompt_tokens + output_tokens
            if self.reasoning_tokens:
                usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
            out += _event(self._chunk([], usage=usage))
        return out + b"data: [DONE]\n\n"

    def error(self, error: dict[str, Any]) -> bytes:
        return _event({"error": error})

    def malformed(self) -> bytes:
        return b'data: {"choices": [{"index": 0, "delta": {"content": "trunc\n\n'


@dataclass
class _AnthropicWire:
    """The bytes of an Anthropic Messages stream, as the API sends them: a content block per
    kind of output (thinking, text, each tool call), opened and closed as the steps move on."""

    model: str
    prompt_tokens: int
    usage: bool
    quirks: bool
    signature: str = ""  # sent to close the thinking block
    calls: bool = False  # the answer is tool calls
    opens_text: bool = True  # the first block is text: open it with the preamble
    _block: int = field(default=-1, init=False)  # the open block's index
    _open: str | None = field(default=None, init=False)  # the open block's kind

    def start(self) -> bytes:
        usage = {"input_tokens": self.prompt_tokens, "output_tokens": 1} if self.usage else {}
        message: dict[str, Any] = {"id": "msg_test", "type": "message", "role": "assistant"}
        message["content"] = []
        message |= {"model": self.model, "stop_reason": None, "stop_sequence": None, "usage": usage}
        out = _event({"type": "message_start", "message": message}, "message_start")
        if self.opens_text:
            out += self._start_block("text", {"type": "text", "text": ""})
        if self.quirks:
            out += b"event: future_event\ndata: not json at all\n\n"
        return out + b'event: ping\ndata: {"type": "ping"}\n\n'

    def _start_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._stop_block()
        self._block += 1
        self._open = kind
        start = {"type": "content_block_start", "index": self._block, "content_block": block}
        return out + _event(start, "content_block_start")

    def _stop_block(self) -> bytes:
        if self._open is None:
            return b""
        out = b""
        if self._open == "thinking":
            out += self._delta({"type": "signature_delta", "signature": self.signature})
        self._open = None
        stop = {"type": "content_block_stop", "index": self._block}
        return out + _event(stop, "content_block_stop")

    def _delta(self, delta: dict[str, Any]) -> bytes:
        event = {"type": "content_block_delta", "index": self._block, "delta": delta}
        return _event(event, "content_block_delta")

    def step(self, step: _Step) -> bytes:
        out = b""
        if step.kind == "call":
            block = {"type": "tool_use", "id": step.call_id, "name": step.text, "input": {}}
            return self._start_block("tool_use", block)
        if step.kind == "arguments":
            return self._delta({"type": "input_json_delta", "partial_json": step.text})
        if step.kind == "thinking":
            if self._open != "thinking":
                out = self._start_block("thinking", {"type": "thinking", "thinking": ""})
            return out + self._delta({"type": "thinking_delta", "thinking": step.text})
        if self._open != "text":
            out = self._start_block("text", {"type": "text", "text": ""})
        return out + self._delta({"type": "text_delta", "text": step.text})

    def finish(self, output_tokens: int) -> bytes:
        out = self._stop_block()
        reason = "tool_use" if self.calls else "end_turn"
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
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
