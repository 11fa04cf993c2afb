"""Adaptive client-side pacing for Websim's unpublished, per-endpoint rate limits.

Websim answers ``429 Rate limit exceeded`` (sometimes with ``Retry-After``) when called too
fast, and its limit differs per endpoint and over time.  One :class:`RateController` per
client learns a send rate for each endpoint from the answers it sees and spaces sends about
``1 / rate`` apart, so a batch of concurrent calls runs at the service's pace instead of
bouncing off it.

The controller is pure and synchronous (no sleeping, no I/O): callers ask it for a send slot,
sleep themselves, send, and report the outcome.  One lock guards all state, so a single
controller can be shared by every event loop and thread of a client.

How the rate moves, per endpoint:

* slow start: nothing is known at first, so the pace starts modest (:data:`INITIAL_RATE`,
  :data:`INITIAL_BURST` slots at once, so one call never waits) and doubles every
  :data:`SLOW_START_DOUBLING` seconds, clocked by successes, while callers are queued;
* a 429 drops the rate to what the service actually accepted recently (successes per second
  over a short window) and at least by ``1 - CUT_KEEP``, not a blind halving; further 429s
  are ignored for a hold-off so one overshoot cuts once.  With nobody queued (a lone call,
  a call after idling) the answers measure our demand, not the limit, so the rate drops
  just under what was actually sent instead;
* afterwards, while callers are queued, the rate probes upward: slowly right after a cut
  (:data:`PROBE_GAIN` per second), faster the longer no 429 comes (:data:`PROBE_ACCEL`), so a
  limit that rose, or capacity another client stopped using, is found again; a rate cut far
  below its recent peak climbs back quickly (:data:`RECOVER_GAIN`);
* ``Retry-After`` pauses every slot on that endpoint until it passes.

Every cut is logged at INFO on the ``langchain_websim`` logger (endpoint, old -> new rate,
why); gradual ramps are logged each time they have moved the rate by 25 %.

Two ways to wait for a slot:

* :meth:`RateController.try_acquire` (use this for concurrent callers): ``0.0`` means a slot
  was taken, send now; a positive value means nothing was taken, sleep that long and ask
  again.  Every queued caller follows a rate change at once.
* :meth:`RateController.reserve`: takes the next slot, possibly in the future, and returns
  how long to sleep before sending.  Simple, but a slot handed out cannot move, so a burst of
  concurrent callers commits to a schedule before the service has answered once; several
  clients sharing one limit overshoot it badly that way (see the simulation tests).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger("langchain_websim")

__all__ = ["EndpointRateState", "RateController"]

# Tuned with the discrete-event simulation in tests/unit_tests/_rate_sim.py.
MIN_RATE = 0.2  # requests/s; a limited endpoint is never paced slower than this
MAX_RATE = 1000.0  # requests/s; finer pacing than an event loop can sleep is pointless:
# a slow start that reaches it without a 429 stops pacing until the first 429 comes
INITIAL_RATE = 6.0  # requests/s before anything is learned
INITIAL_BURST = 2.0  # slots a fresh endpoint grants at once (a single call never waits)
BURST = 2.0  # slots that may go back to back later (absorbs a waker's lateness)
SLOW_START_DOUBLING = 0.25  # seconds per doubling of the rate before the first 429
GROWTH_SLOTS = 2.0  # one success credits at most this many slots of growth time
PROBE_GAIN = 0.02  # relative rate increase per second right after a cut ...
PROBE_ACCEL = 3.0  # ... times e for every this many seconds without a cut ...
PROBE_MAX_GAIN = 0.5  # ... up to this relative increase per second
RECOVER_SHARE = 0.5  # below this share of the recent peak rate ...
RECOVER_QUIET = 2.0  # ... and this many seconds after a cut ...
RECOVER_GAIN = 0.7  # ... the rate grows at least this much per second
PEAK_DECAY = 20.0  # seconds over which the recent peak rate fades by a factor e
CUT_KEEP = 0.9  # a cut keeps at most this share of the rate
CUT_WINDOW = 0.5  # seconds of successes a cut measures the accepted rate over ...
CUT_WINDOW_SLOTS = 5.0  # ... or this many slots at the current rate, if longer
HOLD_OFF = 0.25  # seconds after a cut during which 429s do not cut again ...
HOLD_OFF_SLOTS = 2.0  # ... or this many slots at the new rate, if longer
ACCEPT_WINDOW = 10.0  # seconds after a success during which a 429 means "slow down" ...
ACCEPT_WINDOW_SLOTS = 4.0  # ... or this many slots at the current rate, if longer
DEMAND_SLOTS = 2.0  # a caller kept waiting within this many slots means "queued"
_MILESTONE = math.log(1.25)  # gradual ramps are logged each time they move 25 %
_EPS = 1e-9  # float slack for a waker that arrives exactly at its slot


@dataclass(frozen=True, slots=True)
class EndpointRateState:
    """A snapshot of what the controller knows about one endpoint.

    Attributes:
        rate: requests per second currently allowed; ``None`` while nothing has been learned
            (no 429 seen yet; the controller is still ramping up its own pace).
        rate_limited: 429 answers seen on this endpoint.
        waited: total seconds requests reported waiting for the controller.
        paused_until: clock time until which a ``Retry-After`` pause holds, else ``None``.
        pace: requests per second paced to now, learned or still ramping up.
    """

    rate: float | None
    rate_limited: int
    waited: float
    paused_until: float | None
    pace: float = INITIAL_RATE


@dataclass(slots=True)
class _Endpoint:
    """Pacing state of one endpoint: a token bucket refilled at ``rate``."""

    rate: float
    tokens: float  # slots available at ``updated``; negative = slots promised ahead
    updated: float
    created: float
    learned: bool = False
    unpaced: bool = False  # slow start reached MAX_RATE with no 429: no pacing at all
    paused_until: float = -math.inf
    hold_until: float = -math.inf
    cut_at: float = -math.inf
    grown_at: float = -math.inf
    demand_at: float = -math.inf  # last time a caller had to wait for a slot
    last_success: float = -math.inf
    successes: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    refusals: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    rate_limited: int = 0
    waited: float = 0.0
    logged_rate: float = INITIAL_RATE
    peak: float = 0.0  # highest rate a cut came from, fading with PEAK_DECAY ...
    peak_at: float = 0.0  # ... since this clock time

    @property
    def burst(self) -> float:
        return BURST if self.learned else INITIAL_BURST

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def next_slot(self, now: float) -> float:
        """Earliest clock time a slot is free; tokens keep accruing during a pause."""
        start = max(now, self.paused_until)
        tokens = min(self.burst, self.tokens + (start - now) * self.rate)
        if tokens >= 1.0 - _EPS:
            return start
        return start + (1.0 - tokens) / self.rate

    def take(self, now: float, slot: float) -> None:
        """Spend the slot at ``slot``, kept as the token level at ``now``."""
        at_slot = max(1.0, min(self.burst, self.tokens + (slot - now) * self.rate))
        self.tokens = at_slot - 1.0 - (slot - now) * self.rate
        if slot > now + _EPS:
            self.demand_at = now

    def queued(self, now: float) -> bool:
        return now - self.demand_at <= DEMAND_SLOTS / self.rate

    def recent_rates(self, now: float) -> tuple[float, float]:
        """Answers per second over the cut window: (accepted, all answers incl. 429s)."""
        window = max(CUT_WINDOW, CUT_WINDOW_SLOTS / self.rate)
        accepted = sum(1 for t in self.successes if t > now - window)
        refused = sum(1 for t in self.refusals if t > now - window)
        # A young endpoint has less history than the window: do not count time before it.
        span = max(min(window, now - self.created), CUT_WINDOW)
        return accepted / span, (accepted + refused) / span

    def recent_peak(self, now: float) -> float:
        return self.peak * math.exp(-(now - self.peak_at) / PEAK_DECAY)

    def grown_rate(self, now: float) -> tuple[float, str]:
        """The rate after one more success while queued, and why."""
        # Growth follows the time between successes, so a burst of answers does not
        # compound, and stops when the answers stop.
        elapsed = min(now - self.grown_at, GROWTH_SLOTS / self.rate)
        if not self.learned:
            return self.rate * 2.0 ** (elapsed / SLOW_START_DOUBLING), "slow start"
        quiet = now - self.cut_at
        gain = min(PROBE_MAX_GAIN, PROBE_GAIN * math.exp(quiet / PROBE_ACCEL))
        # Crushed far below a recent peak (other clients took the share, then left):
        # climb back quickly instead of probing from the bottom.
        if quiet >= RECOVER_QUIET and self.rate < self.recent_peak(now) * RECOVER_SHARE:
            gain = max(gain, RECOVER_GAIN)
        return self.rate * (1.0 + gain * elapsed), "probing upward"


class RateController:
    """Learns and enforces a send rate per endpoint; thread-safe, clock-injectable.

    Args:
        clock: monotonic seconds from any origin; tests pass a fake clock.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self._clock = clock
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}

    # ------------------------------------------------------------------ slots

    def try_acquire(self, endpoint: str) -> float:
        """Take a send slot if one is free now.

        Returns ``0.0`` when a slot was taken: send now.  Otherwise nothing was taken and the
        value is how many seconds to sleep before asking again (it includes any
        ``Retry-After`` pause).  The first call on a fresh endpoint returns ``0.0``.
        """
        st = self._endpoints.get(endpoint)
        if st is not None and st.unpaced and not st.paused_until > self._clock():
            return 0.0  # the hot path of a service that never limited us: no lock, no bucket
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            slot = st.next_slot(now)
            if slot <= now + _EPS:
                st.take(now, now)
                return 0.0
            st.demand_at = now
            return slot - now

    def reserve(self, endpoint: str) -> float:
        """Reserve the next send slot for one request; return seconds to wait from now.

        ``0.0`` means send now.  The wait includes any ``Retry-After`` pause.  The caller
        sleeps that long, then sends.  The first reservation on a fresh endpoint is 0.0.
        """
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            slot = st.next_slot(now)
            st.take(now, slot)
            return max(0.0, slot - now)

    # --------------------------------------------------------------- outcomes

    def on_success(self, endpoint: str) -> None:
        """Record a success; while callers are queued, ramp the rate up."""
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            st.successes.append(now)
            st.last_success = now
            message = None
            if st.queued(now) and not st.unpaced:
                new, why = st.grown_rate(now)
                message = self._set_rate(st, endpoint, now, new, why, milestone=True)
            st.grown_at = now
        _log(message)

    def on_rate_limited(self, endpoint: str, retry_after: float | None) -> None:
        """Record a 429: honour ``Retry-After`` and cut the rate to what was accepted."""
        if retry_after is not None:
            _check_seconds("retry_after", retry_after)
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            st.rate_limited += 1
            st.refusals.append(now)
            if retry_after is not None:
                st.paused_until = max(st.paused_until, now + retry_after)
            if now < st.hold_until:
                return  # the rest of an overshoot the last cut already answered
            message = self._cut(st, endpoint, now)
        _log(message)

    def accepting(self, endpoint: str) -> bool:
        """True while the service still accepts some requests on this endpoint.

        A success within the recent window means a 429 is shaping ("slow down"): the caller
        re-queues the request without spending a retry.  False means refusal: 429s count
        against ``max_retries``.
        """
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            window = max(ACCEPT_WINDOW, ACCEPT_WINDOW_SLOTS / st.rate)
            return now - st.last_success <= window

    def pause_remaining(self, endpoint: str) -> float:
        """Seconds left of a ``Retry-After`` pause on this endpoint, 0.0 if none."""
        with self._lock:
            now = self._clock()
            return max(0.0, self._state(endpoint, now).paused_until - now)

    def record_wait(self, endpoint: str, seconds: float) -> None:
        """Add ``seconds`` a request spent waiting for this controller to its endpoint."""
        _check_seconds("seconds", seconds)
        with self._lock:
            self._state(endpoint, self._clock()).waited += seconds

    # ------------------------------------------------------------------- state

    def state(self) -> dict[str, EndpointRateState]:
        """A snapshot of every endpoint seen so far."""
        with self._lock:
            now = self._clock()
            return {
                name: EndpointRateState(
                    rate=st.rate if st.learned else None,
                    rate_limited=st.rate_limited,
                    waited=st.waited,
                    paused_until=st.paused_until if st.paused_until > now else None,
                    pace=st.rate,
                )
                for name, st in self._endpoints.items()
            }

    def reset(self) -> None:
        """Forget everything.

        Meant for a child process after ``fork``: the lock is replaced rather than taken,
        because a thread of the parent may have held it at the fork and never will release
        it in the child.
        """
        self._lock = threading.Lock()
        self._endpoints = {}

    # ---------------------------------------------------------------- helpers

    def _state(self, endpoint: str, now: float) -> _Endpoint:
        st = self._endpoints.get(endpoint)
        if st is None:
            if not isinstance(endpoint, str):
                raise TypeError(f"endpoint must be a str, got {type(endpoint).__name__}")
            if not endpoint:
                raise ValueError("endpoint must be a non-empty str")
            st = _Endpoint(rate=INITIAL_RATE, tokens=INITIAL_BURST, updated=now, created=now)
            st.grown_at = now
            self._endpoints[endpoint] = st
        st.refill(now)
        return st

    @classmethod
    def _cut(cls, st: _Endpoint, endpoint: str, now: float) -> str | None:
        """Drop the rate to what the service accepted recently, by at least 1 - CUT_KEEP."""
        accepted, answered = st.recent_rates(now)
        why = f"429, {accepted:.2f}/s accepted recently"
        if not st.queued(now):
            # Nobody was waiting, so the few answers measure our demand, not the limit (a
            # first call, a call after idling): stay just under what was actually sent.
            accepted = answered * CUT_KEEP
            why = f"429 with nobody queued, {answered:.2f}/s sent recently"
        # Slow-start rates overshoot by design, so only learned rates count as a peak.
        if st.learned and st.rate > st.recent_peak(now):
            st.peak, st.peak_at = st.rate, now
        # The service's bucket is empty now: no back-to-back burst until a slot accrues.
        st.tokens = min(st.tokens, 0.0)
        message = cls._set_rate(
            st, endpoint, now, min(accepted, st.rate * CUT_KEEP), why, milestone=False
        )
        st.learned = True
        st.cut_at = now
        st.hold_until = now + max(HOLD_OFF, HOLD_OFF_SLOTS / st.rate)
        return message

    @staticmethod
    def _set_rate(
        st: _Endpoint, endpoint: str, now: float, new: float, why: str, *, milestone: bool
    ) -> str | None:
        """Change the rate; return a log line for a cut, or when a ramp has moved 25 %."""
        st.refill(now)  # tokens so far accrued at the old rate
        old, st.rate = st.rate, min(MAX_RATE, max(MIN_RATE, new))
        st.unpaced = not st.learned and st.rate >= MAX_RATE
        st.tokens = min(st.tokens, st.burst)
        if milestone and abs(math.log(st.rate / st.logged_rate)) < _MILESTONE:
            return None
        before = st.logged_rate if milestone else old
        st.logged_rate = st.rate
        return f"Websim {endpoint}: rate {before:.2f}/s -> {st.rate:.2f}/s ({why})"


def _log(message: str | None) -> None:
    # Outside the lock: a slow log handler must not stall every caller of the client.
    if message is not None:
        logger.info(message)


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
