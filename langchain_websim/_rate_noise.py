"""Telling 429s that come whatever our pace (noise) from a limit's, for the rate controller.

A limit refuses less when it is asked less; noise (a limit shared with others, upstream
trouble) refuses its share at any pace.  After a series of cuts, the answers just before
the first are compared with those after its hold-off (:func:`verdict`): a share of 429s
that did not fall although we slowed down clearly is noise.

Once noise is known, :func:`above_noise` tells when 429s come clearly more often than it
brings them (the service limits us as well).  Every function reads one endpoint's state;
the controller holds the lock.
"""

from __future__ import annotations

import math

from langchain_websim._rate_endpoint import EndpointState, Window
from langchain_websim._rate_tuning import RateTuning

__all__ = ["above_noise", "verdict"]


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


def _spread(first: Window, second: Window) -> float:
    """The standard deviation of the difference of two windows' shares of 429s if both
    came from one share (the pooled one): how far apart chance alone puts them."""
    pooled = (first.refused + second.refused) / (first.answered + second.answered)
    return math.sqrt(pooled * (1.0 - pooled) * (1.0 / first.answered + 1.0 / second.answered))
