"""Telling 429s that come whatever our pace (noise) from a limit's, for the rate controller.

A limit refuses less when it is asked less; noise (a limit shared with others, upstream
trouble) refuses its share at any pace.  Two tests tell them apart, and either gives the
verdict:

* the **sequential test** (:func:`weigh`, :func:`evident`): a token bucket that refuses us
  has just emptied, so what it accepts from that 429 on comes at its rate: the successes
  counted over the next second or more prove a rate it grants.  Paced clearly below that
  (:func:`below_proven`), a limit refuses nothing, while noise keeps refusing its share,
  so a 429 there does not cut the pace: it is weighed.  Each answer that comes there adds
  its log-likelihood ratio (noise against a limit) to a running score that never drops
  below 0 (a CUSUM), and a score high enough over a few 429s is the verdict: seconds
  after the first cuts, where the series verdict waits for 30 answers after them and is
  often spoilt by the overshoot before them; meanwhile the pace stays near the proven
  rate instead of being cut down by every random 429.  Most of the last few answers
  refused is a limit well below our pace: one that dropped below what it proved (S4),
  which then proves nothing any more;
* the **series verdict** (:func:`verdict`): after a series of cuts, the answers just before
  the first are compared with those after its hold-off: a share of 429s that did not fall
  although we slowed down clearly is noise.

Once noise is known, :func:`above_noise` tells when 429s come clearly more often than it
brings them (the service limits us as well).  Every function reads and updates one
endpoint's state; the controller holds the lock.
"""

from __future__ import annotations

import itertools
import math

from langchain_websim._rate_endpoint import EndpointState, Window
from langchain_websim._rate_tuning import Phase, RateTuning

__all__ = ["above_noise", "below_proven", "evident", "verdict", "weigh"]


def weigh(st: EndpointState, now: float, tune: RateTuning, *, refused: bool) -> None:
    """Add one answer to the sequential test (paced, while noise is not known)."""
    if st.noise is not None or st.phase is not Phase.PACED:
        return
    evidence = st.evidence
    if refused:
        proven = st.answers.accepted_after_refusals(
            now, evidence.proven_since, tune.proven_span, tune.proven_horizon
        )
        evidence.proven = max(evidence.proven, proven)
    evidence.note(now, refused=refused)
    if sum(itertools.islice(reversed(evidence.last), tune.limit_answers)) >= tune.limit_refusals:
        evidence.void(now)
        return
    if below_proven(st, now, tune):
        evidence.add(now, refused=refused, weight=_weight(tune, refused=refused))


def evident(st: EndpointState, tune: RateTuning) -> Window | None:
    """The answers since the evidence began, once they show noise: weight enough, enough
    429s among those weighed, and a share of 429s that noise can have; else None."""
    evidence = st.evidence
    if st.noise is not None or evidence.since is None:
        return None
    if evidence.score < tune.noise_evidence or evidence.refusals < tune.noise_refusals:
        return None
    share = evidence.since.share
    return evidence.since if tune.min_noise <= share <= tune.max_noise else None


def verdict(st: EndpointState, tune: RateTuning) -> Window | None:
    """The cuts since the series began, once enough answers came after them: the window
    after them if they did not lower the share of 429s although we slowed down clearly
    (noise: a limit refuses less when asked less), an empty window if they did; None while
    too few answers came."""
    series = st.series
    if series is None or series.after is None or series.after.answered < tune.judge_answers:
        return None
    after, before = series.after, series.before
    if st.noise is not None or before is None or st.bucket is None:
        return Window(opened=after.opened)
    slowed = after.pace <= tune.noise_slowdown * before.pace
    # Noise refuses the same share at any pace; a share that rose as we slowed is a
    # limit that dropped (S4), which the cuts follow down.
    fell = after.share < tune.noise_keep * before.share
    rose = after.share > tune.noise_rise * before.share
    if before.answered >= tune.judge_answers:
        # A share over 30 answers is 3 +- 1.6 429s at 10 % noise: halving or doubling
        # counts only when it is larger than chance.  A shorter window before (the
        # first cut came early) keeps the plain ratios: too few answers to weigh.
        chance = tune.noise_z * _spread(before, after)
        fell = fell and before.share - after.share > chance
        rose = rose and after.share - before.share > chance
    noise = slowed and not fell and not rose
    noise = noise and tune.min_noise <= after.share <= tune.max_noise
    return after if noise else Window(opened=after.opened)


def above_noise(st: EndpointState, tune: RateTuning) -> bool:
    """Whether 429s come clearly more often than the noise brings them, counted since
    the last cut's hold-off: the answers before it hold the overshoot the cut already
    answered, and counting them cut again on every random 429 that followed."""
    assert st.noise is not None
    start = st.cut.hold_until if st.cut is not None else -math.inf
    since = st.answers.since(start, tune.judge_answers)
    if since is None:
        return False  # a lone 429 since: not a share
    share = since.refused / max(since.answered, tune.noise_min_answers)
    return share > st.noise + tune.noise_margin


def below_proven(st: EndpointState, now: float, tune: RateTuning) -> bool:
    """Whether an answer now tells noise from a limit: past the last cut's hold-off (the
    answers before it are to requests sent at the old pace) and paced clearly below the
    proven rate, where a limit refuses nothing (so a 429 here is weighed, not cut for)."""
    if st.cut is None or now < st.cut.hold_until or st.bucket is None:
        return False
    return st.bucket.rate <= tune.under_proven * st.evidence.proven


def _weight(tune: RateTuning, *, refused: bool) -> float:
    """An answer's log-likelihood ratio: noise refusing ``noise_share`` of the answers
    against a limit refusing ``limit_share`` of them."""
    if refused:
        return math.log(tune.noise_share / tune.limit_share)
    return math.log((1.0 - tune.noise_share) / (1.0 - tune.limit_share))


def _spread(first: Window, second: Window) -> float:
    """The standard deviation of the difference of two windows' shares of 429s if both
    came from one share (the pooled one): how far apart chance alone puts them."""
    pooled = (first.refused + second.refused) / (first.answered + second.answered)
    return math.sqrt(pooled * (1.0 - pooled) * (1.0 / first.answered + 1.0 / second.answered))
