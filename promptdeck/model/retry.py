"""Retry policy: named constants and two pure functions.

Retried: 408, 409, 429 and 5xx responses, timeouts and connection errors, and only
before the first token of a stream (after that the partial text is kept and the
error recorded). Never retried: quota errors, auth errors, protocol errors, and a server
refusing the request's response_format (a 500 from llama-cpp-python's server among them):
it would refuse it again, so the call path asks with a simpler format instead
(`model.formats`).
"""

from __future__ import annotations

import random

from promptdeck.errors import PromptDeckError, ProviderError
from promptdeck.model.formats import refuses_format

MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5  # seconds, doubled each attempt
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0  # a server asking for longer than this is not waited for
JITTER = 0.25  # +-25% so that parallel callers do not retry in lockstep


def should_retry(
    error: PromptDeckError, *, attempt: int, got_first_token: bool, max_retries: int = MAX_RETRIES
) -> bool:
    """True if a call that failed on `attempt` (0-based) should be tried again."""
    if got_first_token or attempt >= max_retries:
        return False
    if not isinstance(error, ProviderError) or not error.retryable:
        return False
    if refuses_format(error.status, str(error)):
        return False
    retry_after = getattr(error, "retry_after", None)
    return retry_after is None or retry_after <= MAX_RETRY_AFTER


def retry_delay(error: PromptDeckError, *, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1`: the server's wish, else backoff."""
    retry_after = getattr(error, "retry_after", None)  # 429s, and 503s that say so
    if isinstance(retry_after, int | float):
        return float(retry_after)
    base = min(INITIAL_RETRY_DELAY * 2.0**attempt, MAX_RETRY_DELAY)
    jitter = (rng or random).uniform(-JITTER, JITTER)
    return base * (1 + jitter)
