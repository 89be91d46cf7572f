from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from promptdeck.errors import ProtocolError
from promptdeck.model.openai_compat import OpenAIProvider
from promptdeck.model.sse import MAX_EVENT_CHARS, ServerSentEvent, SSEDecoder
from promptdeck.model.types import ChatRequest, Message
from tests.llm_server import collect


def E(
    data: str, event: str | None = None, id: str | None = None, retry: int | None = None
) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=id, retry=retry)


CASES: list[tuple[str, bytes, list[ServerSentEvent]]] = [
    ("lf", b"data: hello\n\n", [E("hello")]),
    ("crlf", b"event: delta\r\ndata: a\r\n\r\n", [E("a", "delta")]),
    ("cr", b"data: a\r\rdata: b\r\r", [E("a"), E("b")]),
    ("mixed endings", b"data: a\r\ndata: b\ndata: c\r\r", [E("a\nb\nc")]),
    ("comments", b": keep-alive\n\n: more\ndata: x\n\n", [E("x")]),
    ("multi-line data", b"data: line one\ndata: line two\n\n", [E("line one\nline two")]),
    ("done", b'data: {"a":1}\n\ndata: [DONE]\n\n', [E('{"a":1}'), E("[DONE]")]),
    ("utf-8", "data: héllo 👋 世界\n\n".encode(), [E("héllo 👋 世界")]),
    ("invalid utf-8", b"data: \xff!\n\n", [E("\ufffd!")]),
    ("field without colon", b"data\n\n", [E("")]),
    ("empty data lines", b"data:\ndata:\n\n", [E("\n")]),
    ("one space removed", b"data:  two\ndata:none\n\n", [E(" two\nnone")]),
    ("colon in value", b"data: a: b\n\n", [E("a: b")]),
    ("id persists", b"id: 7\ndata: a\n\ndata: b\n\n", [E("a", id="7"), E("b", id="7")]),
    ("retry is per event", b"retry: 1500\ndata: a\n\ndata: b\n\n", [E("a", retry=1500), E("b")]),
    ("bad retry, unknown field", b"foo: bar\nretry: 1.5\ndata: a\n\n", [E("a")]),
    ("no data: no event", b"event: ping\n\ndata: a\n\n", [E("a")]),
    ("bom", b"\xef\xbb\xbfdata: a\n\n", [E("a")]),
    ("unterminated last event", b"data: a\n\ndata: [DONE]", [E("a"), E("[DONE]")]),
    (
        "anthropic",
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
        [E('{"type":"message_stop"}', "message_stop")],
    ),
]


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decodes_whatever_the_chunking(raw: bytes, expected: list[ServerSentEvent]) -> None:
    assert decode([raw]) == expected
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == expected
    # Every split point: mid-line, between CR and LF, inside a multi-byte character.
    for cut in range(len(raw) + 1):
        assert decode([raw[:cut], raw[cut:]]) == expected, f"split at byte {cut}"


def test_an_event_is_delivered_as_soon_as_its_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [E("a")]
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\n") == []  # completes the CRLF, is not a blank line
    assert decoder.feed(b"\r\n") == [E("b")]
    assert decoder.flush() == []


def test_multibyte_character_split_across_feeds() -> None:
    decoder = SSEDecoder()
    wave = "👋".encode()
    assert decoder.feed(b"data: " + wave[:1]) == []
    assert decoder.feed(wave[1:3]) == []
    assert decoder.feed(wave[3:] + b"\n\n") == [E("👋")]


# --- bounded, linear work ------------------------------------------------------------------


def test_a_line_longer_than_the_cap_is_a_protocol_error() -> None:
    decoder = SSEDecoder(max_chars=1000, provider="openai")
    assert decoder.feed(b"data: " + b"x" * 500) == []
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(b"x" * 500)  # no line end yet: the unfinished line is what is too long
    assert str(caught.value).startswith(
        "openai: the server sent a line of more than 1,000 characters in its event stream"
    )
    with pytest.raises(ProtocolError, match="a line of more than 1,000 characters"):
        SSEDecoder(max_chars=1000).feed(b": " + b"c" * 1000 + b"\n")  # a whole line, too


def test_an_event_of_many_lines_is_capped_too() -> None:
    decoder = SSEDecoder(max_chars=1000)
    assert decoder.feed(b"data: " + b"y" * 600 + b"\n") == []
    with pytest.raises(ProtocolError, match="an event of more than 1,000 characters"):
        decoder.feed(b"data: " + b"y" * 600 + b"\n")


def test_the_default_cap_and_the_events_under_it() -> None:
    assert MAX_EVENT_CHARS == 8 * 1024 * 1024
    payload = "z" * (MAX_EVENT_CHARS - 10)
    assert decode([f"data: {payload}\n\n".encode()]) == [E(payload)]


def test_a_long_line_in_small_chunks_takes_linear_time() -> None:
    """A 6 MB line in 1 KB chunks: 6,000 feeds. Joining the line so far on every feed (as
    before) copies 18 GB; kept as pieces it is 6 MB."""
    line = b"data: " + b"x" * (6 * 1024 * 1024) + b"\n\n"
    decoder = SSEDecoder()
    started = time.process_time()
    events = [e for i in range(0, len(line), 1024) for e in decoder.feed(line[i : i + 1024])]
    assert time.process_time() - started < 3
    assert len(events) == 1 and len(events[0].data) == 6 * 1024 * 1024


class _EndlessLine(BaseHTTPRequestHandler):
    """An OpenAI-style stream: one good chunk, then a line that never ends."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hello"}}]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        try:
            for _ in range(400):  # 16 MB without a line end, twice the cap
                self.wfile.write(b"x" * 40_000)
        except OSError:
            pass  # the client hung up at the cap

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_never_ends_its_line_fails_the_call_with_a_protocol_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessLine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        provider = OpenAIProvider("local-test", url, requires_key=False)
        request = ChatRequest("m", (Message("user", "hi"),))
        result = collect(provider, request)
    finally:
        server.shutdown()
        server.server_close()
    assert result.chunks == ["Hello"]  # what arrived before is kept
    assert isinstance(result.error, ProtocolError)
    assert "a line of more than 8,388,608 characters" in str(result.error)
