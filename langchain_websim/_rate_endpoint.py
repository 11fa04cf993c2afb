"""What the rate controller knows about one endpoint: its phase, its token bucket, the slow
start's budget, the answers it has seen (rates, shares of 429s, windows), the last cut and
the cuts being judged, the evidence weighed for noise, and a ``Retry-After`` pause.

Plain records with the small arithmetic that belongs to each; every decision (when to cut,
by how much, what is noise) is the controller's, in ``_rate`` and ``_rate_noise``.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

from langchain_websim._rate_tuning import Phase, RateTuning

__all__ = [
    "Answers",
    "Bucket",
    "Cut",
    "EndpointRateState",
    "EndpointState",
    "Evidence",
    "FirstGuess",
    "Pause",
    "Series",
    "SlowStart",
    "Window",
]

EPS = 1e-9  # float slack for a waker that arrives exactly at its slot
_SENT_KEPT = 4096  # successes' send times kept for the proven rate


@dataclass(frozen=True, slots=True)
class EndpointRateState:
    """A snapshot of what the controller knows about one endpoint.

    Attributes:
        rate: requests per second currently allowed; ``None`` while nothing has been learned
            (no 429 seen yet, or the 429s seen were noise that slowing down does not help).
        rate_limited: 429 answers seen on this endpoint.
        waited: total seconds requests reported waiting for the controller.
        paused_until: clock time until which a ``Retry-After`` pause holds, else ``None``.
        phase: slow start, unpaced, paced or paused.
        noise: the share of requests refused whatever our pace, once that has been noticed.
        pace: requests per second paced to now (``rate``, also while it is still a guess
            being doubled); ``None`` while nothing is paced.
    """

    rate: float | None
    rate_limited: int
    waited: float
    paused_until: float | None
    phase: Phase = Phase.SLOW_START
    noise: float | None = None
    pace: float | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """A ``Retry-After`` pause, on the controller's clock."""

    asked_at: float
    """When the answer that asked for it came."""
    asked: float
    """Seconds the service asked for."""
    until: float
    """When it ends: ``asked_at + min(asked, max_pause)``."""


@dataclass(slots=True)
class Bucket:
    """Paced sending: a token bucket refilled at ``rate``."""

    rate: float
    tokens: float  # slots available at ``updated``
    updated: float

    def refill(self, now: float, burst: float) -> None:
        if now > self.updated:
            self.tokens = min(burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, now: float, burst: float) -> float:
        """Seconds until a slot is free (0.0: now); tokens keep accruing meanwhile."""
        self.refill(now, burst)
        if self.tokens >= 1.0 - EPS:
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(slots=True)
class SlowStart:
    """Before the first 429: the budget of sends, doubling in time and growing with every
    success.  Until the first answer it doubles every ``window_doubling``; after it, no
    faster than that first answer took to come: a 429 takes as long as an answer, so
    doubling faster would send a second window before the first could be refused.  It
    never stops growing in time: sends that never answer (cancelled, timed out) must not
    hold the budget for good."""

    started: float = math.nan  # the first send
    sent: int = 0
    successes: int = 0
    first_answer: float = math.inf  # when the first answer (a success or a 429) came
    answers: int = 0  # successes and 429s since the first send

    def round_over(self) -> bool:
        """Whether every request let go so far has been answered.  Waiting calls are let go
        together when a round is over, not one per success: calls sent at once keep going
        in step with the service's answers for the rest of a batch, where calls let go one
        by one stay spread out and cost the client more loop turns per answer.  (A send
        that never answers, cancelled or failed, only defers the rest to the budget's
        growth in time.)"""
        return self.answers >= self.sent

    def wait(self, now: float, tune: RateTuning) -> float:
        """Seconds until the budget has room for one more send (0.0: now)."""
        if math.isnan(self.started):
            self.started = now
        needed = self.sent + 1 - tune.success_credit * self.successes
        if needed <= tune.initial_window:
            return 0.0
        doublings = math.log2(needed / tune.initial_window)
        silent = (self.first_answer - self.started) / tune.window_doubling
        if doublings <= silent:
            at = self.started + doublings * tune.window_doubling
        else:
            at = self.first_answer + (doublings - silent) * self._period(tune)
        return max(0.0, at - now)

    def budget(self, now: float, tune: RateTuning) -> float:
        doublings = (min(now, self.first_answer) - self.started) / tune.window_doubling
        if now > self.first_answer:
            doublings += (now - self.first_answer) / self._period(tune)
        grown: float = 2.0 ** min(64.0, doublings)
        return tune.initial_window * grown + tune.success_credit * self.successes

    def answered(self, now: float) -> None:
        self.first_answer = min(self.first_answer, now)
        self.answers += 1

    def _period(self, tune: RateTuning) -> float:
        """Seconds per doubling once answers come: the first answer's round trip, or more."""
        return max(tune.window_doubling, self.first_answer - self.started)


@dataclass(slots=True)
class Window:
    """A run of consecutive answers: how fast they came, and the share of 429s among them."""

    opened: float
    closed: float = math.nan
    answered: int = 0
    refused: int = 0

    def add(self, now: float, *, refused: bool) -> None:
        self.answered += 1
        self.refused += refused
        self.closed = now

    @property
    def pace(self) -> float:
        """Answers per second: while callers queue, the pace we sent at."""
        return self.answered / max(self.closed - self.opened, EPS)

    @property
    def share(self) -> float:
        return self.refused / self.answered


@dataclass(slots=True)
class Answers:
    """What the service answered lately: times of successes and 429s, and running counts.

    A success also records when its request was sent.  A model answers seconds after a
    limiter would have refused, so the successes that come after a 429 include requests
    sent before it; what the service accepted *since* a moment is counted by send time.
    """

    successes: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    refusals: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=256))  # True: a 429
    answered: int = 0
    refused: int = 0
    times: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    sent: list[float] = field(default_factory=list)
    """The send times of the last ``_SENT_KEPT`` successes at least, in order, from the
    first 429 on."""
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    """How long the last successes took, send to answer."""
    refusal_lags: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    """How long the last 429s took, send to answer."""

    def add(self, now: float, *, refused: bool, sent_at: float | None = None) -> None:
        """One answer at ``now`` to a request sent at ``sent_at`` (``None``: just now)."""
        (self.refusals if refused else self.successes).append(now)
        self.recent.append(refused)
        self.times.append(now)
        self.answered += 1
        self.refused += refused
        sent = now if sent_at is None else sent_at
        if refused:
            self.refusal_lags.append(now - sent)
            return
        self.lags.append(now - sent)
        if not self.refused:
            # Until a first 429 no send time is needed: the proven rate counts only what was
            # sent after a 429, and a success answered before one was sent before it.  So a
            # service that never refuses costs a list insertion less on every success.
            return
        bisect.insort(self.sent, sent)
        if len(self.sent) > 2 * _SENT_KEPT:
            # Trimmed in blocks: dropping the oldest one by one moved the whole list on
            # every success of a busy client.
            del self.sent[:_SENT_KEPT]

    def last(self, count: int) -> Window | None:
        """The last ``count`` answers as a window, or None with fewer than two."""
        times = list(self.times)[-count:]
        if len(times) < 2:
            return None
        tail = list(self.recent)[-len(times) :]
        return Window(times[0], times[-1], len(tail), sum(tail))

    def since(self, start: float, count: int) -> Window | None:
        """The last ``count`` answers that came after ``start``, or None with fewer than two."""
        times = [t for t in list(self.times)[-count:] if t > start]
        if len(times) < 2:
            return None
        tail = list(self.recent)[-len(times) :]
        return Window(times[0], times[-1], len(tail), sum(tail))

    def share(self, last: int) -> float:
        """The share of 429s among the last ``last`` answers (0.0 with none)."""
        tail = list(self.recent)[-last:]
        return sum(tail) / len(tail) if tail else 0.0

    def accepted_after_refusals(
        self, now: float, since: float, span: float, horizon: float
    ) -> float:
        """The highest rate of successes sent after a 429, over 429s that came after
        ``since`` and at most ``horizon`` seconds ago (0.0: none).

        Counted by send time up to the last moment whose requests have all been answered
        (now, less the longest a recent success took): requests sent before the 429 are
        not the rate it grants, and those sent in the last lag have not come back yet.
        The counting runs over at least ``span`` seconds."""
        end = now - max(self.lags, default=0.0)
        counted_to = bisect.bisect_right(self.sent, end)
        best = 0.0
        for refused_at in self.refusals:
            elapsed = end - refused_at
            if refused_at <= since or elapsed < span or now - refused_at > horizon:
                continue
            after = counted_to - bisect.bisect_right(self.sent, refused_at)
            best = max(best, after / elapsed)
        return best

    def rates(self, now: float, window: float, span: float) -> tuple[float, float]:
        """Per second over ``window`` (counted over ``span``): (accepted, all answers)."""
        accepted = sum(1 for t in self.successes if t > now - window)
        refused = sum(1 for t in self.refusals if t > now - window)
        return accepted / span, (accepted + refused) / span


@dataclass(slots=True)
class FirstGuess:
    """The first cut of a limiting episode, while the requests sent before it may still
    be with the model.  A limiter refuses at once and a model answers after seconds, so
    that cut sees the 429s and hardly any of the burst that was accepted; each of those
    answers that comes later raises the guess to what was really accepted."""

    at: float
    """When the cut came: an answer to a request sent before it belongs to the guess ..."""
    refused_within: float
    """... if it took clearly longer than the 429s before the cut took (the longest of
    them): one that came as fast was racing those 429s, not held by a model, and a cut
    with instant answers does not wait for such answers either (several clients starting
    apart, a busy server)."""
    accepted: int
    """Successes counted: those in the cut's window, then the late ones."""
    span: float
    """Seconds the cut counted them over."""


@dataclass(frozen=True, slots=True)
class Cut:
    """The last cut: when, and until when 429s belong to the same overshoot."""

    at: float
    hold_until: float


@dataclass(slots=True)
class Series:
    """Cuts in a row, judged as one: the answers just before the first, and those after its
    hold-off (whatever cuts followed).  Slowing down must lower the share of 429s."""

    rate_before: float
    hold_until: float
    before: Window | None
    after: Window | None = None

    def add(self, now: float, *, refused: bool) -> None:
        if now < self.hold_until:
            return  # answers to requests sent before the cut, mostly
        if self.after is None:
            self.after = Window(opened=now)
        self.after.add(now, refused=refused)


@dataclass(slots=True)
class Evidence:
    """The sequential test for noise: the rate the service proved it accepts, and what the
    answers that came while we paced clearly below it weigh, since the weight was last nil."""

    proven: float = 0.0
    """Requests/s the service accepted in the seconds after refusing us (0.0: not known)."""
    proven_since: float = -math.inf
    """429s before this time prove nothing any more (the limit dropped since)."""
    score: float = 0.0
    """The log-likelihood ratio of the answers weighed, noise against a limit; never below
    0 (a CUSUM: evidence for a limit clears the slate instead of piling up)."""
    refusals: int = 0
    """429s among the answers weighed since the score was last 0."""
    since: Window | None = None
    """Every answer since the first of those, weighed or not (noise refuses its share in a
    cut's hold-off too, where the answers are not weighed): the share of 429s it brings."""
    last: deque[bool] = field(default_factory=lambda: deque(maxlen=64))
    """The last answers, weighed or not (True: a 429)."""

    def note(self, now: float, *, refused: bool) -> None:
        """Count one answer, weighed or not."""
        self.last.append(refused)
        if self.since is not None:
            self.since.add(now, refused=refused)

    def add(self, now: float, *, refused: bool, weight: float) -> None:
        """Weigh the answer just noted (``weight``: its log-likelihood ratio)."""
        if self.since is None:
            self.since = Window(opened=now)
            self.since.add(now, refused=refused)
        self.score += weight
        self.refusals += refused
        if self.score <= 0.0:
            self.clear()

    def clear(self) -> None:
        """Forget the answers weighed."""
        self.score = 0.0
        self.refusals = 0
        self.since = None

    def void(self, now: float) -> None:
        """Forget the proven rate as well: only 429s after ``now`` prove one again."""
        self.proven = 0.0
        self.proven_since = now
        self.clear()


@dataclass(slots=True)
class EndpointState:
    """Everything the controller knows about one endpoint."""

    created: float
    phase: Phase = Phase.SLOW_START  # never PAUSED: a pause is kept apart, in ``pause``
    slow_start: SlowStart = field(default_factory=SlowStart)
    bucket: Bucket | None = None  # while paced
    answers: Answers = field(default_factory=Answers)
    cut: Cut | None = None
    first_guess: FirstGuess | None = None  # the episode's first cut, raised by late answers
    series: Series | None = None  # the cuts being judged
    evidence: Evidence = field(default_factory=Evidence)  # the sequential test for noise
    pause: Pause | None = None
    noise: float | None = None  # the share of 429s that comes whatever our pace
    relearning: bool = False  # the rate is a guess: double it while queued until a 429
    demand_at: float = -math.inf  # last time a caller had to wait for a slot
    grown_at: float = -math.inf
    last_success: float = -math.inf
    last_refusal: float = -math.inf
    warned: bool = False  # this limiting episode was announced at WARNING
    rate_limited: int = 0
    waited: float = 0.0
    logged_rate: float = 0.0
    peak: float = 0.0  # highest paced rate a cut came from, fading with peak_decay ...
    peak_at: float = 0.0  # ... since this clock time

    @property
    def rate(self) -> float | None:
        return None if self.bucket is None else self.bucket.rate

    def paused(self, now: float) -> bool:
        return self.pause is not None and self.pause.until > now

    def current_phase(self, now: float) -> Phase:
        return Phase.PAUSED if self.paused(now) else self.phase
