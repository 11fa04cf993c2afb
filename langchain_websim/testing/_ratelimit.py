"""The emulator's rate limit: one token bucket per endpoint.

Websim publishes no limits; the only error public clients quote is a 429 with the text
``Rate limit exceeded``.  A bucket per endpoint is the likelier shape for a service whose
chat and image backends differ, and it lets a test throttle one without starving the other.

Test code reconfigures the limit from its thread while the server thread takes tokens, so
both go through one lock.  The clock is passed in, so the time the limiter decided with is
exactly the time the request log records.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from langchain_websim._wire import ENDPOINTS, EndpointName

RATE_LIMIT_ERROR = "Rate limit exceeded"

# Refill arithmetic in floats can leave a bucket at 0.9999999 tokens after exactly one
# refill period; that request should pass.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A rate limit: ``rate`` requests per second per endpoint, bursts of up to ``burst``.

    ``retry_after`` is the ``Retry-After`` header (seconds) sent with each 429, or ``None``
    to send none.
    """

    rate: float
    burst: int
    retry_after: float | None = None

    @property
    def retry_after_header(self) -> dict[str, str]:
        """The ``Retry-After`` header for a 429, or no header at all."""
        if self.retry_after is None:
            return {}
        # Fixed-point, never an exponent: whole seconds as HTTP's delta-seconds, fractions
        # as a plain decimal (which WebsimClient honours; strict HTTP allows integers only).
        text = f"{self.retry_after:f}".rstrip("0").rstrip(".")
        return {"Retry-After": text}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def make_rate_limit(
    rate_limit: float | None, burst: int | None, retry_after: float | None
) -> RateLimit | None:
    """Check the arguments and build the limit; ``None`` for no limit at all."""
    if rate_limit is None:
        if burst is not None or retry_after is not None:
            named = "burst" if burst is not None else "retry_after"
            raise ValueError(f"{named} needs a rate_limit; pass rate_limit=<requests per second>")
        return None
    if not _is_number(rate_limit):
        raise TypeError(f"rate_limit must be a number of requests per second, got {rate_limit!r}")
    if not math.isfinite(rate_limit) or rate_limit <= 0:
        raise ValueError(
            f"rate_limit must be a finite number of requests per second > 0 "
            f"(None for no limit), got {rate_limit!r}"
        )
    if burst is None:
        # One second's worth of requests, and never less than one.
        burst = max(1, math.ceil(rate_limit))
    elif isinstance(burst, bool) or not isinstance(burst, int):
        raise TypeError(f"burst must be a whole number of requests, got {burst!r}")
    elif burst < 1:
        raise ValueError(f"burst must be >= 1 request, got {burst!r}")
    if retry_after is not None:
        if not _is_number(retry_after):
            raise TypeError(f"retry_after must be a number of seconds, got {retry_after!r}")
        if not math.isfinite(retry_after) or retry_after < 0:
            raise ValueError(
                f"retry_after must be a finite number of seconds >= 0, got {retry_after!r}"
            )
        retry_after = float(retry_after)
    return RateLimit(float(rate_limit), burst, retry_after)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float | None = None  # None: full and untouched since the last (re)fill


class RateLimiter:
    def __init__(self, limit: RateLimit | None) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._buckets: dict[EndpointName, _Bucket] = {}
        self.refill()

    @property
    def limit(self) -> RateLimit | None:
        with self._lock:
            return self._limit

    def configure(self, limit: RateLimit | None) -> None:
        """Replace the limit; the buckets start full under the new one."""
        with self._lock:
            self._limit = limit
            self._fill()

    def refill(self) -> None:
        with self._lock:
            self._fill()

    def _fill(self) -> None:
        burst = float(self._limit.burst) if self._limit is not None else 0.0
        self._buckets = {name: _Bucket(burst) for name in ENDPOINTS}

    def take(self, endpoint: EndpointName, now: float) -> RateLimit | None:
        """Take a token for a request arriving at ``now`` (``time.monotonic()``).

        Returns ``None`` when the request may go on, or the limit that refused it (read under
        the same lock as the decision, so its ``retry_after`` matches).
        """
        with self._lock:
            limit = self._limit
            if limit is None:
                return None
            bucket = self._buckets[endpoint]
            if bucket.stamp is not None:
                elapsed = max(0.0, now - bucket.stamp)
                bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.rate)
            bucket.stamp = now
            if bucket.tokens >= 1 - _EPSILON:
                bucket.tokens = max(0.0, bucket.tokens - 1)
                return None
            return limit
