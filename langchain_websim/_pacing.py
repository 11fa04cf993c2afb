"""The adaptive rate control as the send loop sees it: one call's progress, the wait for a
send slot (which is not an attempt), and the errors that end a wait.

``WebsimClient._send`` asks ``await_slot`` before each paced send and ``is_shaping`` after a
429; the controller's arithmetic is in ``_rate``.  The errors that end a wait say whether
the call was sent at all, and why it waits: a ``Retry-After`` pause is quoted with when it
was asked for and until when it holds (on the wall clock), because it may come from an
earlier call's answer.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import weakref
from dataclasses import dataclass

from langchain_websim import _wire
from langchain_websim._rate import Pause, RateController
from langchain_websim._responses import CallTiming
from langchain_websim.errors import WebsimError, WebsimRateLimitError

__all__ = ["Call", "SlotQueues", "await_slot", "is_shaping", "rate_limited"]


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
    paced: bool = True  # whether the next send waits for a slot (False: backoff did)

    @property
    def counted(self) -> int:
        """Attempts that count against ``max_retries``."""
        return self.attempts - self.shaped

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def timing(self) -> CallTiming:
        return CallTiming(attempts=self.attempts, elapsed=self.elapsed, rate_wait=self.waited)


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


class SlotQueues:
    """Per event loop and endpoint, the callers waiting for a send slot, in arrival order.

    Only the head of each queue polls the controller; the others wait on an ``asyncio.Lock``
    (first come, first served) without waking.  Without it, N waiting callers would all
    wake at every slot for one of them to get it: 10,000 concurrent calls spent their time
    in wake-ups instead of requests.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def lock(self, endpoint: str) -> asyncio.Lock:
        by_endpoint = self._locks.setdefault(asyncio.get_running_loop(), {})
        lock = by_endpoint.get(endpoint)
        if lock is None:
            lock = by_endpoint[endpoint] = asyncio.Lock()
        return lock


async def await_slot(
    call: Call, queues: SlotQueues, deadline_after: float, max_pause: float
) -> None:
    """Wait until the rate controller has a send slot; this wait is not an attempt."""
    rate, name = call.rate, call.endpoint.name
    assert rate is not None
    queue = queues.lock(name)
    if not queue.locked() and rate.try_acquire(name) == 0.0:
        return  # nobody waiting and a slot free: the common case costs one check
    started = time.perf_counter()
    deadline = call.started + deadline_after
    try:
        async with asyncio.timeout(max(0.0, deadline - started)):
            await queue.acquire()
    except TimeoutError:
        raise _past_deadline(call, deadline_after, rate) from None
    try:
        await _poll(call, rate, deadline, deadline_after, max_pause)
    finally:
        queue.release()
        waited = time.perf_counter() - started
        call.waited += waited
        rate.record_wait(name, waited)


async def _poll(
    call: Call, rate: RateController, deadline: float, deadline_after: float, max_pause: float
) -> None:
    """The head of the queue: ask for a slot, sleep as long as the controller says, again."""
    name = call.endpoint.name
    while True:
        pause = rate.pause(name)
        if pause is not None and pause.until - rate.now() > max_pause:
            raise paused_too_long(call, rate, pause, max_pause)
        wait = rate.try_acquire(name)
        if wait <= 0.0:
            return
        if time.perf_counter() + wait > deadline:
            raise _past_deadline(call, deadline_after, rate)
        await asyncio.sleep(wait)


def paused_too_long(
    call: Call, rate: RateController, pause: Pause, max_pause: float
) -> WebsimError:
    """A pause longer than ``retry_max_delay``: fail now and say whose answer asked for it."""
    left = pause.until - rate.now()
    sent = "not sent" if call.attempts == 0 else f"sent {call.attempts} time(s), not again"
    return rate_limited(
        call,
        f"{sent}: an answer on this endpoint at {_wall(rate, pause.asked_at)} asked to wait "
        f"{pause.asked:g} s (Retry-After); requests to it are paused until "
        f"{_wall(rate, pause.until)} ({left:.3f} s from now; a pause is kept for at most "
        f"rate_limit_deadline, {rate.max_pause:g} s), longer than retry_max_delay "
        f"({max_pause:g} s)",
        retry_after=left,
    )


def _wall(rate: RateController, at: float) -> str:
    """A time on the controller's clock as UTC wall-clock time, to the millisecond."""
    moment = time.time() + (at - rate.now())
    stamp = datetime.datetime.fromtimestamp(moment, tz=datetime.UTC)
    return stamp.strftime("%H:%M:%S.%f")[:-3] + " UTC"


def _past_deadline(
    call: Call, deadline_after: float, rate: RateController | None = None
) -> WebsimError:
    # During a pause, what is left of it is still the service's word on when to come back.
    pause = None if rate is None else rate.pause(call.endpoint.name)
    left = None if pause is None or rate is None else max(0.0, pause.until - rate.now())
    return rate_limited(
        call,
        f"no send slot within rate_limit_deadline ({deadline_after:g} s after the call "
        f"started; {call.elapsed:.1f} s have passed) while the service limits our rate",
        retry_after=left,
    )
