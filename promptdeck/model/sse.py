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

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event. `event` is None when the server named no event type."""

    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns a byte stream into `ServerSentEvent`s, one `feed` per network chunk."""

    def __init__(self) -> None:
        # errors="replace": one bad byte from a sloppy server must not kill the whole answer.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""
        self._after_cr = False
        self._started = False
        self._event: str | None = None
        self._data: list[str] = []
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
        if self._line:
            events += self._process_line(self._line)
            self._line = ""
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
        buffer = self._line + text
        events: list[ServerSentEvent] = []
        start = 0
        for match in _LINE_END.finditer(buffer):
            events += self._process_line(buffer[start : match.start()])
            start = match.end()
        self._line = buffer[start:]
        return events

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
        self._retry = None
        return [event]
