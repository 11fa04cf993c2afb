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

from langchain_websim import _rate
from langchain_websim._rate import EndpointRateState, RateController


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
    """Take every free slot until a caller has to wait: callers are now queued."""
    while ctl.try_acquire("chat") == 0.0:
        pass


def learn(ctl: RateController, clock: FakeClock, per_second: float, seconds: float) -> float:
    """Successes at ``per_second`` for ``seconds``, then a queue and a 429; return the rate."""
    for _ in range(round(per_second * seconds)):
        clock.advance(1 / per_second)
        assert ctl.try_acquire("chat") == 0.0
        ctl.on_success("chat")
    queue_up(ctl)
    ctl.on_rate_limited("chat", None)
    learned = rate(ctl)
    assert learned is not None
    return learned


# ------------------------------------------------------------------ pacing


def test_first_slot_on_a_fresh_controller_never_waits(clock: FakeClock) -> None:
    assert RateController(clock=clock).reserve("chat") == 0.0
    assert RateController(clock=clock).try_acquire("image") == 0.0


def test_reserve_spaces_slots_one_interval_apart_after_the_burst(ctl: RateController) -> None:
    waits = [ctl.reserve("chat") for _ in range(5)]
    step = 1 / _rate.INITIAL_RATE
    assert waits == pytest.approx([0.0, 0.0, step, 2 * step, 3 * step])


def test_try_acquire_takes_nothing_while_refusing(ctl: RateController, clock: FakeClock) -> None:
    assert [ctl.try_acquire("chat") for _ in range(2)] == [0.0, 0.0]
    hint = ctl.try_acquire("chat")
    assert hint == pytest.approx(1 / _rate.INITIAL_RATE)
    # Asking again at the same moment gives the same hint: the refusal reserved nothing.
    assert ctl.try_acquire("chat") == pytest.approx(hint)
    clock.advance(hint)
    assert ctl.try_acquire("chat") == 0.0
    assert ctl.try_acquire("chat") > 0.0


def test_learned_pacing_follows_the_learned_rate(ctl: RateController, clock: FakeClock) -> None:
    learned = learn(ctl, clock, per_second=2.0, seconds=3.0)
    clock.advance(10.0)  # idle: the burst refills, no more
    waits = [ctl.reserve("chat") for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 1 / learned, 2 / learned])


# ------------------------------------------------------------------- cuts


def test_a_429_drops_the_rate_to_what_was_accepted(ctl: RateController, clock: FakeClock) -> None:
    learned = learn(ctl, clock, per_second=2.0, seconds=3.0)
    window = max(_rate.CUT_WINDOW, _rate.CUT_WINDOW_SLOTS / _rate.INITIAL_RATE)
    assert window < 1.0  # so it holds the last two successes, 0.5 s apart
    assert learned == pytest.approx(2 / window)


def test_a_429_without_a_visible_shortfall_still_slows_down(
    ctl: RateController, clock: FakeClock
) -> None:
    # Everything sent was accepted (the service's burst hid the limit): cut by 1 - CUT_KEEP.
    for _ in range(2):
        assert ctl.try_acquire("chat") == 0.0
        ctl.on_success("chat")
    clock.advance(0.4)
    for _ in range(2):
        assert ctl.try_acquire("chat") == 0.0
        ctl.on_success("chat")
    ctl.on_rate_limited("chat", None)
    assert rate(ctl) == pytest.approx(_rate.INITIAL_RATE * _rate.CUT_KEEP)


def test_the_rate_never_drops_below_the_floor(ctl: RateController) -> None:
    queue_up(ctl)
    ctl.on_rate_limited("chat", None)  # callers queued, nothing accepted at all
    assert rate(ctl) == _rate.MIN_RATE


def test_a_429_with_nobody_queued_keeps_close_to_what_was_sent(
    ctl: RateController, clock: FakeClock
) -> None:
    # One interactive call refused: that says little about the limit, so no crawl follows.
    assert ctl.try_acquire("chat") == 0.0
    ctl.on_rate_limited("chat", 1.0)
    learned = rate(ctl)
    assert learned is not None
    assert learned == pytest.approx(_rate.CUT_KEEP / _rate.CUT_WINDOW)
    clock.advance(1.0)
    assert ctl.try_acquire("chat") == 0.0  # the retry goes when the pause ends
    clock.advance(1 / learned)
    assert ctl.try_acquire("chat") == 0.0


def test_one_overshoot_cuts_once(ctl: RateController, clock: FakeClock) -> None:
    learned = learn(ctl, clock, per_second=2.0, seconds=3.0)
    hold = max(_rate.HOLD_OFF, _rate.HOLD_OFF_SLOTS / learned)
    clock.advance(hold / 2)
    ctl.on_rate_limited("chat", None)
    assert rate(ctl) == learned
    clock.advance(hold)
    ctl.on_rate_limited("chat", None)
    after = rate(ctl)
    assert after is not None and after < learned
    assert ctl.state()["chat"].rate_limited == 3


def test_a_cut_is_logged_with_endpoint_rates_and_reason(
    ctl: RateController, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="langchain_websim"):
        learned = learn(ctl, clock, per_second=2.0, seconds=3.0)
    (record,) = [r for r in caplog.records if "429" in r.getMessage()]
    assert record.name == "langchain_websim" and record.levelno == logging.INFO
    assert f"chat: rate {_rate.INITIAL_RATE:.2f}/s -> {learned:.2f}/s" in record.getMessage()


# ---------------------------------------------------------------- ramping


def queued_successes(ctl: RateController, clock: FakeClock, seconds: float) -> None:
    """Callers queued at the limit: every slot taken as soon as it is free, and answered."""
    end = clock.now + seconds
    while clock.now < end:
        wait = ctl.try_acquire("chat")
        if wait > 0:
            assert ctl.try_acquire("chat") > 0  # a second caller is queued too
            clock.advance(wait)
            continue
        ctl.on_success("chat")


def test_slow_start_ramps_multiplicatively_while_queued(
    ctl: RateController, clock: FakeClock
) -> None:
    queued_successes(ctl, clock, 4 * _rate.SLOW_START_DOUBLING)
    grown = ctl.state()["chat"].pace
    assert grown > 4 * _rate.INITIAL_RATE
    assert rate(ctl) is None  # nothing learned yet


def test_no_ramp_without_queued_callers(ctl: RateController, clock: FakeClock) -> None:
    for _ in range(20):
        clock.advance(1.0)
        assert ctl.try_acquire("chat") == 0.0
        ctl.on_success("chat")
    assert ctl.state()["chat"].pace == _rate.INITIAL_RATE


def test_after_a_cut_the_rate_probes_upward_slowly(ctl: RateController, clock: FakeClock) -> None:
    learned = learn(ctl, clock, per_second=2.0, seconds=3.0)
    queued_successes(ctl, clock, 1.0)
    probed = rate(ctl)
    assert probed is not None
    assert learned < probed < learned * 1.1


def test_probing_speeds_up_the_longer_no_429_comes(ctl: RateController, clock: FakeClock) -> None:
    learn(ctl, clock, per_second=2.0, seconds=3.0)
    rates = []
    for _ in range(4):
        before = rate(ctl)
        assert before is not None
        queued_successes(ctl, clock, 2.0)
        after = rate(ctl)
        assert after is not None
        rates.append(after / before)
    assert rates == sorted(rates) and rates[-1] > rates[0]


def test_a_crushed_rate_climbs_back_fast_towards_its_recent_peak(
    ctl: RateController, clock: FakeClock
) -> None:
    peak = learn(ctl, clock, per_second=5.0, seconds=3.0)
    clock.advance(1.0)
    crushed = learn(ctl, clock, per_second=1.5, seconds=3.0)  # others took the share
    assert crushed < peak * _rate.RECOVER_SHARE
    queued_successes(ctl, clock, _rate.RECOVER_QUIET)
    before = rate(ctl)
    assert before is not None
    queued_successes(ctl, clock, 1.0)
    after = rate(ctl)
    assert after is not None
    # Plain probing this soon after a cut adds a few per cent a second; recovery gets back
    # to its target (a share of the peak) within that second.
    assert before < peak * _rate.RECOVER_SHARE <= after


# --------------------------------------------------------------- Retry-After


def test_retry_after_pauses_every_slot_until_it_passes(
    ctl: RateController, clock: FakeClock
) -> None:
    assert ctl.try_acquire("chat") == 0.0
    ctl.on_rate_limited("chat", 2.0)
    assert ctl.pause_remaining("chat") == pytest.approx(2.0)
    assert ctl.state()["chat"].paused_until == pytest.approx(clock.now + 2.0)
    assert ctl.try_acquire("chat") == pytest.approx(2.0)
    assert ctl.reserve("chat") >= 2.0
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
    clock.advance(_rate.ACCEPT_WINDOW - 1.0)
    assert ctl.accepting("chat")
    clock.advance(2.0)
    assert not ctl.accepting("chat")


# ------------------------------------------------------- endpoints, state


def test_endpoints_are_independent(ctl: RateController, clock: FakeClock) -> None:
    learn(ctl, clock, per_second=2.0, seconds=3.0)
    ctl.on_rate_limited("chat", 30.0)
    assert ctl.try_acquire("image") == 0.0
    assert ctl.pause_remaining("image") == 0.0
    image = ctl.state()["image"]
    assert image == EndpointRateState(rate=None, rate_limited=0, waited=0.0, paused_until=None)
    assert ctl.state()["chat"].rate_limited == 2


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
    assert sum(granted) == _rate.INITIAL_BURST


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
    assert state.rate is not None and state.rate >= _rate.MIN_RATE


def test_a_slow_start_that_reaches_the_ceiling_stops_pacing_until_a_429(
    ctl: RateController, clock: FakeClock
) -> None:
    # A service that never limits us must cost nothing per call once the ramp is done.
    for _ in range(100_000):  # callers queued at the pace, every slot answered at once
        wait = ctl.try_acquire("chat")
        if wait == 0.0 and ctl.state()["chat"].pace >= _rate.MAX_RATE:
            break
        if wait > 0:
            assert ctl.try_acquire("chat") > 0
            clock.advance(wait)
        else:
            ctl.on_success("chat")
    assert ctl.state()["chat"].pace == _rate.MAX_RATE
    assert all(ctl.try_acquire("chat") == 0.0 for _ in range(10_000))  # no bucket, no wait
    ctl.on_rate_limited("chat", None)
    learned = rate(ctl)
    assert learned is not None and learned < _rate.MAX_RATE
    queue_up(ctl)
    assert ctl.try_acquire("chat") > 0.0  # paced again
    ctl.on_rate_limited("chat", 5.0)
    assert ctl.try_acquire("chat") == pytest.approx(5.0, abs=0.5)  # a pause holds anyway
