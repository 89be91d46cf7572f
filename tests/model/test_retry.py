import random

import pytest

from promptdeck.errors import (
    AuthError,
    HTTPStatusError,
    ProtocolError,
    ProviderConnectionError,
    ProviderTimeout,
    QuotaError,
    RateLimitError,
    error_for_status,
)
from promptdeck.model.retry import (
    INITIAL_RETRY_DELAY,
    JITTER,
    MAX_RETRIES,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    retry_delay,
    should_retry,
)


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (RateLimitError("x"), True),
        (RateLimitError("x", retry_after=MAX_RETRY_AFTER + 1), False),
        (QuotaError("x", status=429), False),
        (AuthError("x", status=401), False),
        (HTTPStatusError("x", status=500), True),
        (HTTPStatusError("x", status=503), True),
        (HTTPStatusError("x", status=408), True),
        (HTTPStatusError("x", status=409), True),
        (HTTPStatusError("x", status=400), False),
        (HTTPStatusError("x", status=404), False),
        (ProviderTimeout("x"), True),
        (ProviderConnectionError("x"), True),
        (ProtocolError("x"), False),
    ],
)
def test_should_retry_by_error(error: Exception, retry: bool) -> None:
    assert should_retry(error, attempt=0, got_first_token=False) is retry  # type: ignore[arg-type]


def test_never_retry_after_first_token_or_budget() -> None:
    err = HTTPStatusError("x", status=502)
    assert should_retry(err, attempt=0, got_first_token=True) is False
    assert should_retry(err, attempt=MAX_RETRIES - 1, got_first_token=False) is True
    assert should_retry(err, attempt=MAX_RETRIES, got_first_token=False) is False


def test_retry_delay_honours_retry_after() -> None:
    assert retry_delay(RateLimitError("x", retry_after=3.5), attempt=0) == 3.5


def test_retry_delay_backs_off_with_jitter() -> None:
    rng = random.Random(1)
    for attempt in range(6):
        base = min(INITIAL_RETRY_DELAY * 2**attempt, MAX_RETRY_DELAY)
        delay = retry_delay(ProviderTimeout("x"), attempt=attempt, rng=rng)
        assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "retry_after"),
    [
        (401, "bad key", {}, AuthError, None),
        (403, "forbidden", {}, AuthError, None),
        (429, "slow down", {"retry-after": "2"}, RateLimitError, 2.0),
        (429, "slow down", {"retry-after-ms": "1500"}, RateLimitError, 1.5),
        (429, '{"error": {"code": "insufficient_quota"}}', {}, QuotaError, None),
        (402, "credit balance is too low", {}, QuotaError, None),
        (500, "boom", {}, HTTPStatusError, None),
        (529, "overloaded", {}, HTTPStatusError, None),
    ],
)
def test_error_for_status(
    status: int, body: str, headers: dict[str, str], cls: type, retry_after: float | None
) -> None:
    err = error_for_status(status, body, headers, provider="p")
    assert type(err) is cls
    assert err.status == status
    assert getattr(err, "retry_after", None) == retry_after
    assert str(err).startswith("p: ")


def test_a_503_with_retry_after_is_honoured() -> None:
    err = error_for_status(503, "busy", {"retry-after": "2"}, provider="p")
    assert err.retryable and retry_delay(err, attempt=0) == 2.0
