"""Where secrets come from, and how they are shown.

Secrets are looked up by the NAME of their environment variable: the process environment
first, then a `.env` file in the workspace, then any extra source (e.g. Streamlit
secrets). Values are never copied into files, and shown only masked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values


@dataclass
class Secrets:
    """Looks up a secret by environment-variable name. Never logs or stores values."""

    dotenv_path: Path | None = None
    extra: Callable[[str], str | None] | None = None
    _dotenv: Mapping[str, str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.dotenv_path is not None and self.dotenv_path.is_file():
            self._dotenv = dotenv_values(self.dotenv_path)

    def get(self, name: str) -> str | None:
        value = os.environ.get(name) or self._dotenv.get(name)
        if not value and self.extra is not None:
            value = self.extra(name)
        return value or None

    def __repr__(self) -> str:  # a Secrets object must never print values
        return f"Secrets(dotenv_path={self.dotenv_path!r})"


def mask_secret(value: str | None) -> str:
    """'sk-…wxyz' for display; short values are fully hidden."""
    if not value:
        return "missing"
    if len(value) < 12:
        return "•" * 8
    return f"{value[:3]}…{value[-4:]}"


def display_url(url: str) -> str:
    """A base URL to show: a password in it (user:pass@) and its query (?key=...) masked."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    shown = f"{parts.scheme}://{'***@' if user else ''}{host}{parts.path}"
    return shown + ("?***" if parts.query else "") if parts.scheme else url
