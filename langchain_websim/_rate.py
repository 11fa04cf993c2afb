"""Adaptive client-side pacing for Websim's unpublished, per-endpoint rate limits.

Websim answers ``429 Rate limit exceeded`` (sometimes with ``Retry-After``) when called too
fast, and its limit differs per endpoint and over time.  One :class:`RateController` per
client learns, for each endpoint, how fast the service accepts requests, and spaces sends
to match once it has to, so a batch of concurrent calls runs at the service's pace instead
of bouncing off it.

The controller is pure and synchronous (no sleeping, no I/O): callers ask it for a send slot
(:meth:`RateController.try_acquire`), sleep themselves, send, and report the outcome.  One
lock guards all state, so one controller can serve every event loop and thread of a client.

Each endpoint is in one :class:`~langchain_websim._rate_tuning.Phase`:

* **slow start** (a fresh endpoint): ``initial_window`` requests go at once and the send
  budget doubles every ``window_doubling`` seconds until the first answer comes, then
  no faster than that answer took to come, and each answer lets one more request go,
  until a 429 comes.  Waiting calls go in rounds: when every request let go so far has
  been answered, all that the budget allows go together (calls let go one by one stay
  out of step for the rest of a batch and cost the client more loop turns per answer).
  A rate limiter answers long before a model does, so silence is evidence that the
  service takes more, and once answers come they clock the growth: several clients
  sharing a limit overshoot it by one round trip's sends, not by a doubling every 20 ms.
  A service that never limits us is never paced for longer than the ramp (a fraction of
  a second).  A lone 429 is weak evidence (cutting on random refusals would leave a tiny
  first guess): two in a row, as a limit whose burst ran out answers, or one with
  ``Retry-After``, end the slow start;
* **unpaced**: ``unpaced_after`` answers came back accepted with no 429, or the budget
  passed ``unpaced_window`` without one: no pacing at all (no lock, no bucket) until a
  429 comes; a round's end is where this is decided, so the calls still waiting then
  all go at once;
* **paced**: the 429 that ends the slow start leaves a guess (half of what was accepted
  so far, a burst included, or of half the rate answers came at, if higher), doubled
  while callers queue until the next 429 measures the limit at a steady pace.  A guess
  made of 429s alone (a model still holds the burst it accepted: a limiter refuses at
  once, a model answers after seconds) is raised by the answers to requests sent before
  it as they come.  Then a
  429 cuts the rate to what the service accepted recently (at least by ``1 - cut_keep``;
  one overshoot cuts once); while callers are queued the rate probes upward, faster the
  longer no 429 comes (and by a fixed step as well, so clients sharing a limit drift
  towards equal shares), and a rate crushed far below its recent peak climbs back
  quickly.  429s may be noise that does not depend on our pace (a limit shared with
  others, upstream trouble), told apart in ``_rate_noise`` by what slowing down does: a
  limit that refused us has proved, by what it accepted of the requests sent in the next
  seconds (counted by send time: answers lag a model's time behind), a rate below which
  it refuses nothing, so a 429 that comes while we pace clearly below it does not
  cut, and such 429s are noise as soon as they weigh enough (a sequential test); and a
  series of cuts is judged
  on the ``judge_answers`` answers after the first one's hold-off: if we slowed down and
  the share of 429s did not fall (nor rise more than ``noise_rise`` times: that is a
  limit that dropped), by more than chance moves a share over so few answers, they are
  noise too.  Then the rate goes back up, and later 429s cut only when their share since
  the last cut rises clearly above the noise's;
* **paused**: a ``Retry-After`` holds every request to the endpoint until it passes (for
  at most ``max_pause`` seconds, the client's ``rate_limit_deadline``).

The first cut of a limiting episode is logged at WARNING (endpoint, the pace now, that
calls wait rather than fail); every other change at INFO.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from langchain_websim._rate_endpoint import (
    Bucket,
    Cut,
    EndpointRateState,
    EndpointState,
    FirstGuess,
    Pause,
    Series,
    Window,
)
from langchain_websim._rate_noise import above_noise, below_proven, evident, verdict, weigh
from langchain_websim._rate_tuning import DEFAULT_TUNING, Phase, RateTuning

logger = logging.getLogger("langchain_websim")

__all__ = ["EndpointRateState", "Pause", "Phase", "RateController", "RateTuning"]


class RateController:
    """Learns and enforces a send rate per endpoint; thread-safe, clock-injectable.

    Args:
        clock: monotonic seconds from any origin; tests pass a fake clock.
        tuning: the constants (:class:`RateTuning`); the defaults suit Websim.
        max_pause: the longest a ``Retry-After`` pause is remembered (the client's
            ``rate_limit_deadline``): one answer cannot shut an endpoint for longer.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        tuning: RateTuning = DEFAULT_TUNING,
        max_pause: float = 600.0,
    ) -> None:
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        if not isinstance(tuning, RateTuning):
            raise TypeError(f"tuning must be a RateTuning, got {tuning!r}")
        _check_seconds("max_pause", max_pause)
        self._clock = clock
        self.tuning = tuning
        self.max_pause = float(max_pause)
        self._lock = threading.Lock()
        self._endpoints: dict[str, EndpointState] = {}

    # ------------------------------------------------------------------ slots

    def unpaced(self, endpoint: str) -> bool:
        """True while sends to ``endpoint`` need no slot (unpaced, no pause): the send loop
        skips the slot queue altogether.  No lock: one look-up, on every call."""
        st = self._endpoints.get(endpoint)
        return st is not None and st.phase is Phase.UNPACED and st.pause is None

    def try_acquire(self, endpoint: str) -> float:
        """Take a send slot if one is free now.

        Returns ``0.0`` when a slot was taken: send now.  Otherwise nothing was taken and the
        value is how many seconds to sleep before asking again (it includes any
        ``Retry-After`` pause).  The first calls on a fresh endpoint return ``0.0``.
        """
        if self.unpaced(endpoint):
            return 0.0  # the hot path of a service that does not limit us: no lock at all
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            if st.paused(now):
                assert st.pause is not None
                st.demand_at = now
                return st.pause.until - now
            st.pause = None  # over: the unpaced hot path may skip the check again
            wait = self._slot_wait(st, now)
            if wait > 0.0:
                st.demand_at = now
                return wait
            self._take(st, now)
            return 0.0

    # --------------------------------------------------------------- outcomes

    def on_success(self, endpoint: str, sent_at: float | None = None) -> bool:
        """Record a success; while callers are queued, ramp the rate up.

        ``sent_at``: when its request was sent, on this controller's clock (:meth:`now`);
        ``None``: just now.  Returns True when the success ended a round of the slow start
        (every request it let go has been answered): the callers waiting for a slot may go
        now, together.
        """
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            sent = _sent_time(sent_at, now)
            self._answered(st, now, sent, refused=False)
            st.last_success = now
            message = None
            room = st.phase is Phase.SLOW_START
            if room:
                st.slow_start.successes += 1
                room = st.slow_start.round_over()
            elif st.phase is Phase.PACED and self._late_for_guess(st, now, sent):
                message = self._raise_guess(st, endpoint, now)
            elif st.phase is Phase.PACED and self._queued(st, now):
                message = self._grow(st, endpoint, now)
            st.grown_at = now
        _log(logging.INFO, message)
        return room

    def on_rate_limited(
        self, endpoint: str, retry_after: float | None, sent_at: float | None = None
    ) -> None:
        """Record a 429: honour ``Retry-After`` and, unless it is noise, cut the rate.
        ``sent_at`` as for :meth:`on_success`."""
        if retry_after is not None:
            _check_seconds("retry_after", retry_after)
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            if now - st.last_refusal > self.tuning.episode_quiet:
                st.warned = False  # a quiet spell ended the last limiting episode
            st.rate_limited += 1
            st.last_refusal = now
            self._answered(st, now, _sent_time(sent_at, now), refused=True)
            if retry_after is not None:
                self._start_pause(st, now, retry_after)
            level, message = self._on_refusal(st, endpoint, now, retry_after is not None)
            if message is not None and not st.warned:
                level = logging.WARNING  # the first change of an episode: said once
                st.warned = True
        _log(level, message)

    def accepting(self, endpoint: str) -> bool:
        """True while the service still accepts some requests on this endpoint.

        A success within the recent window means a 429 is shaping ("slow down"): the caller
        re-queues the request without spending a retry.  False means refusal: 429s count
        against ``max_retries``.
        """
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            tune = self.tuning
            window = tune.accept_window
            if st.bucket is not None:
                window = max(window, tune.accept_window_slots / st.bucket.rate)
            return now - st.last_success <= window

    def pause(self, endpoint: str) -> Pause | None:
        """The ``Retry-After`` pause holding this endpoint now, if any."""
        with self._lock:
            now = self._clock()
            st = self._state(endpoint, now)
            return st.pause if st.paused(now) else None

    def pause_remaining(self, endpoint: str) -> float:
        """Seconds left of a ``Retry-After`` pause on this endpoint, 0.0 if none."""
        pause = self.pause(endpoint)
        return 0.0 if pause is None else max(0.0, pause.until - self._clock())

    def record_wait(self, endpoint: str, seconds: float) -> None:
        """Add ``seconds`` a request spent waiting for this controller to its endpoint."""
        _check_seconds("seconds", seconds)
        with self._lock:
            self._state(endpoint, self._clock()).waited += seconds

    def now(self) -> float:
        """The controller's clock (pauses are on it)."""
        return self._clock()

    # ------------------------------------------------------------------- state

    def state(self) -> dict[str, EndpointRateState]:
        """A snapshot of every endpoint seen so far."""
        with self._lock:
            now = self._clock()
            return {
                name: EndpointRateState(
                    rate=st.rate if st.phase is Phase.PACED else None,
                    rate_limited=st.rate_limited,
                    waited=st.waited,
                    paused_until=st.pause.until if st.pause and st.paused(now) else None,
                    phase=st.current_phase(now),
                    noise=st.noise,
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

    # ------------------------------------------------------------ the phases

    def _state(self, endpoint: str, now: float) -> EndpointState:
        st = self._endpoints.get(endpoint)
        if st is None:
            if not isinstance(endpoint, str):
                raise TypeError(f"endpoint must be a str, got {type(endpoint).__name__}")
            if not endpoint:
                raise ValueError("endpoint must be a non-empty str")
            st = self._endpoints[endpoint] = EndpointState(created=now, grown_at=now)
        return st

    def _slot_wait(self, st: EndpointState, now: float) -> float:
        """Seconds until the phase allows the next send (0.0: now)."""
        if st.phase is Phase.SLOW_START:
            if st.slow_start.sent and self._unlimited(st, now):
                st.phase = Phase.UNPACED
                return 0.0
            return st.slow_start.wait(now, self.tuning)
        if st.phase is Phase.PACED:
            assert st.bucket is not None
            return st.bucket.wait(now, self.tuning.burst)
        return 0.0

    def _unlimited(self, st: EndpointState, now: float) -> bool:
        """Whether the slow start has seen enough to stop pacing: its budget grew past
        ``unpaced_window``, or ``unpaced_after`` answers came back accepted with no 429
        (a limiter refuses as soon as its burst is spent: that many answers without a
        refusal leave nothing for a slow start to find, and a ramp that kept doubling
        only in time would keep a fast service waiting)."""
        tune = self.tuning
        if st.answers.refused == 0 and st.slow_start.successes >= tune.unpaced_after:
            return True
        return st.slow_start.budget(now, tune) >= tune.unpaced_window

    def _take(self, st: EndpointState, now: float) -> None:
        if st.phase is Phase.SLOW_START:
            st.slow_start.sent += 1
        elif st.bucket is not None and st.phase is Phase.PACED:
            st.bucket.tokens -= 1.0

    def _queued(self, st: EndpointState, now: float) -> bool:
        rate = st.rate or self.tuning.max_rate
        return now - st.demand_at <= self.tuning.demand_slots / rate

    def _start_pause(self, st: EndpointState, now: float, retry_after: float) -> None:
        # A ceiling: one answer (Retry-After: 1e308, a date in year 9999) must not shut the
        # endpoint for the life of the process.  After it, calls are sent again, and a new
        # Retry-After starts a new pause.
        until = now + min(retry_after, self.max_pause)
        if st.pause is None or not st.paused(now) or until > st.pause.until:
            st.pause = Pause(asked_at=now, asked=retry_after, until=until)

    def _answered(self, st: EndpointState, now: float, sent: float, *, refused: bool) -> None:
        st.answers.add(now, refused=refused, sent_at=sent)
        st.slow_start.answered(now)
        if st.series is not None:
            st.series.add(now, refused=refused)
        weigh(st, now, self.tuning, refused=refused)

    def _on_refusal(
        self, st: EndpointState, endpoint: str, now: float, told: bool
    ) -> tuple[int, str | None]:
        """What a 429 does to the rate: a cut, nothing (hold-off, noise, below the proven
        rate), or the verdict that the 429s are noise, from the sequential test or the
        series' (``told``: it came with a ``Retry-After``).  Returns the log level and
        line."""
        if st.phase is Phase.SLOW_START and not told and self._weak(st):
            return logging.INFO, None  # maybe noise: the next 429s decide
        if st.phase is Phase.PACED:
            if st.cut is not None and now < st.cut.hold_until:
                return logging.INFO, None  # the rest of an overshoot the cut already answered
            noise = evident(st, self.tuning)
            if noise is not None:
                st.series = None
                why = "429s kept coming below the rate the service accepted after refusing us"
                return logging.INFO, self._call_it_noise(st, endpoint, now, noise, why)
            judged = verdict(st, self.tuning)
            if judged is not None:
                st.series = None
                if judged.answered:
                    why = "slowing down did not reduce the share of 429s"
                    return logging.INFO, self._call_it_noise(st, endpoint, now, judged, why)
            if st.noise is not None and not above_noise(st, self.tuning):
                return logging.INFO, None  # as many 429s as the noise brings anyway
            if st.noise is None and below_proven(st, now, self.tuning):
                return logging.INFO, None  # a limit refuses nothing here: weighed, not cut
        return logging.INFO, self._cut(st, endpoint, now)

    def _weak(self, st: EndpointState) -> bool:
        """Whether a 429 in the slow start is too weak to cut on: one that did not follow
        another 429 is.  A limit whose burst ran out refuses every request the slow start
        sends beyond it, so its 429s come in a row; random refusals come one at a time,
        and cutting on the second of them, a few answers in, would leave a tiny first
        guess.  (A 429 with ``Retry-After`` is never weak: the service said it limits us.)
        The slow start stopped growing in time at the first answer."""
        recent = st.answers.recent
        return len(recent) < 2 or not recent[-2]

    def _call_it_noise(
        self, st: EndpointState, endpoint: str, now: float, after: Window, why: str
    ) -> str:
        """Slowing down did not stop the 429s (``why``, in words): they come whatever our
        pace.  Stop cutting for them and go back up."""
        assert st.bucket is not None
        st.noise = after.share
        # The pace at which what got through would have got through with the noise alone;
        # from there back up fast (doubling while queued), not at once: a limit shared with
        # others looks the same for a while, and going unpaced into it brings a storm.
        self._set_rate(st, now, st.bucket.rate / (1.0 - st.noise))
        st.relearning = True
        return (
            f"Websim {endpoint}: {why} ({100 * st.noise:.0f} %): they do not depend on "
            f"our pace; pace back to "
            f"{st.bucket.rate:.2f}/s and doubling while calls queue; such 429s are retried "
            "without slowing down"
        )

    def _cut(self, st: EndpointState, endpoint: str, now: float) -> str:
        """Drop the rate to what the service accepted recently, by at least 1 - cut_keep."""
        tune = self.tuning
        before_phase = st.phase
        before = st.rate if st.phase is Phase.PACED and st.rate else tune.max_rate
        window = max(tune.cut_window, tune.cut_window_slots / before)
        # A young endpoint has less history than the window: do not count time before it.
        span = max(min(window, now - st.created), tune.cut_window)
        accepted, answered = st.answers.rates(now, window, span)
        why = f"429, {accepted:.2f}/s accepted recently"
        if before_phase is not Phase.PACED:
            # A burst's first answers: a guess (relearning then doubles it while callers
            # queue).  What was accepted so far includes the service's burst: halve it, as
            # TCP halves its window at the first loss.  Not below a share of the rate the
            # answers came at: a fleet member whose first answers were all refused (the
            # others took the burst) starts from a pace, not from the floor.
            floor = answered * tune.first_cut_answered
            if accepted == 0.0:
                # Nothing accepted came back yet, only 429s: a model may still have the
                # burst the service accepted; its answers will raise this guess.
                lag = max(st.answers.refusal_lags, default=0.0)
                st.first_guess = FirstGuess(now, lag, accepted=0, span=span)
            accepted = max(accepted, floor) * tune.first_cut_keep
        if st.noise is not None:
            # Noise refuses its share at any pace: the pace that got ``accepted`` through.
            accepted /= 1.0 - min(st.noise, 0.9)
        if before_phase is Phase.PACED and not self._queued(st, now):
            # Nobody was waiting, so the few answers measure our demand, not the limit (a
            # first call, a call after idling): stay just under what was actually sent.
            accepted = answered * tune.cut_keep
            why = f"429 with nobody queued, {answered:.2f}/s sent recently"
        if before_phase is Phase.PACED and before > self._recent_peak(st, now):
            st.peak = before
            st.peak_at = now
        st.relearning = before_phase is not Phase.PACED
        self._set_rate(st, now, min(accepted, before * tune.cut_keep))
        assert st.bucket is not None
        # The service's bucket is empty now: no back-to-back burst until a slot accrues.
        st.bucket.tokens = min(st.bucket.tokens, 0.0)
        hold_until = now + max(tune.hold_off, tune.hold_off_slots / st.bucket.rate)
        st.cut = Cut(at=now, hold_until=hold_until)
        if st.series is None and before_phase is Phase.PACED:
            before_window = st.answers.last(tune.judge_answers)
            st.series = Series(before, hold_until, before_window)
        old = "no pacing" if before_phase is not Phase.PACED else f"{before:.2f}/s"
        return (
            f"Websim {endpoint}: the service is limiting our rate ({why}); pace "
            f"{old} -> {st.bucket.rate:.2f}/s; calls wait for a send slot (up to "
            f"rate_limit_deadline, {self.max_pause:g} s) instead of failing"
        )

    def _grow(self, st: EndpointState, endpoint: str, now: float) -> str | None:
        """Probe upward after one more success while queued; a log line per 25 % moved."""
        tune = self.tuning
        assert st.bucket is not None
        rate = st.bucket.rate
        # Growth follows the time between successes, so a burst of answers does not
        # compound, and stops when the answers stop.
        elapsed = min(now - st.grown_at, tune.growth_slots / rate)
        if st.relearning:
            # The first cut guessed from a burst's few answers: keep doubling (in time, while
            # queued) until the next 429 measures the limit at a steady pace.
            doubling = min(elapsed / tune.relearn_doubling, 1.0 / tune.relearn_successes)
            self._set_rate(st, now, rate * 2.0**doubling)
        else:
            # Relative growth finds a higher limit fast; the additive step lets several
            # clients sharing one limit drift towards equal shares (AIMD), so none is left
            # with most of its calls when the others are done.
            grown = rate * (1.0 + self._probe_gain(st, now) * elapsed)
            self._set_rate(st, now, grown + tune.probe_step * elapsed)
        new = st.bucket.rate
        if new >= tune.max_rate:
            st.phase = Phase.UNPACED  # as fast as pacing can tell: stop pacing
            st.bucket = None
            return f"Websim {endpoint}: pace {st.logged_rate:.2f}/s -> no pacing"
        if abs(math.log(new / st.logged_rate)) < math.log(tune.log_step):
            return None
        before = st.logged_rate
        st.logged_rate = new
        return f"Websim {endpoint}: pace {before:.2f}/s -> {new:.2f}/s (probing upward)"

    def _late_for_guess(self, st: EndpointState, now: float, sent: float) -> bool:
        """Whether a success answers a request sent before the episode's first cut, with no
        other cut since, and took clearly longer than the 429s did: one the limiter
        accepted and a model held until now."""
        guess = st.first_guess
        if guess is None or st.cut is None or st.cut.at != guess.at:
            return False
        return sent < guess.at and now - sent > self.tuning.model_lag * guess.refused_within

    def _raise_guess(self, st: EndpointState, endpoint: str, now: float) -> str | None:
        """Count a late success into the first guess; pace at least at what it now says."""
        guess = st.first_guess
        assert guess is not None and st.bucket is not None
        guess.accepted += 1
        rate = guess.accepted / guess.span * self.tuning.first_cut_keep
        if rate <= st.bucket.rate:
            return None
        before = st.bucket.rate
        self._set_rate(st, now, rate)
        st.logged_rate = st.bucket.rate
        return (
            f"Websim {endpoint}: pace {before:.2f}/s -> {st.bucket.rate:.2f}/s (answers to "
            "requests sent before the first 429 came late: the service accepted more)"
        )

    def _probe_gain(self, st: EndpointState, now: float) -> float:
        """Relative growth per second: slow right after a cut, faster the longer none came."""
        tune = self.tuning
        quiet = now - (st.cut.at if st.cut else st.created)
        gain = min(tune.probe_max_gain, tune.probe_gain * math.exp(quiet / tune.probe_accel))
        # Crushed far below a recent peak (other clients took the share, then left):
        # climb back quickly instead of probing from the bottom.
        assert st.bucket is not None
        crushed = st.bucket.rate < self._recent_peak(st, now) * tune.recover_share
        if quiet >= tune.recover_quiet and crushed:
            gain = max(gain, tune.recover_gain)
        return gain

    def _set_rate(self, st: EndpointState, now: float, rate: float) -> None:
        tune = self.tuning
        rate = min(tune.max_rate, max(tune.min_rate, rate))
        if st.bucket is None:
            st.bucket = Bucket(rate=rate, tokens=0.0, updated=now)
            st.logged_rate = rate
        else:
            st.bucket.refill(now, tune.burst)  # tokens so far accrued at the old rate
            st.bucket.rate = rate
        st.phase = Phase.PACED

    def _recent_peak(self, st: EndpointState, now: float) -> float:
        return st.peak * math.exp(-(now - st.peak_at) / self.tuning.peak_decay)


def _sent_time(sent_at: float | None, now: float) -> float:
    """When an answered request was sent: ``now`` when the caller did not say, and never
    after its answer (a clock read out of order)."""
    return now if sent_at is None else min(sent_at, now)


def _log(level: int, message: str | None) -> None:
    # Outside the lock: a slow log handler must not stall every caller of the client.
    if message is not None:
        logger.log(level, message)


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
