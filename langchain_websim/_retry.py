"""The retry policy's small decisions; the loop that uses them is ``WebsimClient._send``.

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

# 408 request timeout and 409 conflict are transient on this kind of service; every 5xx is.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise TypeError(f"max_retries must be a whole number, got {retries!r}")
        if retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {retries!r}")
        for name, value in (
            ("retry_base_delay", self.base_delay),
            ("retry_max_delay", self.max_delay),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries


def _should_retry_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def _calculate_retry_timeout(policy: RetryPolicy, retry_number: int) -> float:
    """Delay before retry ``n`` (1, 2, ...): ``min(max, base * 2**n)`` less up to 25 % jitter."""
    # The exponent is capped so a huge max_retries cannot overflow a float.
    delay = min(policy.max_delay, policy.base_delay * 2.0 ** min(retry_number, 64))
    # Jitter spreads a burst of clients that were throttled together.
    return delay * (1 - 0.25 * random.random())


def _parse_retry_after_header(
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
