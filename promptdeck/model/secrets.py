"""Where secrets come from, where they may go, and how they are shown.

Secrets are looked up by the NAME of their environment variable: a key set in the app for
this session first (`SessionKeys`: this process's memory only), then the process
environment, then a `.env` file in the workspace, then any extra source (e.g. Streamlit
secrets). Values are never copied into files, and shown only masked.

Where a secret may be sent is a list of hosts (`host_allowed`): `api.openai.com` (any
port), `127.0.0.1:8000` (that port only) or `*.openai.azure.com` (any subdomain).

What is shown of a URL (`display_url`, `url_server`) never holds its `user:password@` or
its query; `url_secrets` lists what of a URL must be masked in any text (`redact`).
`check_headers` refuses a header httpx could not send, naming it but never its value.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from dotenv import dotenv_values

from promptdeck.errors import ConfigError

_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_key_name(name: str, label: str = "Key variable") -> str:
    """`name` stripped, if it is the NAME of an environment variable; else ConfigError. The
    message never repeats what was typed: it may be a key pasted into the wrong field."""
    name = name.strip()
    if not _KEY_NAME.fullmatch(name) or len(name) > 128:
        raise ConfigError(
            f"{label}: give the NAME of an environment variable (letters, digits and _, "
            "not starting with a digit), e.g. STAGING_API_KEY, never the key itself",
            field="api_key_env",
        )
    return name


def check_key_value(value: str) -> str:
    """A key as typed, stripped; ConfigError (never quoting it) if it cannot be sent in a
    header: empty, or with spaces, a line break or a character that is not plain ASCII."""
    value = value.strip()
    if not value:
        raise ConfigError("Key: type or paste the key first", field="key")
    if len(value) > 4096 or not all("!" <= c <= "~" for c in value):
        raise ConfigError(
            "Key: it has a space, a line break or a character that is not plain ASCII, which "
            "no HTTP header can carry: paste the key again, exactly as the provider gave it",
            field="key",
        )
    return value


class SessionKeys:
    """Keys typed in the app "for this session": held in this process's memory until it
    stops, never written to a file, the store or a log, and never shown unmasked. One per
    process (`SESSION_KEYS`): the app serves one person (loopback only), and background
    runs and every browser tab see the same keys. `version` changes with every change, so
    a cached registry built with older keys can be told apart."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def set(self, name: str, value: str) -> None:
        name, value = check_key_name(name), check_key_value(value)
        with self._lock:
            self._values[name] = value
            self._version += 1

    def forget(self, name: str) -> bool:
        """Drop the key of `name`; False if none was set."""
        with self._lock:
            found = self._values.pop(name, None) is not None
            if found:
                self._version += 1
        return found

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._values.get(name)

    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._values))

    def __repr__(self) -> str:  # names only, never a value
        return f"SessionKeys(names={list(self.names())!r})"


SESSION_KEYS = SessionKeys()  # the app process's own (ui.registry passes it to Secrets)


@dataclass
class Secrets:
    """Looks up a secret by environment-variable name. Never logs or stores values."""

    dotenv_path: Path | None = None
    extra: Callable[[str], str | None] | None = None
    session: SessionKeys | None = field(default=None, repr=False)
    _dotenv: Mapping[str, str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.dotenv_path is not None and self.dotenv_path.is_file():
            self._dotenv = dotenv_values(self.dotenv_path)

    def get(self, name: str) -> str | None:
        return self.lookup(name)[0]

    def lookup(self, name: str) -> tuple[str | None, str]:
        """(the value or None, where it comes from: "this session", "environment", ".env",
        "secrets" or "missing"), in the order they are consulted."""
        sources: list[tuple[str, Callable[[str], str | None] | None]] = [
            ("this session", self.session.get if self.session is not None else None),
            ("environment", os.environ.get),
            (".env", self._dotenv.get),
            ("secrets", self.extra),
        ]
        for source, get in sources:
            if get is not None and (value := get(name)):
                return value, source
        return None, "missing"

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


def url_server(url: str) -> str:
    """`scheme://host[:port]` of a URL, for messages: never its user:password@, path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def url_secrets(url: str) -> list[str]:
    """What of `url` must never be shown: its user:password@ part (raw and decoded), the
    Basic credentials httpx sends for it, and the password alone. The query is left to
    `display_url`: it is rarely secret and often is the api-version."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    if not userinfo:
        return []
    user, _, password = userinfo.partition(":")
    basic = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    # `https://TOKEN@host` puts the secret in the user part: the whole userinfo is masked;
    # the password alone too (as a server may echo it), unless so short that masking it
    # would garble the text around it.
    alone = [p for p in (password, unquote(password)) if len(p) >= 4]
    return sorted({userinfo, unquote(userinfo), basic, *alone}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret replaced by *** (longest first, so none is masked in part)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def url_host(url: str) -> str:
    """`host`, or `host:port` when the URL names a port: how `send_key_to` names it."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    shown = f"[{host}]" if ":" in host else host
    port = _port(parts)
    return f"{shown}:{port}" if port else shown


def host_allowed(url: str, hosts: Iterable[str]) -> bool:
    """Is `url`'s host one of `hosts`? An entry is `host` (any port), `host:port` (that port,
    the scheme's default when the URL names none) or `*.domain` (any subdomain, any port)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = _port(parts) or {"http": 80, "https": 443}.get(parts.scheme)
    if not host or port == -1:
        return False
    for entry in hosts:
        try:
            name, port_wanted = split_host(entry)
        except ValueError:
            continue  # the file's parser refuses such entries; a code-built one matches nothing
        if port_wanted is not None and port_wanted != port:
            continue
        if name == host or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


def split_host(entry: str) -> tuple[str, int | None]:
    """('host', port or None) of a `send_key_to` entry; ValueError if it is not one."""
    text = entry.strip().lower()
    if not text or any(c in text for c in "/@?#\\") or any(c.isspace() for c in text):
        raise ValueError(f"{entry!r} is not a host (e.g. api.example.com or 127.0.0.1:8000)")
    parts = urlsplit("//" + text)
    port = _port(parts)
    if port == -1:
        raise ValueError(f"{entry!r} has a port that is not a number from 0 to 65535")
    name = parts.hostname or ""
    if not name or ("*" in name and not (name.startswith("*.") and "*" not in name[2:])):
        raise ValueError(f"{entry!r} is not a host (e.g. api.example.com or *.example.com)")
    return name, port


def _port(parts: SplitResult) -> int | None:
    """The URL's explicit port, None if it names none, -1 if it is not a port."""
    try:
        return parts.port
    except ValueError:
        return -1


def key_refusal(provider: str, url: str, hosts: Iterable[str], envs: Iterable[str]) -> str | None:
    """Why the secrets named by `envs` (a key, secret headers) may not be sent to `url`, or
    None when they may (or there are none). The message says what to add to providers.yaml."""
    names = ", ".join(envs)
    allowed = tuple(hosts)
    if not names or host_allowed(url, allowed):
        return None
    host = url_host(url) or url
    if allowed:
        why = f"{names} may be sent only to {' or '.join(allowed)}, not to {host}"
    else:
        why = f"it names {names} but not where that may be sent"
    return (
        f"provider '{provider}': refused before sending: {why}. If {host} should get it, add "
        f"`send_key_to: [{host}]` to provider '{provider}' in providers.yaml."
    )


def check_headers(headers: Mapping[str, str], provider: str, envs: Mapping[str, str]) -> None:
    """ConfigError naming the header (never its value) that httpx could not send: a value
    with a non-ASCII character or a line break, or a name that is not an HTTP token.
    (httpx raises UnicodeEncodeError for the first and quotes the value for the second.)"""
    prefix = f"{provider}: " if provider else ""
    for name, value in headers.items():
        where = f"the header {name!r}" + (f" (from {envs[name]})" if name in envs else "")
        if not name or not all(c in _TOKEN_CHARS for c in name):
            raise ConfigError(
                f"{prefix}{where} is not a valid header name: use letters, digits and '-'."
            )
        if value != value.strip() or not all(c == "\t" or " " <= c <= "~" for c in value):
            raise ConfigError(
                f"{prefix}the value of {where} has a character an HTTP header cannot "
                "carry (a non-ASCII letter, a line break or a control character) or spaces "
                "around it: write it again in plain ASCII."
            )


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
