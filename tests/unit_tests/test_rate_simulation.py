"""The rate controller against the benchmark's scenarios, in simulated time (see _rate_sim).

S1: 10/s, no Retry-After, 300 calls; S2: S1 with ``Retry-After: 1`` on every 429;
S3: 50/s, 400 calls; S4: 20/s for the first half of an ideal run, then 5/s, 300 calls;
S5: 4 processes with a controller each, 50 calls each, sharing one 10/s limit.
All: token bucket of 10, 50 concurrent callers per process, latency 5 ms +- 50 %.

Targets: no failed call; 429s <= 20 % of calls; wall <= 1.2 x ideal (S1-S3) or 1.3 x
(S4-S5), ideal = (calls - burst) / rate; and, where one client can be paced at exactly the
true rate (S1-S3), within 1.1 x that client's wall time.

First contact (a fresh client, no limit, answers after 1 s or 5 s, 4 to 200 calls at once):
wall <= 1.05 x the same batch unpaced (``adaptive_rate=False``) for N <= 10, 1.15 x above.
A model that takes its time (S1-S5 and N2 with every accepted request answered after 1 s,
429s at once): no failed call, 429s <= 20 % of calls and wall <= 1.1 x the oracle (1.25 x
for S3, S4 and N2), medians of five seeds.
Refusal noise: N1, 30 % of requests refused at random and no limit (max_retries=6), and
N2, 10 % on top of S1's limit: no failed call; N1 within 2 x unpaced + 1 s over the median
of five seeds; N2 within 1.3 x ideal over the median of five seeds (the test holds it to
1.1 x, and the worst one to 1.7 x).
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


def test_callers_that_trust_the_first_hint_cannot_meet_the_targets() -> None:
    # A hint is a prediction: callers that sleep it once and send commit to a schedule made
    # before the service answered, and overshoot together; polling (try_acquire again
    # after the sleep) lets every queued caller follow what was learned meanwhile.
    s5 = sim.SCENARIOS["S5"]
    committed = sim.simulate(s5, controller, mode="commit")
    polled = sim.simulate(s5, controller, mode="poll")
    assert polled.limited_share <= sim.LIMITED_BOUND < committed.limited_share


@pytest.mark.parametrize("name", list(sim.FIRST_CONTACT))
def test_first_contact_costs_nothing_against_a_service_that_does_not_limit(name: str) -> None:
    scenario = sim.FIRST_CONTACT[name]
    unpaced = sim.simulate(scenario, sim.Unpaced)
    paced = sim.simulate(scenario, controller)
    assert paced.done == unpaced.done == scenario.calls
    assert paced.rate_limited == 0
    assert paced.wall <= sim.FIRST_CONTACT_BOUND[scenario.calls] * unpaced.wall, (paced, unpaced)


def test_random_refusals_without_a_limit_do_not_collapse_the_pace() -> None:
    n1 = sim.NOISE["N1"]
    walls, unpaced = [], []
    for seed in SEEDS:
        result = sim.simulate(n1.with_seed(seed), controller)
        assert result.failed == 0 and result.done == n1.calls, result
        walls.append(result.wall)
        unpaced.append(sim.simulate(n1.with_seed(seed), sim.Unpaced).wall)
    assert statistics.median(walls) <= 2 * statistics.median(unpaced) + 1, (walls, unpaced)


def test_random_refusals_on_top_of_a_limit_lose_no_call_and_keep_the_pace() -> None:
    # The goal is 1.3 x ideal.  The median of five seeds is 1.02 x (1.25 x before 429s
    # below the proven rate were weighed instead of cut for, 1.36 x before the series
    # verdict weighed chance), the worst 1.65 x (was 2.27 x): a seed whose first two
    # answers are random 429s starts paced at 1/s and climbs back slowly
    # (docs/performance.md).
    n2 = sim.NOISE["N2"]
    results = [sim.simulate(n2.with_seed(seed), controller) for seed in SEEDS]
    assert all(r.failed == 0 and r.done == n2.calls for r in results), results
    assert statistics.median(r.vs_ideal for r in results) <= 1.1, [str(r) for r in results]
    assert max(r.vs_ideal for r in results) <= 1.7, [str(r) for r in results]


@pytest.mark.parametrize("name", list(sim.SLOW_MODEL))
def test_a_model_that_answers_after_seconds_is_paced_at_the_limit(name: str) -> None:
    # The limiter's 429s come at once, the accepted requests' answers a second later: the
    # first cut is made while the burst it accepted is still with the model, and what the
    # service accepts after a 429 is counted by when requests were sent.  Before, S1 took
    # 1.18 x the oracle, S3 1.95 x, S4 2.21 x, S5 1.24 x and N2 1.62 x.
    scenario = sim.SLOW_MODEL[name]
    results, ratios = [], []
    for seed in SEEDS:
        result = sim.simulate(scenario.with_seed(seed), controller)
        assert result.failed == 0 and result.done == result.calls, result
        results.append(result)
        ratios.append(result.wall / sim.oracle_wall(scenario.with_seed(seed)))
    bound = sim.SLOW_MODEL_BOUND.get(name, sim.SLOW_MODEL_DEFAULT_BOUND)
    assert statistics.median(ratios) <= bound, [str(r) for r in results]
    assert statistics.median(r.limited_share for r in results) <= sim.LIMITED_BOUND, results
