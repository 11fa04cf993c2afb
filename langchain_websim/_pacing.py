"""The adaptive rate control as the send loop sees it: one call's progress, the wait for a
send slot (which is not an attempt), and the errors that end a wait.

``WebsimClient.asend`` asks ``await_slot`` before each paced send and ``is_shaping`` after a
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
from collections import deque
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
    sent_at: float | None = None  # the last attempt's send time, on the rate control's clock

    @property
    def counted(self) -> int:
        """Attempts that count against ``max_retries``."""
        return self.attempts - self.shaped

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def timing(self) -> CallTiming:
        return CallTiming(attempts=self.attempts, elapsed=self.elapsed, rate_wait=self.waited)


def is_shaping(call: Call, retry_after: float | None) -> bool:
    """Tell the controller about the call's 429; whether it means "slow down" rather than
    "no"."""
    rate = call.rate
    assert rate is not None
    rate.on_rate_limited(call.endpoint.name, retry_after, call.sent_at)
    return rate.accepting(call.endpoint.name)


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
    """Per event loop and endpoint, the calls waiting for a send slot (a :class:`SlotQueue`)."""

    def __init__(self) -> None:
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SlotQueue]] = (
            weakref.WeakKeyDictionary()
        )

    def queue(self, rate: RateController, endpoint: str, max_pause: float) -> SlotQueue:
        """The running loop's queue for ``endpoint``."""
        by_endpoint = self._queues.setdefault(asyncio.get_running_loop(), {})
        queue = by_endpoint.get(endpoint)
        if queue is None:
            queue = by_endpoint[endpoint] = SlotQueue(rate, endpoint, max_pause)
        return queue

    def wake(self, endpoint: str) -> None:
        """A slow-start round ended: hand out its room on the running loop, if calls wait there.

        Calls waiting on other loops (the sync twins' background loop, other threads) are
        not woken: they get their slots when the controller's next one comes due.
        """
        by_endpoint = self._queues.get(asyncio.get_running_loop())
        queue = None if by_endpoint is None else by_endpoint.get(endpoint)
        if queue is not None and queue.waiting:
            queue.release()


class SlotQueue:
    """The calls of one loop waiting for a send slot on one endpoint, in arrival order.

    Nobody polls: whoever frees slots (the success that ends a round of the slow start,
    or the one timer set for the controller's next slot) calls :meth:`release`, which
    hands every free slot to the oldest waiting calls at once.  At once matters twice:
    10,000 waiting calls must not all wake for every slot (a wake-up each was the whole
    cost of a large batch), and calls let go one loop turn apart stay spread out for
    good, where calls let go together keep going in step with the service's answers
    (against a fast local server, 50 calls started over 15 ms instead of at once took
    4-9 % longer for all of their 2,000 requests).
    """

    def __init__(self, rate: RateController, endpoint: str, max_pause: float) -> None:
        self.rate = rate
        self.endpoint = endpoint
        self.max_pause = max_pause  # a longer Retry-After pause fails the calls at once
        self.waiting: deque[_Waiter] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def wait(self, call: Call, deadline: float, deadline_after: float) -> None:
        """Wait in line for a slot; ``deadline`` is on ``time.perf_counter``."""
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiter(call, slot, deadline))
        if len(self.waiting) == 1:
            self.release()  # the first in line: ask the controller when its slot comes
        try:
            async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                await slot
        except TimeoutError:
            raise _past_deadline(call, deadline_after, self.rate) from None
        finally:
            slot.cancel()  # a no-op once granted; otherwise ``release`` skips it

    def release(self) -> None:
        """Give every free slot to the oldest waiting calls; set a timer for the next."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rate, waiting = self.rate, self.waiting
        while waiting:
            slot = waiting[0].slot
            if slot.done():  # timed out or cancelled while waiting
                waiting.popleft()
                continue
            pause = rate.pause(self.endpoint)
            if pause is not None and pause.until - rate.now() > self.max_pause:
                self._fail_all(pause)
                return
            wait = rate.try_acquire(self.endpoint)
            if wait > 0.0:
                self._fail_late(time.perf_counter() + wait)
                if waiting:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(wait, self.release)
                return
            waiting.popleft()
            slot.set_result(None)

    def _fail_late(self, earliest: float) -> None:
        """The next slot comes at ``earliest`` at best: calls at the front of the line whose
        deadline is before it fail now rather than wait for nothing.  Only the front is
        scanned (deadlines mostly follow arrival): a call further back whose deadline
        passes still fails then, by its own timeout."""
        for waiter in self.waiting:
            if waiter.slot.done():
                continue
            if waiter.deadline >= earliest:
                return
            deadline_after = waiter.deadline - waiter.call.started
            waiter.slot.set_exception(_past_deadline(waiter.call, deadline_after, self.rate))

    def _fail_all(self, pause: Pause) -> None:
        """A pause longer than the calls may wait: every one in line fails now."""
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.slot.done():
                error = paused_too_long(waiter.call, self.rate, pause, self.max_pause)
                waiter.slot.set_exception(error)


@dataclass(slots=True)
class _Waiter:
    call: Call
    slot: asyncio.Future[None]  # done: granted, failed, or given up by the caller
    deadline: float  # on time.perf_counter


async def await_slot(
    call: Call, queues: SlotQueues, deadline_after: float, max_pause: float
) -> None:
    """Wait until the rate controller has a send slot; this wait is not an attempt."""
    rate, name = call.rate, call.endpoint.name
    assert rate is not None
    queue = queues.queue(rate, name, max_pause)
    if not queue.waiting and rate.try_acquire(name) == 0.0:
        return  # nobody waiting and a slot free: the common case costs one check
    started = time.perf_counter()
    try:
        await queue.wait(call, call.started + deadline_after, deadline_after)
    finally:
        waited = time.perf_counter() - started
        call.waited += waited
        rate.record_wait(name, waited)


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
