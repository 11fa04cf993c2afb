"""The adaptive rate control as the send loop sees it: one call's progress, the wait for a
send slot (which is not an attempt), and the errors that end a wait.

``WebsimClient._send`` asks ``await_slot`` before each paced send and ``is_shaping`` after a
429; the controller's arithmetic is in ``_rate``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from langchain_websim import _wire
from langchain_websim._rate import RateController
from langchain_websim.errors import WebsimError, WebsimRateLimitError

__all__ = ["Call", "await_slot", "is_shaping", "rate_limited"]


@dataclass(slots=True)
class Call:
    """One call's progress through the send loop."""

    endpoint: _wire.Endpoint
    url: str
    started: float
    rate: RateController | None  # None: adaptive_rate=False
    attempts: int = 0  # requests sent
    shaped: int = 0  # 429s met while the service was shaping: waits, not retries
    waited: float = 0.0  # seconds spent waiting for the rate controller

    @property
    def counted(self) -> int:
        """Attempts that count against ``max_retries``."""
        return self.attempts - self.shaped

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def is_shaping(rate: RateController, endpoint: _wire.Endpoint, retry_after: float | None) -> bool:
    """Tell the controller about a 429; whether it means "slow down" rather than "no"."""
    rate.on_rate_limited(endpoint.name, retry_after)
    return rate.accepting(endpoint.name)


def rate_limited(call: Call, problem: str, retry_after: float | None = None) -> WebsimError:
    return WebsimRateLimitError(
        f"rate limited: {problem}",
        retry_after=retry_after,
        status_code=429,
        url=call.url,
        endpoint=call.endpoint.name,
        attempts=call.attempts,
    )


async def await_slot(call: Call, deadline_after: float, max_pause: float) -> None:
    """Wait until the rate controller has a send slot; this wait is not an attempt."""
    rate, name = call.rate, call.endpoint.name
    assert rate is not None
    deadline = call.started + deadline_after
    while True:
        pause = rate.pause_remaining(name)
        if pause > max_pause:
            raise rate_limited(
                call,
                f"the service asked to wait {pause:g} s (Retry-After), longer than "
                f"retry_max_delay ({max_pause:g} s)",
                retry_after=pause,
            )
        wait = rate.try_acquire(name)
        if wait <= 0.0:
            return
        if time.perf_counter() + wait > deadline:
            limit = deadline_after
            raise rate_limited(
                call,
                f"no send slot within rate_limit_deadline ({limit:g} s; waited "
                f"{call.waited:.1f} s for the service's rate limit)",
            )
        before = time.perf_counter()
        await asyncio.sleep(wait)
        waited = time.perf_counter() - before
        call.waited += waited
        rate.record_wait(name, waited)
