from __future__ import annotations

import pytest

from promptdeck.model.sse import ServerSentEvent, SSEDecoder


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
