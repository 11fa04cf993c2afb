"""A deterministic discrete-event simulation of rate-limited callers and a token-bucket server.

Simulated time only: one fake clock drives every controller, a token-bucket server stands in
for Websim, and every sleep is an event in a heap, so a 30-second scenario runs in a few
milliseconds and gives the same figures on every machine.

Each process has its own controller and ``concurrency`` workers sharing that process's
calls.  A worker runs one call the way the client's send path does::

    wait for a slot -> send (latency) -> on_success, or on_rate_limited, then
    re-queue when accepting() (no retry spent), else spend a retry: back off, wait again

``mode="poll"`` waits with ``try_acquire`` (sleep the hint, ask again); ``mode="commit"``
trusts the first hint (sleep once, then send without asking again), as a controller that
hands out future slots would make its callers do.  Latencies are drawn from a seeded
generator.  ``Unpaced`` stands for ``adaptive_rate=False``: every request goes at once and a
429 spends a retry.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

ENDPOINT = "chat"
Mode = Literal["poll", "commit"]


class Clock:
    """The simulation's clock, callable like ``time.monotonic``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Pacer(Protocol):
    """What a worker needs from a controller (``RateController`` or :class:`Oracle`)."""

    def try_acquire(self, endpoint: str) -> float: ...
    def on_success(self, endpoint: str, sent_at: float | None = None) -> object: ...
    def on_rate_limited(
        self, endpoint: str, retry_after: float | None, sent_at: float | None = None
    ) -> None: ...
    def accepting(self, endpoint: str) -> bool: ...
    def record_wait(self, endpoint: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class Scenario:
    """``steps``: (start time, requests/s) of the server's token bucket, the first at 0."""

    name: str
    calls: int  # per process
    steps: tuple[tuple[float, float], ...]
    processes: int = 1
    concurrency: int = 50  # per process
    burst: int = 10
    retry_after: float | None = None  # sent with every 429
    latency: float = 0.005  # request to answer of a request the server takes
    refusal_latency: float | None = None  # of a 429 (default: as ``latency``)
    jitter: float = 0.5  # each latency is drawn from latency * (1 +- jitter)
    seed: int = 0
    max_retries: int = 2
    noise: float = 0.0  # share of requests answered 429 at random, whatever the rate
    limited: bool = True  # False: no token bucket at all (only noise refuses)

    def with_seed(self, seed: int) -> Scenario:
        return dataclasses.replace(self, seed=seed)

    def rate_at(self, t: float) -> float:
        return [rate for start, rate in self.steps if start <= t][-1]

    def capacity(self, t: float) -> float:
        """Tokens the server adds over [0, t]."""
        ends = [start for start, _ in self.steps[1:]] + [t]
        return sum(
            rate * max(0.0, min(t, end) - start)
            for (start, rate), end in zip(self.steps, ends, strict=True)
        )

    def ideal(self) -> float:
        """Earliest time the server could have accepted every call: burst + capacity.

        For a constant rate this is the brief's ``(calls - burst) / rate``.
        """
        need, lo, hi = self.calls * self.processes - self.burst, 0.0, 1e6
        for _ in range(100):  # bisection; capacity() is increasing
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.capacity(mid) < need else (lo, mid)
        return hi


@dataclass
class Result:
    scenario: Scenario
    mode: str
    wall: float = 0.0  # when the last call ended
    done: int = 0
    failed: int = 0
    rate_limited: int = 0

    @property
    def calls(self) -> int:
        return self.scenario.calls * self.scenario.processes

    @property
    def limited_share(self) -> float:
        return self.rate_limited / self.calls

    @property
    def vs_ideal(self) -> float:
        return self.wall / self.scenario.ideal()

    def __str__(self) -> str:
        return (
            f"{self.scenario.name} seed {self.scenario.seed} ({self.mode}): "
            f"wall {self.wall:.2f} s = {self.vs_ideal:.3f} x ideal {self.scenario.ideal():.2f} s,"
            f" 429s {self.rate_limited} ({self.limited_share:.1%}), failed {self.failed}"
        )


class _Server:
    """A token bucket: ``burst`` tokens, refilled continuously at the scenario's rate."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.tokens = float(scenario.burst)
        self.updated = 0.0

    def admit(self, t: float, rng: random.Random) -> bool:
        s = self.scenario
        if s.noise and rng.random() < s.noise:
            return False  # a fault unrelated to our pace: takes no token
        if not s.limited:
            return True
        refill = s.capacity(t) - s.capacity(self.updated)
        self.tokens = min(s.burst, self.tokens + refill)
        self.updated = t
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Sim:
    def __init__(self, scenario: Scenario, mode: Mode) -> None:
        self.scenario, self.mode = scenario, mode
        self.clock = Clock()
        self.server = _Server(scenario)
        self.result = Result(scenario, mode)
        self.rng = random.Random(scenario.seed)
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties run in the order they were scheduled

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (t, next(self._order), action))

    def latency(self, base: float) -> float:
        s = self.scenario
        return base * (1 + s.jitter * (2 * self.rng.random() - 1))

    def run(self, limit: float = 3600.0) -> None:
        while self._events:
            t, _, action = heapq.heappop(self._events)
            if t > limit:
                raise RuntimeError(f"{self.scenario.name}: still running at {limit} s")
            self.clock.now = t
            action()


class _Worker:
    """One concurrent caller of one process, taking calls from the process's queue."""

    def __init__(self, sim: _Sim, pacer: Pacer, queue: list[int]) -> None:
        self.sim, self.pacer, self.queue = sim, pacer, queue
        self.retries = 0

    def next_call(self) -> None:
        if self.queue:
            self.queue.pop()
            self.retries = 0
            self.wait_for_slot()

    def wait_for_slot(self) -> None:
        wait = self.pacer.try_acquire(ENDPOINT)
        if wait <= 0:
            self.send()
            return
        self.pacer.record_wait(ENDPOINT, wait)
        then = self.wait_for_slot if self.sim.mode == "poll" else self.send
        self.sim.at(self.sim.clock.now + wait, then)

    def send(self) -> None:
        sim = self.sim
        s = sim.scenario
        refused_after = s.latency if s.refusal_latency is None else s.refusal_latency
        there = sim.latency(min(s.latency, refused_after)) / 2
        sent_at = sim.clock.now

        def arrive() -> None:  # the server decides when the request reaches it
            if sim.server.admit(sim.clock.now, sim.rng):
                back = sim.latency(s.latency) - there
                sim.at(sim.clock.now + max(there, back), lambda: self.succeeded(sent_at))
            else:
                sim.at(sim.clock.now + there, lambda: self.limited(sent_at))

        sim.at(sim.clock.now + there, arrive)

    def succeeded(self, sent_at: float) -> None:
        self.pacer.on_success(ENDPOINT, sent_at)
        self._end(failed=False)

    def limited(self, sent_at: float) -> None:
        sim = self.sim
        sim.result.rate_limited += 1
        retry_after = sim.scenario.retry_after
        self.pacer.on_rate_limited(ENDPOINT, retry_after, sent_at)
        if self.pacer.accepting(ENDPOINT):
            self.wait_for_slot()  # shaping: back in the queue, no retry spent
            return
        self.retries += 1
        if self.retries > sim.scenario.max_retries:
            self._end(failed=True)
            return
        # The client's backoff without jitter (base 1 s), or the server's Retry-After.
        delay = retry_after if retry_after is not None else min(30.0, 2.0**self.retries)
        sim.at(sim.clock.now + delay, self.wait_for_slot)

    def _end(self, *, failed: bool) -> None:
        result = self.sim.result
        result.failed += failed
        result.done += not failed
        result.wall = max(result.wall, self.sim.clock.now)
        self.next_call()


def simulate(
    scenario: Scenario, make_pacer: Callable[[Clock], Pacer], mode: Mode = "poll"
) -> Result:
    """Run ``scenario`` with one pacer per process; every worker starts at time 0."""
    sim = _Sim(scenario, mode)
    for _ in range(scenario.processes):
        pacer, queue = make_pacer(sim.clock), list(range(scenario.calls))
        for _ in range(scenario.concurrency):
            sim.at(0.0, _Worker(sim, pacer, queue).next_call)
    sim.run()
    return sim.result


class Oracle:
    """Paces its process at exactly its share of the server's true rate, which it knows."""

    def __init__(self, clock: Clock, scenario: Scenario) -> None:
        self.clock, self.scenario = clock, scenario
        self.next = 0.0

    def _interval(self) -> float:
        return self.scenario.processes / self.scenario.rate_at(self.clock.now)

    def try_acquire(self, endpoint: str) -> float:
        now = self.clock.now
        if now + 1e-9 < self.next:
            return self.next - now
        self.next = max(self.next, now) + self._interval()
        return 0.0

    def on_success(self, endpoint: str, sent_at: float | None = None) -> None:
        pass

    def on_rate_limited(
        self, endpoint: str, retry_after: float | None, sent_at: float | None = None
    ) -> None:
        pass

    def accepting(self, endpoint: str) -> bool:
        return True

    def record_wait(self, endpoint: str, seconds: float) -> None:
        pass


class Unpaced:
    """``adaptive_rate=False``: no pacing, and a 429 always spends a retry."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def try_acquire(self, endpoint: str) -> float:
        return 0.0

    def on_success(self, endpoint: str, sent_at: float | None = None) -> None:
        pass

    def on_rate_limited(
        self, endpoint: str, retry_after: float | None, sent_at: float | None = None
    ) -> None:
        pass

    def accepting(self, endpoint: str) -> bool:
        return False

    def record_wait(self, endpoint: str, seconds: float) -> None:
        pass


def oracle_wall(scenario: Scenario) -> float:
    """Wall time of callers paced at exactly the true rate (no burst used, no 429)."""
    return simulate(scenario, lambda clock: Oracle(clock, scenario)).wall


def _s4() -> Scenario:
    calls, burst, high, low = 300, 10, 20.0, 5.0
    # The rate drops when an ideal run is half done in time: burst + high*h + low*h = calls.
    half = (calls - burst) / (high + low)
    return Scenario("S4", calls, ((0.0, high), (half, low)), burst=burst)


# The benchmark's scenarios: burst 10, 50 concurrent callers per process.
SCENARIOS: dict[str, Scenario] = {
    "S1": Scenario("S1", 300, ((0.0, 10.0),)),
    "S2": Scenario("S2", 300, ((0.0, 10.0),), retry_after=1.0),
    "S3": Scenario("S3", 400, ((0.0, 50.0),)),
    "S4": _s4(),
    "S5": Scenario("S5", 50, ((0.0, 10.0),), processes=4),
}
WALL_BOUND = {"S1": 1.2, "S2": 1.2, "S3": 1.2, "S4": 1.3, "S5": 1.3}  # x ideal
ORACLE_BOUND = 1.1  # x the wall time of callers paced at exactly the true rate
LIMITED_BOUND = 0.2  # 429s per call

# First contact: a fresh client, a service that never limits, a model answering after L s;
# every call of the batch in flight at once (the client's pool holds 100 connections).
FIRST_CONTACT: dict[str, Scenario] = {
    f"F{latency:g}x{calls}": Scenario(
        f"F{latency:g}x{calls}",
        calls,
        ((0.0, 1e9),),
        concurrency=min(calls, 100),
        latency=latency,
        jitter=0.05,
        limited=False,
    )
    for latency in (1.0, 5.0)
    for calls in (4, 10, 50, 200)
}
FIRST_CONTACT_BOUND = {4: 1.05, 10: 1.05, 50: 1.15, 200: 1.15}  # x adaptive_rate=False

# Refusal noise: 429s whatever the pace.  N1: no limit, 30 % refused, max_retries=6;
# N2: S1's 10/s limit with 10 % refused on top.
NOISE: dict[str, Scenario] = {
    "N1": Scenario("N1", 200, ((0.0, 1e9),), noise=0.3, max_retries=6, limited=False),
    "N2": Scenario("N2", 300, ((0.0, 10.0),), noise=0.1),
}

# A model that takes its time: the same limits, every accepted request answered after 1 s
# (+- 50 %), while a 429 still comes at once, from the limiter in front of the model.
SLOW_MODEL: dict[str, Scenario] = {
    f"{name}@1s": dataclasses.replace(base, name=f"{name}@1s", latency=1.0, refusal_latency=0.005)
    for name, base in {**SCENARIOS, "N2": NOISE["N2"]}.items()
}
# x the oracle's wall time, the median of five seeds.  S3 at 50/s is held by its 50 callers
# as much as by the limit (50 requests out for 1 s each); S4's limit drops; N2 has noise.
SLOW_MODEL_BOUND = {"S3@1s": 1.25, "S4@1s": 1.25, "N2@1s": 1.25}
SLOW_MODEL_DEFAULT_BOUND = 1.1
