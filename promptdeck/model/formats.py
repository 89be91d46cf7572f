"""Structured output that adapts to the server: which `response_format` a provider accepts.

Servers differ in what they take: OpenAI, vLLM, Ollama and llama.cpp's own server accept
`{"type": "json_schema", ...}`; llama-cpp-python's server accepts only `text` and
`json_object` (HTTP 500 "response_format type: Input should be 'text' or 'json_object'");
some accept neither. The call path (`model.policy.CallPolicy`) negotiates down a ladder:

    json_schema -> json_object (with the schema, which llama.cpp servers enforce) -> none

A step down is taken when the server REFUSES the format: HTTP 400, 422 or 500 whose body
names `response_format` or `json_schema` (`refuses_format`; such a refusal is never
retried as is, see `model.retry`). With no response_format the prompt still asks for
JSON and the judge's strict parser reads the verdict. What a provider needed is kept in a
`FormatMemory` (the registry holds one), so later calls go straight to what works.

The embedded `local` provider never refuses: it turns a schema into a grammar itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, Literal

FormatLevel = Literal["json_schema", "json_object", "none"]
LADDER: tuple[FormatLevel, ...] = ("json_schema", "json_object", "none")
REFUSAL_STATUSES = frozenset({400, 422, 500})
_NAMES_FORMAT = re.compile(r"response_format|json_schema", re.I)


def refuses_format(status: int | None, message: str | None) -> bool:
    """Is this failure a server refusing the request's response_format?"""
    return status in REFUSAL_STATUSES and bool(_NAMES_FORMAT.search(message or ""))


def format_level(params: Mapping[str, Any]) -> FormatLevel | None:
    """Where the request's response_format stands on the ladder; None: nothing to negotiate
    (no response_format, `text`, or a type this ladder does not know)."""
    fmt = params.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    return kind if kind in ("json_schema", "json_object") else None


def with_level(params: Mapping[str, Any], level: FormatLevel) -> dict[str, Any]:
    """`params` with its response_format moved down to `level` (never up)."""
    out = dict(params)
    current = format_level(params)
    if current is None or LADDER.index(level) <= LADDER.index(current):
        return out
    fmt = params["response_format"]
    if level == "none":
        del out["response_format"]
    else:  # json_schema -> json_object, keeping the schema for servers that enforce it
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        out["response_format"] = {"type": "json_object"}
        if isinstance(schema, Mapping):
            out["response_format"]["schema"] = dict(schema)
    return out


def next_level(level: FormatLevel) -> FormatLevel | None:
    """The step below `level`; None at the bottom."""
    index = LADDER.index(level) + 1
    return LADDER[index] if index < len(LADDER) else None


class FormatMemory:
    """Per provider, the highest level its server accepted after refusing a higher one.
    A provider only ever moves down; one that never refused is not in it."""

    def __init__(self) -> None:
        self._levels: dict[str, FormatLevel] = {}
        self._lock = threading.Lock()  # runs in background threads share one registry

    def get(self, provider: str) -> FormatLevel | None:
        with self._lock:
            return self._levels.get(provider)

    def lower(self, provider: str, level: FormatLevel) -> None:
        """Remember that `provider` needs `level` or below."""
        with self._lock:
            known = self._levels.get(provider)
            if known is None or LADDER.index(level) > LADDER.index(known):
                self._levels[provider] = level

    def known(self) -> dict[str, FormatLevel]:
        with self._lock:
            return dict(self._levels)
