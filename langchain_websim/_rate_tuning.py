"""The adaptive rate control's constants, as one frozen object a client is given.

``RateController(tuning=RateTuning(...))`` takes it like the clock, so a test or a user can
change one constant for one client without touching module globals.  The defaults were
tuned with the discrete-event simulation in ``tests/unit_tests/_rate_sim.py`` and checked
against a real rate-limited server by ``benchmarks/goodput.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

__all__ = ["DEFAULT_TUNING", "Phase", "RateTuning"]


class Phase(enum.Enum):
    """Where an endpoint's pacing stands."""

    SLOW_START = "slow start"
    """Before the first 429: a window of requests goes at once, and the send budget grows
    (doubling in time, and with every success) until a 429 says where the limit is."""
    UNPACED = "unpaced"
    """The slow start saw ``unpaced_after`` successes or grew past ``unpaced_window`` with no
    429 (or 429s proved to be noise that slowing down does not reduce): requests go at
    once, with no lock and no bucket."""
    PACED = "paced"
    """After a 429 that slowing down answers: a token bucket at the learned rate, probing
    upward while callers are queued."""
    PAUSED = "paused"
    """A ``Retry-After`` holds every request to the endpoint until it passes (the phase
    underneath resumes afterwards)."""


@dataclass(frozen=True, slots=True)
class RateTuning:
    """Every constant of the rate control, in one place; see each field's note."""

    # -- first contact: cost nothing until a 429 comes
    initial_window: float = 2.0
    """Requests a fresh endpoint sends at once.  Small, because the budget doubles fast:
    several processes sharing one limit each send this many before any can hear a 429."""
    window_doubling: float = 0.02
    """Seconds per doubling of the slow start's send budget until the first answer comes.
    A rate limiter answers 429 long before a model answers, so silence is evidence that
    the service takes more; after the first answer the budget doubles no faster than that
    answer took to come."""
    success_credit: float = 1.0
    """Sends each success adds to the budget (one per answer; the budget also keeps
    doubling in time, once per round trip after the first answer)."""
    unpaced_window: float = 1000.0
    """A budget this large without a 429 ends the slow start: no pacing from then on."""
    unpaced_after: int = 16
    """So many successes with no 429 end the slow start as well.  A token-bucket limiter
    refuses as soon as its burst (and what refilled meanwhile) is spent, so this many
    accepted answers leave nothing for the ramp to find unless the burst is larger (the
    limits this was tuned against have bursts of 10; a larger one is met unpaced and cut
    at its first 429s, which are retried without spending a retry).  Against a fast
    service, the ramp is the one cost of the control: 8 rounds of two calls.  A new
    client's 2,000 calls, 50 at a time, to a local server took 1 % (HTTP) and 6 % (HTTPS)
    longer than with the control off, where 32 successes and calls let go one by one took
    5 % and 9 % longer (three runs each).  The simulation's targets hold from 12 to 128 and
    fail at 8."""

    # -- pacing after a 429
    min_rate: float = 0.2
    """Requests/s; a limited endpoint is never paced slower than this."""
    max_rate: float = 1000.0
    """Requests/s; pacing finer than an event loop can sleep is pointless."""
    burst: float = 2.0
    """Slots that may go back to back while paced (absorbs a waker's lateness)."""
    cut_keep: float = 0.9
    """A cut keeps at most this share of the rate."""
    cut_window: float = 0.5
    """Seconds of answers a cut measures the accepted rate over ..."""
    cut_window_slots: float = 5.0
    """... or this many slots at the current rate, if longer."""
    hold_off: float = 0.25
    """Seconds after a cut during which 429s do not cut again (one overshoot, one cut) ..."""
    hold_off_slots: float = 2.0
    """... or this many slots at the new rate, if longer."""
    first_cut_keep: float = 0.5
    """The first cut (leaving the slow start) keeps this share of what was accepted so far:
    those answers include the service's burst, which no steady pace gets again ..."""
    first_cut_answered: float = 0.5
    """... or of this share of the rate at which answers (429s too) came, if higher."""
    model_lag: float = 2.0
    """A first cut that saw only 429s is raised by the later successes of requests sent
    before it that took more than this many times as long as those 429s (a model held
    them: a limiter refuses at once, a model answers after seconds)."""
    relearn_doubling: float = 0.25
    """After the first cut (a guess from a burst's few answers), seconds per doubling of
    the rate while callers are queued, until the next 429 ..."""
    relearn_successes: float = 10.0
    """... and at most one doubling per this many successes (a slow pace grows slowly:
    several clients sharing a limit must not all double past it before a 429 can come)."""
    growth_slots: float = 2.0
    """One success credits at most this many slots of growth time."""
    probe_gain: float = 0.02
    """Relative rate increase per second right after a cut ..."""
    probe_accel: float = 3.0
    """... times e for every this many seconds without a cut ..."""
    probe_max_gain: float = 0.5
    """... up to this relative increase per second ..."""
    probe_step: float = 0.1
    """... plus this many requests/s per second (additive, so clients sharing a limit
    drift towards equal shares)."""
    recover_share: float = 0.5
    """Below this share of the recent peak rate ..."""
    recover_quiet: float = 2.0
    """... and this many seconds after a cut ..."""
    recover_gain: float = 0.7
    """... the rate grows at least this much per second."""
    peak_decay: float = 20.0
    """Seconds over which the recent peak rate fades by a factor e."""
    accept_window: float = 10.0
    """Seconds after a success during which a 429 means "slow down" (the call waits for a
    slot without spending a retry) ..."""
    accept_window_slots: float = 4.0
    """... or this many slots at the current rate, if longer."""
    demand_slots: float = 2.0
    """A caller kept waiting within this many slots means callers are queued."""

    # -- refusal noise: 429s that do not depend on our pace
    judge_answers: int = 30
    """Answers per window; the last two windows are compared to tell noise from a limit."""
    noise_slowdown: float = 0.9
    """The second window came at most this share of the first's pace (we slowed down; a
    limit we were over refuses nothing once we are under it, so a cut's 10 % tells) ..."""
    noise_keep: float = 0.75
    """... and its share of 429s is still above this share of the first's: slowing down
    did not help, the 429s are noise; they are retried without slowing down."""
    noise_rise: float = 2.0
    """... and not above this many times the first's: a share that rose as we slowed is a
    limit that dropped, which the cuts follow down (not noise)."""
    noise_z: float = 1.3
    """With full windows, a share counts as fallen (or risen) only if it also moved by more
    than this many standard deviations of chance: 30 answers at 10 % noise hold 3 +- 1.6
    429s, so the ratios alone kept calling noise a limit (N2).  Not more: a limit whose
    share halved over the same few answers must still count as one (S4)."""
    min_noise: float = 0.05
    """A share of 429s below this is never called noise (probing draws a few)."""
    max_noise: float = 0.5
    """A share of 429s above this is never taken for noise: it is a limit."""
    noise_margin: float = 0.15
    """Once noise is known, a 429 cuts only when the share of 429s since the last cut's
    hold-off is above the noise's by this much (the service also limits us now) ..."""
    noise_min_answers: float = 5.0
    """... that share counted over at least this many answers (two 429s right after a cut
    are not a share of 100 %)."""
    proven_span: float = 1.0
    """A 429 from a token bucket means its bucket is empty: what it accepts from then on
    comes at its rate (one token more at most).  The successes counted from a 429 to a later
    one, over at least this many seconds, prove a rate the service accepts.  Not longer:
    the noise must not have cut the pace before a rate is proven (2 s: N2 1.08 x ideal in
    the simulation instead of 1.02 x).  The successes are counted by when their requests
    were sent (a model answers seconds after a 429 came: those answers are to requests
    sent before it) ..."""
    proven_horizon: float = 5.0
    """... counted from the 429s of at most this many seconds ago."""
    under_proven: float = 0.85
    """Answers that come while we pace below this share of the proven rate (after a cut's
    hold-off) are weighed, and a 429 among them does not cut: a limit refuses none of
    them, noise its share.  Not closer to 1: the proven rate can be over the limit by one
    token per ``proven_span``."""
    limit_share: float = 0.02
    """The share of 429s a limit is taken to bring below its proven rate (a waker's lateness,
    another client taking a share) ..."""
    noise_share: float = 0.1
    """... and noise: each answer weighs the log-likelihood ratio of the two (a 429 +1.6, a
    success -0.09), so the weight grows while more than 5 % of the answers are 429s."""
    noise_evidence: float = 3.0
    """The weight at which 429s below the proven rate are called noise (odds of 20 to 1) ..."""
    noise_refusals: int = 4
    """... once at least this many 429s came among them: two or three 429s in a few answers
    are what a limit shared with other clients brings when one of them speeds up (S5)."""
    limit_refusals: int = 4
    """429s among ..."""
    limit_answers: int = 6
    """... the last this many answers, whatever the pace, are a limit refusing what we send
    beyond it (half at twice its rate), where 10 % of noise brings that 0.1 % of the time:
    the limit dropped below what it proved before (S4), which no longer counts."""

    # -- what is logged
    episode_quiet: float = 60.0
    """Seconds without a 429 that end a limiting episode; the next 429 starts a new one,
    announced at WARNING (everything else is logged at INFO)."""
    log_step: float = 1.25
    """Gradual ramps are logged each time they have moved the rate by this factor."""

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"RateTuning.{spec.name} must be a number, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"RateTuning.{spec.name} must be finite and > 0, got {value!r}")
        shares: tuple[str, ...] = ("cut_keep", "first_cut_keep")
        shares += ("noise_keep", "noise_margin", "noise_slowdown", "recover_share")
        shares += ("first_cut_answered", "under_proven", "limit_share", "noise_share")
        for name in (*shares, "min_noise", "max_noise"):
            if getattr(self, name) >= 1:
                raise ValueError(f"RateTuning.{name} must be < 1, got {getattr(self, name)!r}")
        if self.limit_share >= self.noise_share:
            raise ValueError("RateTuning.limit_share must be below noise_share")
        if self.min_rate > self.max_rate:
            raise ValueError("RateTuning.min_rate must not exceed max_rate")
        if self.initial_window < 1 or self.burst < 1:
            raise ValueError("RateTuning.initial_window and burst must be >= 1")


DEFAULT_TUNING = RateTuning()
