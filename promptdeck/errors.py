"""Every error PromptDeck raises on purpose.

    PromptDeckError
    ├── ConfigError            providers.yaml, environment, unknown provider, model file
    ├── PromptFileError        a prompt variant file that cannot be used (file, line, field)
    ├── DatasetError           a dataset file that cannot be used (file, row, column)
    ├── TemplateError          a template that does not render (missing variable, sandbox)
    ├── CheckConfigError       a guardrail / check declared wrongly (variant, check)
    ├── FileConflictError      a file changed on disk since it was loaded; not overwritten
    ├── StoreError             the run store's database cannot be reached (down, connection lost)
    └── ProviderError          a model call that failed
        ├── AuthError              no key configured, or 401 / 403: wrong or not allowed
        ├── RateLimitError         429: too many requests (carries retry_after)
        ├── QuotaError             the account is out of credit or over its spend limit
        ├── ProviderTimeout        no answer, or too long a gap between chunks
        ├── ProviderConnectionError  the server could not be reached or hung up
        ├── HTTPStatusError        any other non-2xx status
        └── ProtocolError          the server answered something that is not the protocol

Messages are for a product manager: they say what went wrong and what to do.

`ErrorKind` is the short stable name of a failure as tables, the store and exports show it
(`error_kind`): `ErrorKind.of(exc)` is the one place that names an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path


class PromptDeckError(Exception):
    """Base of every error PromptDeck raises on purpose."""


class ConfigError(PromptDeckError):
    """Configuration that cannot be used (providers.yaml, a suite, environment, model
    reference). `field` names the key at fault, when one is, so a caller that knows the file
    can add the file and the line."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class PromptFileError(PromptDeckError):
    """A prompt variant file that cannot be loaded; names the file, line and field."""

    def __init__(
        self, path: Path | str, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.detail = message
        where = self.path + (f", line {line}" if line else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")

    def __reduce__(
        self,
    ) -> tuple[object, ...]:  # keyword arguments survive pickling (st.cache_data)
        return (_prompt_file_error, (self.path, self.detail, self.line, self.field))


def _prompt_file_error(
    path: str, detail: str, line: int | None, field: str | None
) -> PromptFileError:
    return PromptFileError(path, detail, line=line, field=field)


class DatasetError(PromptDeckError):
    """A dataset file that cannot be loaded; names the file and, where known, the row."""


class TemplateError(PromptDeckError):
    """A template that does not render, e.g. a variable that no input provides."""


class CheckConfigError(PromptDeckError):
    """A check (guardrail) whose configuration is wrong."""


class FileConflictError(PromptDeckError):
    """A file changed (or vanished) on disk after it was loaded; saving would lose that change."""

    def __init__(self, path: Path | str, *, disk_text: str = "", deleted: bool = False) -> None:
        self.path = str(path)
        self.disk_text = disk_text
        self.deleted = deleted
        what = "was deleted" if deleted else "changed on disk"
        super().__init__(
            f"{self.path} {what} since you opened it (another tab, an editor or a git pull); "
            "nothing was overwritten. Compare the versions, then reload or save as a copy."
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_file_conflict_error, (self.path, self.disk_text, self.deleted))


def _file_conflict_error(path: str, disk_text: str, deleted: bool) -> FileConflictError:
    return FileConflictError(path, disk_text=disk_text, deleted=deleted)


class StoreError(PromptDeckError):
    """The run store's database went away (server down, connection lost, pool exhausted).
    What was committed before is kept; the message names the store, never its password."""


class ProviderError(PromptDeckError):
    """A model call that failed. `retryable` is a hint for the retry policy."""

    retryable = False

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        prefix = f"{provider}: " if provider else ""
        super().__init__(prefix + message)

    @property
    def kind(self) -> ErrorKind:
        """A short stable name for tables and exports, e.g. 'rate_limit'."""
        return _KIND_NAMES.get(type(self), ErrorKind.PROVIDER)


class AuthError(ProviderError):
    """The server refused the key (401/403)."""


class RateLimitError(ProviderError):
    """429 Too Many Requests; `retry_after` is seconds the server asked us to wait."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class QuotaError(ProviderError):
    """Out of credit or over a spend limit: waiting does not help, so it is never retried."""


class ProviderTimeout(ProviderError):
    """The server did not answer, or paused between chunks for longer than allowed."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The server could not be reached, or closed the connection mid-answer."""

    retryable = True


class HTTPStatusError(ProviderError):
    """A non-2xx status that has no class of its own. 408/409/5xx are retryable."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retryable = status is not None and (status in (408, 409) or status >= 500)
        self.retry_after = retry_after  # a 503 may say when to come back, too


class ProtocolError(ProviderError):
    """The server's answer does not follow the protocol (bad JSON, missing fields)."""


class ErrorKind(StrEnum):
    """Why a call or a cell failed, as stored in `error_kind` (a str, so old rows compare)."""

    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    QUOTA = "quota"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    HTTP_STATUS = "http_status"
    PROTOCOL = "protocol"
    PROVIDER = "provider_error"  # a ProviderError with no class of its own
    CONFIG = "config"  # unknown provider, bad model reference, missing key setting
    TEMPLATE = "template"  # the prompt did not render for this row
    STOPPED = "stopped"  # the user pressed Stop; the partial answer is kept
    TOOLS = "tools"  # the model kept calling tools past the variant's max_tool_rounds
    INTERNAL = "internal"  # a bug: the run went on without this cell

    @classmethod
    def of(cls, error: BaseException) -> ErrorKind:
        if isinstance(error, ProviderError):
            return error.kind
        if isinstance(error, TemplateError):
            return cls.TEMPLATE
        if isinstance(error, PromptDeckError):
            return cls.CONFIG
        return cls.INTERNAL


_KIND_NAMES: dict[type, ErrorKind] = {
    AuthError: ErrorKind.AUTH,
    RateLimitError: ErrorKind.RATE_LIMIT,
    QuotaError: ErrorKind.QUOTA,
    ProviderTimeout: ErrorKind.TIMEOUT,
    ProviderConnectionError: ErrorKind.CONNECTION,
    HTTPStatusError: ErrorKind.HTTP_STATUS,
    ProtocolError: ErrorKind.PROTOCOL,
}

_QUOTA_WORDS = ("insufficient_quota", "quota", "billing", "credit balance", "spend limit")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds only; dates ignored)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if 0 <= seconds <= 600:
            return seconds
    return None


def error_for_status(
    status: int, body: str, headers: Mapping[str, str], *, provider: str
) -> ProviderError:
    """Map an HTTP error response to the error class a caller can act on."""
    detail = _short(body)
    lowered = body.lower()
    if status in (401, 403):
        return AuthError(
            f"the server refused the API key (HTTP {status}). Check that the key's environment "
            f"variable is set and valid for this model. Server said: {detail}",
            provider=provider,
            status=status,
        )
    # Anthropic reports an empty credit balance as 400 invalid_request_error.
    if status in (400, 402, 429) and any(word in lowered for word in _QUOTA_WORDS):
        return QuotaError(
            f"the account is out of quota or over its spend limit (HTTP {status}); add credit "
            f"or raise the limit, retrying will not help. Server said: {detail}",
            provider=provider,
            status=status,
        )
    if status == 429:
        retry_after = parse_retry_after(headers)
        wait = f" The server asked to wait {retry_after:g}s." if retry_after is not None else ""
        return RateLimitError(
            f"rate limited (HTTP 429).{wait} Lower the concurrency or try again shortly. "
            f"Server said: {detail}",
            provider=provider,
            retry_after=retry_after,
        )
    return HTTPStatusError(
        f"the server answered HTTP {status}. Server said: {detail}",
        provider=provider,
        status=status,
        retry_after=parse_retry_after(headers),
    )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
