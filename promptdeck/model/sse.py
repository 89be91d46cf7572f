"""Incremental Server-Sent-Events decoding (the WHATWG "event stream" format).

Pure: bytes in, events out, no I/O. Network chunks split anywhere — mid-line, between
the CR and LF of a CRLF, inside a multi-byte UTF-8 character — so the decoder keeps
whatever it cannot finish yet and completes it on the next `feed`.

    decoder = SSEDecoder()
    for chunk in network_chunks:
        for event in decoder.feed(chunk):
            ...
    for event in decoder.flush():   # the stream ended
        ...
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from promptdeck.errors import ProtocolError

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"
# 8 Mi characters: an answer of 128k tokens is about half a megabyte, and a stream sends it
# in small events; a server that sends more in one line or event is not speaking the protocol.
MAX_EVENT_CHARS = 8 * 1024 * 1024


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event. `event` is None when the server named no event type."""

    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns a byte stream into `ServerSentEvent`s, one `feed` per network chunk.

    Linear in the bytes fed, however they are chunked: an unfinished line is kept as a list
    of pieces and joined once, when its end arrives. A line, or the data of one event,
    longer than `max_chars` (MAX_EVENT_CHARS) is a ProtocolError: no model answer needs one,
    and a server that never ends its line must not grow a buffer without bound."""

    def __init__(self, *, max_chars: int = MAX_EVENT_CHARS, provider: str = "") -> None:
        # errors="replace": one bad byte from a sloppy server must not kill the whole answer.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_chars
        self._provider = provider
        self._pieces: list[str] = []  # the unfinished line
        self._pending = 0  # its length
        self._after_cr = False
        self._started = False
        self._event: str | None = None
        self._data: list[str] = []
        self._data_chars = 0
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode one chunk; return the events it completed (often none, sometimes many)."""
        return self._feed_text(self._utf8.decode(data))

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: finish the last line and deliver a pending event.

        A browser's EventSource drops an event that the stream did not end with a blank
        line. We deliver it instead: for an LLM answer cut short, the provider can judge
        what arrived (e.g. a final `[DONE]` without its blank line is still understood).
        """
        events = self._feed_text(self._utf8.decode(b"", final=True))
        if self._pieces:
            events += self._process_line(self._take_line(""))
        events += self._dispatch()
        self._after_cr = False
        return events

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix(_BOM)
        if self._after_cr and text.startswith("\n"):
            # The LF that completes a CRLF split across two chunks: that line already ended.
            text = text[1:]
        self._after_cr = text.endswith("\r")
        events: list[ServerSentEvent] = []
        start = 0
        for match in _LINE_END.finditer(text):
            events += self._process_line(self._take_line(text[start : match.start()]))
            start = match.end()
        if start < len(text):
            self._pieces.append(text[start:])
            self._pending += len(text) - start
            self._check(self._pending, "a line")
        return events

    def _take_line(self, end: str) -> str:
        if not self._pieces:
            line = end
        else:
            self._pieces.append(end)
            line = "".join(self._pieces)
            self._pieces, self._pending = [], 0
        self._check(len(line), "a line")
        return line

    def _check(self, size: int, what: str) -> None:
        if size > self._max:
            raise ProtocolError(
                f"the server sent {what} of more than {self._max:,} characters in its event "
                "stream, more than any answer needs; the stream was stopped. Check that the "
                "base URL points at the right API.",
                provider=self._provider,
            )

    def _process_line(self, line: str) -> list[ServerSentEvent]:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return []  # a comment, often a keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value or None
        elif name == "data":
            self._data.append(value)
            self._data_chars += len(value) + 1
            self._check(self._data_chars, "an event")
        elif name == "id" and "\0" not in value:  # the spec ignores ids holding NUL
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Any other field name is ignored, as the spec requires.
        return []

    def _dispatch(self) -> list[ServerSentEvent]:
        if not self._data:
            # No data line: nothing to deliver, but the event's own fields end here.
            self._event = None
            self._retry = None
            return []
        event = ServerSentEvent(
            event=self._event, data="\n".join(self._data), id=self._last_id, retry=self._retry
        )
        self._event = None
        self._data = []
        self._data_chars = 0
        self._retry = None
        return [event]
