"""Where secrets come from, where they may go, and how they are shown.

Secrets are looked up by the NAME of their environment variable: the process environment
first, then a `.env` file in the workspace, then any extra source (e.g. Streamlit
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

from dotenv import dotenv_values

from promptdeck.errors import ConfigError


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
