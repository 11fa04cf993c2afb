"""Every retry decision; the loop that asks them is ``WebsimClient.asend``.

The original retried only chat 429s (2 s, then 4 s).  We retry every transient failure on
both endpoints with capped exponential backoff and jitter, and let the server's
``Retry-After`` override our guess, because a free, rate-limited service knows best when it
will take the next request.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from langchain_websim.errors import WebsimError

# 408 request timeout and 409 conflict are transient on this kind of service; every 5xx is.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts and how long between them (validated as client settings)."""

    max_retries: int = 2
    base_delay: float = 1.0
    max_delay: float = 30.0

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: an answer (any status), or a failure to get one."""

    status: int | None = None
    """The HTTP status; None when no answer came (connection error, timeout)."""
    content_type: str = ""
    headers: Mapping[str, str] | None = None
    body: bytes = b""
    error: WebsimError | None = None
    """The error to raise if this attempt is the last; None for a 2xx."""
    retryable: bool = False
    reason: str = ""
    """For the retry log line: ``HTTP 503``, or what went wrong with the connection."""
    retry_after: float | None = None
    """Seconds the service asked us to wait (``Retry-After``), if it did."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def rate_limited(self) -> bool:
        return self.status == 429


def should_retry_status(status: int, *, blocked: bool = False) -> bool:
    # A bot-protection challenge page answers the same way until something else changes
    # (network, proxy, time): retrying at once only spends the budget.
    return not blocked and (status in RETRYABLE_STATUSES or 500 <= status <= 599)


def should_retry_exception(exc: BaseException) -> bool:
    # A certificate that does not verify will not verify on the next attempt either.
    return not isinstance(exc, (aiohttp.ClientSSLError, aiohttp.InvalidURL))


def retry_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, *, retryable: bool
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to give up now."""
    if not retryable or attempt >= policy.max_attempts:
        return None
    if retry_after is not None:
        # Retrying before the server's time is wasted budget; waiting past our cap is
        # not what the caller configured: fail now and let them decide.
        return retry_after if retry_after <= policy.max_delay else None
    return calculate_retry_timeout(policy, attempt)


def calculate_retry_timeout(policy: RetryPolicy, retry_number: int) -> float:
    """Delay before retry ``n`` (1, 2, ...): ``min(max, base * 2**n)`` less up to 25 % jitter."""
    # The exponent is capped so a huge max_retries cannot overflow a float.
    delay = min(policy.max_delay, policy.base_delay * 2.0 ** min(retry_number, 64))
    # Jitter spreads a burst of clients that were throttled together.
    return delay * (1 - 0.25 * random.random())


def parse_retry_after_header(
    headers: Mapping[str, str], *, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` is either delta-seconds or an HTTP date.  Unparseable or negative values
    are ignored rather than trusted.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
        except ValueError:
            value = -1.0
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None:  # an HTTP date is GMT by definition
            parsed = parsed.replace(tzinfo=datetime.UTC)
        seconds = parsed.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
