"""The adaptive rate controller's arithmetic, driven by a fake clock.

Scenario-level behaviour (goodput, 429 share, several clients sharing a limit) is checked in
test_rate_simulation.py.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable

import pytest

from langchain_websim import _rate, _rate_noise
from langchain_websim._rate import EndpointRateState, Phase, RateController
from langchain_websim._rate_endpoint import Answers, Bucket, Cut, EndpointState, Series, Window


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctl(clock: FakeClock) -> RateController:
    return RateController(clock=clock)


def rate(ctl: RateController, endpoint: str = "chat") -> float | None:
    return ctl.state()[endpoint].rate


def queue_up(ctl: RateController) -> None:
    """Take every free slot until a caller has to wait: callers are now queued (unpaced,
    nobody ever waits: a bounded number of sends)."""
    for _ in range(5000):
        if ctl.try_acquire("chat") > 0.0:
            return


def learn(ctl: RateController, clock: FakeClock, per_second: float, seconds: float) -> float:
    """Successes at ``per_second`` for ``seconds``, then a queue and a 429; return the rate."""
    for _ in range(round(per_second * seconds)):
        clock.advance(1 / per_second)
        assert ctl.try_acquire("chat") == 0.0
        ctl.on_success("chat")
    queue_up(ctl)
    ctl.on_rate_limited("chat", None)
    if ctl.state()["chat"].phase is Phase.SLOW_START:
        ctl.on_rate_limited("chat", None)  # one 429 in the slow start is weak: a second
    learned = rate(ctl)
    assert learned is not None
    return learned


TUNE = _rate.RateTuning()


def paced(ctl: RateController, clock: FakeClock, per_second: float = 2.0) -> float:
    """Bring the endpoint into the paced phase: a first window, then successes at
    ``per_second`` for 3 s with callers queued, then a 429; return the rate learned."""
    return learn(ctl, clock, per_second, 3.0)


# ------------------------------------------------------------ slow start


def test_a_fresh_endpoint_sends_its_first_window_at_once(ctl: RateController) -> None:
    waits = [ctl.try_acquire("chat") for _ in range(int(TUNE.initial_window))]
    assert waits == [0.0] * int(TUNE.initial_window)
    assert ctl.state()["chat"].phase is Phase.SLOW_START
    # The next send waits for the budget to grow: far less than any model's answer.
    assert 0.0 < ctl.try_acquire("chat") <= TUNE.window_doubling


def test_without_a_429_the_slow_start_ends_unpaced_within_a_fraction_of_a_second(
    ctl: RateController, clock: FakeClock
) -> None:
    sent = 0
    while ctl.state().get("chat") is None or ctl.state()["chat"].phase is Phase.SLOW_START:
        wait = ctl.try_acquire("chat")
        sent += wait == 0.0
        clock.advance(wait)
    assert clock.now - 100.0 < 0.2  # no answer at all came: a slow model
    assert sent >= TUNE.unpaced_window / 2
    assert all(ctl.try_acquire("chat") == 0.0 for _ in range(10_000))
    assert ctl.state()["chat"].rate is None


def test_successes_add_to_the_slow_start_budget(ctl: RateController) -> None:
    for _ in range(int(TUNE.initial_window)):
        assert ctl.try_acquire("chat") == 0.0
    assert ctl.try_acquire("chat") > 0.0
    ctl.on_success("chat")  # an answer frees the next sends at once (ACK-clocked)
    credit = int(TUNE.success_credit)
    assert [ctl.try_acquire("chat") for _ in range(credit)] == [0.0] * credit
    # ... and ends the growth in time: from now on only successes open the budget.
    assert ctl.try_acquire("chat") > 0.0


def test_a_first_429_starts_pacing_and_is_logged_once_at_warning(
    ctl: RateController, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="langchain_websim"):
        learned = paced(ctl, clock)
        clock.advance(1.0)
        queue_up(ctl)
        ctl.on_rate_limited("chat", None)  # the same episode: INFO
    assert ctl.state()["chat"].phase is Phase.PACED
    assert learned < TUNE.max_rate
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "Websim chat: the service is limiting our rate" in text
    assert f"-> {learned:.2f}/s" in text and "calls wait for a send slot" in text


def test_a_new_episode_after_a_quiet_spell_warns_again(
    ctl: RateController, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    paced(ctl, clock)
    clock.advance(TUNE.episode_quiet + 1.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="langchain_websim"):
        queue_up(ctl)
        ctl.on_rate_limited("chat", None)
    assert [r.levelno for r in caplog.records if "limiting" in r.getMessage()] == [logging.WARNING]


# ------------------------------------------------------------------- cuts


def test_learned_pacing_follows_the_learned_rate(ctl: RateController, clock: FakeClock) -> None:
    learned = paced(ctl, clock)
    clock.advance(10.0)  # idle: the burst refills, no more
    assert [ctl.try_acquire("chat") for _ in range(2)] == [0.0, 0.0]
    assert ctl.try_acquire("chat") == pytest.approx(1 / learned)


def test_one_overshoot_cuts_once(ctl: RateController, clock: FakeClock) -> None:
    learned = paced(ctl, clock)
    hold = max(TUNE.hold_off, TUNE.hold_off_slots / learned)
    clock.advance(hold / 2)
    ctl.on_rate_limited("chat", None)
    assert rate(ctl) == learned
    limited = ctl.state()["chat"].rate_limited
    # After the hold-off, a 429 is a new overshoot: it cuts again.
    clock.advance(hold)
    queue_up(ctl)
    ctl.on_rate_limited("chat", None)
    after = rate(ctl)
    assert after is not None and after < learned
    assert ctl.state()["chat"].rate_limited == limited + 1


def test_lone_429s_in_the_slow_start_are_weak_evidence(ctl: RateController) -> None:
    # Random refusals must not leave a tiny guess: they come one at a time, while a limit
    # whose burst ran out refuses again at once.
    sent = [ctl.try_acquire("chat") for _ in range(int(TUNE.initial_window))]
    assert sent == [0.0] * int(TUNE.initial_window)
    for _ in range(3):
        ctl.on_rate_limited("chat", None)
        assert ctl.state()["chat"].phase is Phase.SLOW_START and rate(ctl) is None
        ctl.on_success("chat")
    ctl.on_rate_limited("chat", None)
    ctl.on_rate_limited("chat", None)  # two in a row: a limit
    assert ctl.state()["chat"].phase is Phase.PACED and rate(ctl) is not None


def test_a_retry_after_ends_the_slow_start_at_once(ctl: RateController) -> None:
    # The service said it limits us: no second 429 is needed.
    ctl.try_acquire("chat")
    ctl.on_success("chat")
    ctl.on_rate_limited("chat", 1.0)
    assert ctl.state()["chat"].pace is not None


def test_after_the_first_answer_the_budget_doubles_no_faster_than_it_came(
    ctl: RateController, clock: FakeClock
) -> None:
    # Before any answer the budget doubles every window_doubling; once one came after
    # three of those, a 429 would take as long, so a doubling takes that long too.
    for _ in range(int(TUNE.initial_window)):
        assert ctl.try_acquire("chat") == 0.0
    clock.advance(3 * TUNE.window_doubling)
    queue_up(ctl)
    ctl.on_success("chat")
    queue_up(ctl)
    clock.advance(3 * TUNE.window_doubling)
    sent = 0
    while ctl.try_acquire("chat") == 0.0:
        sent += 1
    # One doubling of the 8 x initial window (not three: 2 ** 3 x).
    assert sent == pytest.approx(8 * TUNE.initial_window, abs=1)


def test_the_rate_never_drops_below_the_floor(ctl: RateController, clock: FakeClock) -> None:
    tuning = dataclasses.replace(TUNE, min_rate=3.0)
    ctl = RateController(clock=clock, tuning=tuning)
    queue_up(ctl)
    ctl.on_rate_limited("chat", None)
    ctl.on_rate_limited("chat", None)  # nothing accepted at all
    assert rate(ctl) == 3.0


def test_tuning_is_per_controller_and_frozen(clock: FakeClock) -> None:
    large = RateController(clock=clock, tuning=dataclasses.replace(TUNE, initial_window=3.0))
    default = RateController(clock=clock)
    assert all(large.try_acquire("chat") == 0.0 for _ in range(3))
    assert [default.try_acquire("chat") == 0.0 for _ in range(3)] == [True, True, False]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TUNE.initial_window = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"initial_window": 0.0}, ValueError),
        ({"cut_keep": 1.5}, ValueError),
        ({"max_rate": math.inf}, ValueError),
        ({"burst": "2"}, TypeError),
        ({"limit_share": 0.2}, ValueError),  # not below noise_share: weights turn around
    ],
)
def test_bad_tuning_is_refused(change: dict[str, object], error: type) -> None:
    with pytest.raises(error, match="RateTuning"):
        dataclasses.replace(TUNE, **change)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tuning"):
        RateController(tuning={"burst": 2})  # type: ignore[arg-type]


# ------------------------------------------------------------------ noise


def noisy(ctl: RateController, clock: FakeClock, share: float, seconds: float) -> list[float]:
    """Callers queued; every request answered at once, every n-th one a 429 whatever the
    pace.  Returns the rate after each answer (0.0 while not paced)."""
    every = round(1 / share)
    end = clock.now + seconds
    n = 0
    rates: list[float] = []
    while clock.now < end:
        wait = ctl.try_acquire("chat")
        if wait > 0:
            ctl.try_acquire("chat")  # a second caller queued too
            clock.advance(wait)
            continue
        n += 1
        if n % every == 0:
            ctl.on_rate_limited("chat", None)
        else:
            ctl.on_success("chat")
        rates.append(rate(ctl) or 0.0)
        clock.advance(0.001)
    return rates


def test_429s_that_slowing_down_does_not_reduce_are_noise(
    ctl: RateController, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="langchain_websim"):
        rates = noisy(ctl, clock, 1 / 3, 60.0)
    state = ctl.state()["chat"]
    assert state.noise == pytest.approx(1 / 3, abs=0.1)
    (verdict,) = [r for r in caplog.records if "did not reduce the share" in r.getMessage()]
    assert verdict.levelno == logging.INFO
    # No collapse: after the verdict the pace climbs back instead of being cut further.
    lowest = min(r for r in rates if r > 0)
    assert state.rate is None or state.rate > 4 * lowest


def judged_noise(before: tuple[float, int], after: tuple[float, int]) -> bool:
    """The verdict on a series of cuts: 30 answers before it, 30 after its hold-off, each
    given as (answers per second, 429s among them)."""
    (before_pace, before_refused), (after_pace, after_refused) = before, after
    st = EndpointState(created=0.0, phase=Phase.PACED)
    st.bucket = Bucket(rate=after_pace, tokens=0.0, updated=0.0)
    first = Window(0.0, 30 / before_pace, 30, before_refused)
    st.series = Series(before_pace, 10.0, first, Window(10.0, 10.0 + 30 / after_pace, 30))
    assert st.series.after is not None
    st.series.after.refused = after_refused
    verdict = _rate_noise.verdict(st, TUNE)
    assert verdict is not None
    return verdict.answered > 0


@pytest.mark.parametrize(
    ("before", "after", "noise"),
    [
        # 10 % noise: 4 then 2 of 30 is chance (the plain ratio, 0.5, says "fell").
        ((10.0, 4), (8.5, 2), True),
        # 2 then 5 of 30 is chance as well (the plain ratio, 2.5, says "rose").
        ((10.0, 2), (8.5, 5), True),
        # 12 then 2 of 30: slowing down clearly helped: a limit.
        ((10.0, 12), (8.5, 2), False),
        # 2 then 12 of 30: the share rose clearly as we slowed: a limit that dropped.
        ((10.0, 2), (8.5, 12), False),
        # The same share without slowing down: nothing learned, not noise.
        ((10.0, 4), (9.5, 4), False),
    ],
)
def test_a_share_of_429s_moves_only_when_it_moves_by_more_than_chance(
    before: tuple[float, int], after: tuple[float, int], noise: bool
) -> None:
    assert judged_noise(before, after) is noise


def refused_then_accepted(clock: FakeClock, accepted: float, pace: float) -> RateController:
    """A paced endpoint whose limit refused us once, then accepted ``accepted`` requests/s
    for 2 s (a rate it proves at the next 429); a cut has slowed us to ``pace`` since, and
    its hold-off is over."""
    ctl = RateController(clock=clock)
    st = EndpointState(created=clock.now, phase=Phase.PACED, logged_rate=pace)
    st.bucket = Bucket(rate=pace, tokens=0.0, updated=clock.now)
    ctl._endpoints["chat"] = st
    st.answers.add(clock.now, refused=True)
    st.last_refusal = clock.now
    st.warned = True  # the cut announced the limiting episode
    for _ in range(round(2 * accepted)):
        clock.advance(1 / accepted)
        st.answers.add(clock.now, refused=False)
    st.cut = Cut(at=clock.now, hold_until=clock.now)
    return ctl


def test_429s_that_keep_coming_below_the_proven_rate_are_noise_within_a_few_answers(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The limit accepted 10/s after refusing us; paced at 6/s now, where it refuses nothing,
    # every 5th answer is still a 429.  The series verdict needs 30 answers after a cut's
    # hold-off; the sequential test decides at the 4th 429 below the proven rate.
    ctl = refused_then_accepted(clock, accepted=10.0, pace=6.0)
    answers = 0
    paces: list[float | None] = []
    with caplog.at_level(logging.INFO, logger="langchain_websim"):
        while ctl.state()["chat"].noise is None and answers < 30:
            paces.append(rate(ctl))
            wait = ctl.try_acquire("chat")
            if wait > 0.0:
                clock.advance(wait)  # callers queued: the pace is the bucket's
                continue
            answers += 1
            if answers % 5 == 0:
                ctl.on_rate_limited("chat", None)
            else:
                ctl.on_success("chat")
    state = ctl.state()["chat"]
    assert state.noise is not None and answers == 20, answers
    # The share counted over every answer since the first one weighed (the 5th, a 429):
    # 4 of 16.  None of the 429s was cut for: until the verdict the pace stayed at 6/s.
    assert state.noise == pytest.approx(4 / 16)
    assert min(p or 0.0 for p in paces) == 6.0
    (said,) = [r for r in caplog.records if "kept coming below the rate" in r.getMessage()]
    assert said.levelno == logging.INFO and "(25 %): they do not depend on" in said.getMessage()


def test_a_429_below_the_proven_rate_is_weighed_not_cut(clock: FakeClock) -> None:
    # Paced at 6/s, well below the 10/s the limit accepted after refusing us: it refuses
    # nothing there, so the 429 is weighed as evidence of noise and the pace is kept.
    below = refused_then_accepted(clock, accepted=10.0, pace=6.0)
    below.on_rate_limited("chat", None)
    assert rate(below) == 6.0
    assert below._endpoints["chat"].evidence.refusals == 1
    # At 9/s a limit that proved 10/s (within a token) may be what refused: that 429 cuts.
    near = refused_then_accepted(clock, accepted=10.0, pace=9.0)
    near.on_rate_limited("chat", None)
    cut = rate(near)
    assert cut is not None and cut < 9.0
    assert near._endpoints["chat"].evidence.refusals == 0


def weigh_all(st: EndpointState, clock: FakeClock, pattern: str) -> None:
    """Weigh answers 0.1 s apart: "x" a 429, "." a success."""
    for mark in pattern:
        clock.advance(0.1)
        st.answers.add(clock.now, refused=mark == "x")
        _rate_noise.weigh(st, clock.now, TUNE, refused=mark == "x")


def below_a_proven_rate(clock: FakeClock, pace: float) -> EndpointState:
    ctl = refused_then_accepted(clock, accepted=10.0, pace=pace)
    st = ctl._endpoints["chat"]
    weigh_all(st, clock, "x")  # measures what the first 429 proved: 10/s
    assert st.evidence.proven == pytest.approx(20 / 2.1)
    return st


def test_only_answers_paced_clearly_below_the_proven_rate_weigh(clock: FakeClock) -> None:
    # 9/s is over 0.85 x 9.5/s: a limit may refuse there (it proved 9.5/s within a token),
    # so its 429s tell nothing.
    near = below_a_proven_rate(clock, pace=9.0)
    weigh_all(near, clock, "...x" * 6)
    assert near.evidence.score == 0.0 and _rate_noise.evident(near, TUNE) is None
    # 8/s is under it: a limit refuses nothing there, and six 429s in 24 answers are noise
    # (seven in 25, with the one that measured the proven rate).
    below = below_a_proven_rate(clock, pace=8.0)
    weigh_all(below, clock, "...x" * 6)
    found = _rate_noise.evident(below, TUNE)
    assert found is not None and (found.answered, found.refused) == (25, 7)


def test_successes_below_the_proven_rate_clear_the_evidence(clock: FakeClock) -> None:
    # A 429 now and then among many successes is a limit's probe, not noise's share: each
    # one's weight is gone after 19 successes, so they never add up to a verdict.
    st = below_a_proven_rate(clock, pace=8.0)
    weigh_all(st, clock, ("." * 20 + "x") * 6)
    assert st.evidence.refusals == 1 and _rate_noise.evident(st, TUNE) is None


def test_most_of_the_last_answers_refused_void_the_proven_rate(clock: FakeClock) -> None:
    # Four 429s in the last six answers: a limit refusing what we send beyond it, below
    # what it accepted before: it dropped (S4).  What it proved no longer holds, so later
    # 429s below it weigh nothing (and are cut for again).
    st = below_a_proven_rate(clock, pace=8.0)
    weigh_all(st, clock, "x.x")  # three 429s in four, with the one that measured
    assert st.evidence.score > 0.0 and st.evidence.proven > 0.0
    weigh_all(st, clock, "x")  # the fourth
    assert (st.evidence.proven, st.evidence.score) == (0.0, 0.0)
    weigh_all(st, clock, ".x.x.x.x")
    assert st.evidence.score == 0.0 and _rate_noise.evident(st, TUNE) is None


def test_a_proven_rate_is_counted_from_a_429_over_at_least_a_span() -> None:
    answers = Answers()
    answers.add(0.0, refused=True)
    for i in range(1, 21):
        answers.add(i / 10, refused=False)  # 10/s for 2 s
        if i == 15:
            answers.add(1.5, refused=True)
    # From the 429 at 0: 20 successes in 2 s.  From the one at 1.5 s: too short a span.
    assert answers.accepted_after_refusals(2.0, -math.inf, 1.0, 5.0) == pytest.approx(10.0)
    # 429s before ``since``, or further back than the horizon, prove nothing.
    assert answers.accepted_after_refusals(2.0, 0.0, 1.0, 5.0) == 0.0
    assert answers.accepted_after_refusals(2.0, -math.inf, 1.0, 1.9) == 0.0


def test_a_proven_rate_counts_requests_by_when_they_were_sent() -> None:
    # A model that answers after 1 s: the 429 at 1.0 s comes while the ten requests sent
    # over the second before it are still with the model, and they succeed after it.
    answers = Answers()
    for i in range(10):
        answers.add(1.0 + i / 10, refused=False, sent_at=i / 10)
    answers.add(1.0, refused=True, sent_at=1.0)
    for i in range(1, 31):  # then 5/s are sent, each answered 1 s later
        answers.add(2.0 + i / 5, refused=False, sent_at=1.0 + i / 5)
    # At 8 s: what was sent from the 429 up to 7 s (the last lag, 1 s, is not all back
    # yet) is 30 requests in 6 s, 5/s.  Counted by answers since the 429, 40 in 7 s.
    assert answers.accepted_after_refusals(8.0, -math.inf, 1.0, 10.0) == pytest.approx(5.0)


def test_successes_before_the_first_429_do_not_change_a_proven_rate() -> None:
    # Their send times are not kept (a service that never refuses pays nothing for them):
    # the proven rate must come out as if they had been counted, since everything they
    # sent went out before the 429.
    def after_the_429(answers: Answers) -> Answers:
        answers.add(10.0, refused=True, sent_at=10.0)
        for i in range(5):  # sent just before the 429, held by the model until after it
            answers.add(10.5 + i / 10, refused=False, sent_at=9.5 + i / 10)
        for i in range(1, 41):  # then 4/s, each answered 0.5 s later
            answers.add(10.5 + i / 4, refused=False, sent_at=10.0 + i / 4)
        return answers

    busy = Answers()
    for i in range(400):  # 40/s for 10 s, answered out of order
        busy.add(i / 40 + 0.5 - (i % 3) / 100, refused=False, sent_at=i / 40)
    quiet = Answers()
    for answers in (busy, quiet):
        after_the_429(answers)
    for now in (13.0, 16.0, 20.5):
        proven = busy.accepted_after_refusals(now, -math.inf, 1.0, 30.0)
        assert proven == quiet.accepted_after_refusals(now, -math.inf, 1.0, 30.0)
        assert proven == pytest.approx(4.0, rel=0.15)  # 4/s sent after the 429


def send_as_let_go(ctl: RateController, clock: FakeClock, count: int) -> list[float]:
    """Send ``count`` requests, each as soon as the controller lets it go; their send
    times (no answer comes meanwhile: a model that takes its time)."""
    sent = []
    for _ in range(count):
        while (wait := ctl.try_acquire("chat")) > 0.0:
            clock.advance(wait)
        sent.append(clock.now)
    return sent


def test_late_answers_to_requests_sent_before_the_first_cut_raise_its_guess(
    ctl: RateController, clock: FakeClock
) -> None:
    # A limiter with a burst of 12 in front of a model that answers after 1 s: the slow
    # start's requests go out, the ones beyond the burst are refused at once, and the
    # first cut sees only those 429s.
    sent = send_as_let_go(ctl, clock, 16)
    clock.advance(0.005)
    for at in sent[12:14]:
        ctl.on_rate_limited("chat", None, sent_at=at)
    guess = rate(ctl)
    assert ctl.state()["chat"].phase is Phase.PACED
    assert guess is not None and guess <= 2.0  # no success seen: a guess from the 429s
    cut_at = clock.now
    clock.advance(1.0)
    for at in sent[:12]:  # the accepted twelve, back from the model
        ctl.on_success("chat", sent_at=at)
    raised = rate(ctl)
    assert raised is not None
    # What was accepted, counted over the cut's span and halved for the burst, as a cut
    # with instant answers would have counted it.
    span = TUNE.cut_window  # a young endpoint's cut counts over its whole window
    assert raised == pytest.approx(12 / span * TUNE.first_cut_keep)
    assert raised > 4 * guess
    # A success to a request sent after the cut is not part of that guess.
    ctl.on_success("chat", sent_at=cut_at + 0.5)
    assert rate(ctl) == pytest.approx(raised)


@pytest.mark.parametrize(("model_lag", "raised"), [(TUNE.model_lag, False), (0.1, True)])
def test_late_answers_as_fast_as_the_429s_do_not_raise_the_first_guess(
    clock: FakeClock, model_lag: float, raised: bool
) -> None:
    # A client that starts after others took the limit's burst: its first answers are
    # 429s, and the successes that were racing them come right after the cut, having
    # taken no longer than the 429s did.
    ctl = RateController(clock=clock, tuning=dataclasses.replace(TUNE, model_lag=model_lag))
    sent = send_as_let_go(ctl, clock, 4)
    clock.advance(0.030)
    for at in sent[:2]:
        ctl.on_rate_limited("chat", None, sent_at=at)
    guess = rate(ctl)
    assert guess is not None
    clock.advance(0.010)
    for at in sent[2:]:
        ctl.on_success("chat", sent_at=at)
    # Two successes counted into the guess would make it 2 / 0.5 s, halved: 2.0/s.
    after = rate(ctl)
    assert after is not None
    assert (after >= 2.0) is raised, (guess, after)


def test_known_noise_is_counted_after_the_last_cut(clock: FakeClock) -> None:
    # Noise known (10 %), then an overshoot: 10 of 30 answers refused, which a cut
    # answered.  Those 429s are not counted against the random 429s that follow it.
    ctl = RateController(clock=clock)
    st = EndpointState(created=0.0, phase=Phase.PACED, noise=0.1)
    st.bucket = Bucket(rate=10.0, tokens=0.0, updated=clock.now)
    ctl._endpoints["chat"] = st
    for i in range(30):
        clock.advance(0.1)
        st.answers.add(clock.now, refused=i % 3 == 0)
    st.cut = Cut(at=clock.now, hold_until=clock.now + 0.2)
    clock.advance(0.3)
    for _ in range(6):
        clock.advance(0.1)
        ctl.try_acquire("chat")  # callers queued
        ctl.on_success("chat")
    paced_at = rate(ctl)
    ctl.on_rate_limited("chat", None)  # 1 of 7 since the cut: the noise's share
    assert rate(ctl) == paced_at
    for _ in range(2):
        clock.advance(0.1)
        ctl.on_rate_limited("chat", None)  # 3 of 9: above the noise, a limit again
    cut = rate(ctl)
    assert paced_at is not None and cut is not None and cut < paced_at


def test_a_limit_is_not_taken_for_noise() -> None:
    from tests.unit_tests import _rate_sim as sim

    made: list[RateController] = []

    def make(clock: sim.Clock) -> RateController:
        made.append(RateController(clock=clock))
        return made[-1]

    # A steady limit: cutting lowers the share of 429s.  A limit that drops (S4): the
    # share rises as the cuts trail it down, which noise never does.
    for name in ("S1", "S2", "S3", "S4"):
        sim.simulate(sim.SCENARIOS[name], make)
    assert [c.state()["chat"].noise for c in made] == [None, None, None, None]


# --------------------------------------------------------------- Retry-After


def test_retry_after_pauses_every_slot_until_it_passes(
    ctl: RateController, clock: FakeClock
) -> None:
    assert ctl.try_acquire("chat") == 0.0
    ctl.on_rate_limited("chat", 2.0)
    assert ctl.pause_remaining("chat") == pytest.approx(2.0)
    assert ctl.state()["chat"].paused_until == pytest.approx(clock.now + 2.0)
    assert ctl.try_acquire("chat") == pytest.approx(2.0)
    clock.advance(1.5)
    assert ctl.try_acquire("chat") == pytest.approx(0.5)
    clock.advance(0.5)
    assert ctl.pause_remaining("chat") == 0.0
    assert ctl.state()["chat"].paused_until is None


def test_a_shorter_retry_after_does_not_shorten_a_pause(ctl: RateController) -> None:
    ctl.on_rate_limited("chat", 5.0)
    ctl.on_rate_limited("chat", 1.0)
    assert ctl.pause_remaining("chat") == pytest.approx(5.0)


# ---------------------------------------------------------------- accepting


def test_accepting_follows_recent_successes(ctl: RateController, clock: FakeClock) -> None:
    assert not ctl.accepting("chat")  # nothing accepted yet: a 429 is a refusal
    ctl.on_success("chat")
    clock.advance(TUNE.accept_window - 1.0)
    assert ctl.accepting("chat")
    clock.advance(2.0)
    assert not ctl.accepting("chat")


# ------------------------------------------------------- endpoints, state


def test_endpoints_are_independent(ctl: RateController, clock: FakeClock) -> None:
    learn(ctl, clock, per_second=2.0, seconds=3.0)
    learned_from = ctl.state()["chat"].rate_limited
    ctl.on_rate_limited("chat", 30.0)
    assert ctl.try_acquire("image") == 0.0
    assert ctl.pause_remaining("image") == 0.0
    image = ctl.state()["image"]
    assert image == EndpointRateState(rate=None, rate_limited=0, waited=0.0, paused_until=None)
    assert ctl.state()["chat"].rate_limited == learned_from + 1


def test_state_reports_waits_and_is_a_frozen_snapshot(ctl: RateController) -> None:
    assert ctl.state() == {}
    ctl.record_wait("chat", 0.25)
    ctl.record_wait("chat", 0.5)
    snapshot = ctl.state()["chat"]
    assert snapshot.waited == pytest.approx(0.75)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.waited = 0.0  # type: ignore[misc]


def test_reset_forgets_everything_even_with_the_lock_held(
    ctl: RateController, clock: FakeClock
) -> None:
    learn(ctl, clock, per_second=2.0, seconds=3.0)
    ctl.on_rate_limited("chat", 60.0)
    # As in a child after fork: another thread held the lock and will never release it.
    ctl._lock.acquire()
    ctl.reset()
    assert ctl.state() == {}
    assert ctl.try_acquire("chat") == 0.0
    assert rate(ctl) is None


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("endpoint", "error"), [(None, TypeError), (b"chat", TypeError), ("", ValueError)]
)
def test_a_bad_endpoint_is_a_typed_error(
    ctl: RateController, endpoint: object, error: type
) -> None:
    with pytest.raises(error, match="endpoint"):
        ctl.try_acquire(endpoint)  # type: ignore[arg-type]
    assert ctl.state() == {}


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError), (True, TypeError)],
)
def test_bad_seconds_are_typed_errors_and_change_nothing(
    ctl: RateController, value: float, error: type
) -> None:
    with pytest.raises(error, match="retry_after"):
        ctl.on_rate_limited("chat", value)
    with pytest.raises(error, match="seconds"):
        ctl.record_wait("chat", value)
    assert ctl.state() == {}


def test_the_clock_must_be_callable() -> None:
    with pytest.raises(TypeError, match="clock"):
        RateController(clock=1.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- threads


def run_threads(work: Callable[[int], None], count: int = 8) -> None:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)


def test_threads_never_share_a_slot(clock: FakeClock) -> None:
    ctl = RateController(clock=clock)  # the clock stands still: only the burst is free
    granted = [0] * 8

    def work(i: int) -> None:
        for _ in range(200):
            granted[i] += ctl.try_acquire("chat") == 0.0

    run_threads(work, len(granted))
    assert sum(granted) == TUNE.initial_window


def test_threads_lose_no_updates() -> None:
    lock = threading.Lock()
    ticks = [0]

    def clock() -> float:  # every reading advances 1 ms, whichever thread reads it
        with lock:
            ticks[0] += 1
            return ticks[0] / 1000

    ctl = RateController(clock=clock)
    threads_n, rounds = 8, 300

    def work(i: int) -> None:
        for n in range(rounds):
            ctl.try_acquire("chat")
            if n % 10 == 0:
                ctl.on_rate_limited("chat", None)
            else:
                ctl.on_success("chat")
            ctl.record_wait("chat", 0.001)

    run_threads(work, threads_n)
    state = ctl.state()["chat"]
    assert state.rate_limited == threads_n * rounds // 10
    assert state.waited == pytest.approx(threads_n * rounds * 0.001)
    assert state.rate is not None and state.rate >= TUNE.min_rate


def test_a_retry_after_pause_has_a_ceiling(clock: FakeClock) -> None:
    # Retry-After: 1e308 (or a date in year 9999) must not shut the endpoint for good.
    ctl = RateController(clock=clock, max_pause=600.0)
    ctl.on_rate_limited("chat", 1e308)
    pause = ctl.pause("chat")
    assert pause is not None and pause.asked == 1e308
    assert pause.until == pytest.approx(clock.now + 600.0)
    assert ctl.state()["chat"].phase is Phase.PAUSED
    clock.advance(600.0)
    assert ctl.pause("chat") is None
    assert ctl.try_acquire("chat") == 0.0  # sent again
    ctl.on_rate_limited("chat", 5.0)  # and a new Retry-After starts a new pause
    assert ctl.pause_remaining("chat") == pytest.approx(5.0)


def answer_every_send(ctl: RateController, successes: int) -> None:
    """On a frozen clock (the budget never grows in time), send what the slow start allows
    and answer each send with a success, ``successes`` times."""
    for _ in range(successes):
        assert ctl.try_acquire("chat") == 0.0
        ctl.on_success("chat")


def test_enough_successes_without_a_429_end_the_slow_start(ctl: RateController) -> None:
    answer_every_send(ctl, TUNE.unpaced_after - 1)
    assert ctl.state()["chat"].phase is Phase.SLOW_START
    queue_up(ctl)  # still paced: a caller has to wait
    ctl.on_success("chat")  # one of the sends still out comes back accepted
    assert all(ctl.try_acquire("chat") == 0.0 for _ in range(1000))
    assert ctl.state()["chat"].phase is Phase.UNPACED


def test_after_a_429_successes_alone_do_not_end_the_slow_start(ctl: RateController) -> None:
    assert ctl.try_acquire("chat") == 0.0
    ctl.on_rate_limited("chat", None)  # a lone 429: weak evidence, but evidence
    answer_every_send(ctl, 2 * TUNE.unpaced_after)
    assert ctl.state()["chat"].phase is Phase.SLOW_START
    queue_up(ctl)
    assert ctl.try_acquire("chat") > 0.0  # still paced by the budget


def test_unpaced_says_when_a_send_needs_no_slot(ctl: RateController, clock: FakeClock) -> None:
    assert not ctl.unpaced("chat")  # a fresh endpoint starts in the slow start
    answer_every_send(ctl, TUNE.unpaced_after)
    ctl.try_acquire("chat")
    assert ctl.unpaced("chat")
    ctl.on_rate_limited("chat", 2.0)  # a Retry-After pause holds even an unpaced endpoint
    assert not ctl.unpaced("chat") and ctl.try_acquire("chat") > 0.0
    clock.advance(2.5)
    ctl.try_acquire("chat")
    assert not ctl.unpaced("chat")  # the 429 cut the rate: paced from now on
    assert ctl.state()["chat"].phase is Phase.PACED
