"""The rate controller against the benchmark's scenarios, in simulated time (see _rate_sim).

S1: 10/s, no Retry-After, 300 calls; S2: S1 with ``Retry-After: 1`` on every 429;
S3: 50/s, 400 calls; S4: 20/s for the first half of an ideal run, then 5/s, 300 calls;
S5: 4 processes with a controller each, 50 calls each, sharing one 10/s limit.
All: token bucket of 10, 50 concurrent callers per process, latency 5 ms +- 50 %.

Targets: no failed call; 429s <= 20 % of calls; wall <= 1.2 x ideal (S1-S3) or 1.3 x
(S4-S5), ideal = (calls - burst) / rate; and, where one client can be paced at exactly the
true rate (S1-S3), within 1.1 x that client's wall time.
"""

from __future__ import annotations

import statistics

import pytest

from langchain_websim._rate import RateController
from tests.unit_tests import _rate_sim as sim

SEEDS = range(5)


def controller(clock: sim.Clock) -> RateController:
    return RateController(clock=clock)


def test_ideal_is_burst_plus_capacity() -> None:
    s1, s4 = sim.SCENARIOS["S1"], sim.SCENARIOS["S4"]
    assert s1.ideal() == pytest.approx((300 - 10) / 10)
    # S4 spends half the ideal run at each rate.
    assert s4.ideal() == pytest.approx(2 * s4.steps[1][0])
    assert s4.capacity(s4.ideal()) + s4.burst == pytest.approx(s4.calls)


def test_the_oracle_paces_at_the_true_rate_without_a_429() -> None:
    s3 = sim.SCENARIOS["S3"]
    result = sim.simulate(s3, lambda clock: sim.Oracle(clock, s3))
    assert result.rate_limited == 0
    assert result.wall == pytest.approx((s3.calls - 1) / 50, rel=0.01)


def test_the_simulation_is_deterministic() -> None:
    s5 = sim.SCENARIOS["S5"].with_seed(3)
    first, second = sim.simulate(s5, controller), sim.simulate(s5, controller)
    assert (first.wall, first.rate_limited) == (second.wall, second.rate_limited)


def test_a_server_without_limit_pressure_sees_no_429() -> None:
    relaxed = sim.Scenario("relaxed", 100, ((0.0, 1000.0),), burst=100)
    result = sim.simulate(relaxed, controller)
    assert (result.rate_limited, result.failed, result.done) == (0, 0, 100)


@pytest.mark.parametrize("name", list(sim.SCENARIOS))
def test_scenario_meets_the_goodput_targets(name: str) -> None:
    base = sim.SCENARIOS[name]
    oracle = sim.oracle_wall(base)
    for seed in SEEDS:
        result = sim.simulate(base.with_seed(seed), controller)
        assert result.done == result.calls and result.failed == 0, result
        assert result.limited_share <= sim.LIMITED_BOUND, result
        assert result.vs_ideal <= sim.WALL_BOUND[name], result
        if base.processes == 1 and len(base.steps) == 1:
            assert result.wall <= sim.ORACLE_BOUND * oracle, (result, oracle)


@pytest.mark.parametrize("name", ["S1", "S2", "S3", "S4"])
def test_one_client_keeps_a_wide_margin(name: str) -> None:
    result = sim.simulate(sim.SCENARIOS[name], controller)
    assert result.vs_ideal <= 1.1, result
    assert result.limited_share <= 0.1, result


def test_shared_limit_typical_run_keeps_a_margin() -> None:
    s5 = sim.SCENARIOS["S5"]
    walls = [sim.simulate(s5.with_seed(seed), controller).vs_ideal for seed in range(10)]
    assert statistics.median(walls) <= 1.2, walls


def test_reserve_alone_cannot_meet_the_targets_for_a_burst_of_callers() -> None:
    # reserve() commits every queued caller to a slot before the service has answered
    # once, so a rate learned later cannot move them: try_acquire() is the way to wait.
    s3, s5 = sim.SCENARIOS["S3"], sim.SCENARIOS["S5"]
    assert sim.simulate(s3, controller, mode="commit").vs_ideal > sim.WALL_BOUND["S3"]
    committed = sim.simulate(s5, controller, mode="commit")
    polled = sim.simulate(s5, controller, mode="poll")
    assert polled.limited_share <= sim.LIMITED_BOUND < committed.limited_share
