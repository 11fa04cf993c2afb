"""Goodput under Websim's rate limit: how fast chat calls get through a token bucket.

Usage (after ``pip install -e '.[benchmark]'``)::

    python benchmarks/goodput.py                       # every scenario, every contender
    python benchmarks/goodput.py --quick               # tiny sizes, a smoke test
    python benchmarks/goodput.py --scenarios S1,S3 --contenders websim,oracle --json out.json
    python benchmarks/goodput.py --scenarios first-contact,noise --plots pictures/

Websim answers 429 "Rate limit exceeded" when called too fast, at a rate it does not publish.
Each scenario runs every contender against its own token-bucket server process
(``_bucket_server.py``) and each contender in fresh worker processes (``_goodput_fleet.py``:
spawned processes, or in S6 Ray tasks, each in a Ray worker process of its own), so neither a
bucket nor a client carries state from one run into the next.  The report gives,
per scenario, a Markdown table and PASS or MISS for ChatWebsim's defaults against the targets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import _report
from _bucket_server import Limit, start_bucket_server
from _goodput_fleet import RUNNERS, FleetTimeout, shared_by_runs
from _goodput_report import MAX_LIMITED_SHARE, Row, Target, print_scenario, targets
from _goodput_worker import CONTENDERS, Job, adaptive_off


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    rate: float | None
    """Requests per second the server allows (shared by all workers); None: no limit."""
    burst: int
    calls: int
    """Per worker."""
    concurrency: int
    """Per worker: abatch's max_concurrency."""
    wall_target: float
    """The most wall / ideal (goal "ideal") or wall / off (goal "off") ChatWebsim's
    defaults may take; goal "noise": at most this x off + 1 s."""
    workers: int = 1
    retry_after: int | None = None
    schedule: tuple[tuple[float, float], ...] = ()
    """(seconds after the first request, new rate) steps."""
    runner: str = "processes"
    """Key of ``RUNNERS``: how the workers are started."""
    latency: float = 0.0
    """Seconds the server takes to answer a request it accepts (a 429 comes at once)."""
    noise: float = 0.0
    """Share of requests the server refuses at random, whatever the pace."""
    settings: tuple[tuple[str, Any], ...] = ()
    """Settings every ChatWebsim contender is built with (``max_retries``...)."""
    goal: str = "ideal"
    """What the wall time is held against: "ideal", "off" or "noise" (see wall_target)."""
    limited_target: float | None = MAX_LIMITED_SHARE
    """The most 429s per call; None: not a target (refusals the scenario makes anyway)."""
    contenders: tuple[str, ...] = tuple(CONTENDERS)
    """Who runs by default."""

    @property
    def worker_kind(self) -> str:
        return WORKER_KINDS[self.runner]

    @property
    def total_calls(self) -> int:
        return self.calls * self.workers

    def ideal(self) -> float | None:
        """Seconds the bucket needs to let every call through: (calls - burst) / rate,
        phase by phase when the rate changes; None without a limit."""
        if self.rate is None:
            return None
        need, now, rate = float(self.total_calls - self.burst), 0.0, self.rate
        for at, new_rate in self.schedule:
            if need <= (at - now) * rate:
                break
            need -= (at - now) * rate
            now, rate = at, new_rate
        return now + max(0.0, need) / rate

    def limit(self) -> Limit:
        return Limit(
            self.rate,
            self.burst,
            self.retry_after,
            self.schedule,
            noise=self.noise,
            latency=self.latency,
        )

    def jobs(self, contender: str, url: str) -> list[Job]:
        # Each worker's oracle gets an equal share of the true rate and burst.
        share = 1 / self.workers
        schedule = tuple((at, rate * share) for at, rate in self.schedule)
        job = Job(
            contender,
            url,
            self.calls,
            self.concurrency,
            (self.rate or 1e9) * share,
            self.burst * share,
            schedule,
            settings=self.settings,
        )
        return [job] * self.workers

    def timeout(self) -> float:
        """Hard limit for one contender's run: generous over ideal, but bounded."""
        return 60 + 3 * (self.ideal() or self.latency)

    def title(self) -> str:
        each = f" ({self.workers} {self.worker_kind} x {self.calls})" if self.workers > 1 else ""
        conc = f"{self.concurrency} concurrent" + (" in each" if self.workers > 1 else "")
        ideal = self.ideal()
        tail = "no limit" if ideal is None else f"ideal {ideal:.1f} s"
        return f"{self.name}: {self.about}; {self.total_calls} calls{each}, {conc}; {tail}"


WORKER_KINDS = {"processes": "processes", "ray": "Ray tasks"}
"""What a scenario's workers are called, by runner."""

_S1 = Scenario("S1", "10/s, burst 10, no Retry-After", 10, 10, 300, 50, 1.2)
_S5 = Scenario("S5", "4 processes share 10/s, burst 10", 10, 10, 50, 50, 1.3, workers=4)
SCENARIOS = {
    "S1": _S1,
    "S2": replace(_S1, name="S2", about="10/s, burst 10, Retry-After: 1", retry_after=1),
    "S3": Scenario("S3", "50/s, burst 10", 50, 10, 400, 50, 1.2),
    # 10 + 15 s x 20/s + 15 s x 5/s = 385 calls: the rate drops halfway through 30 s.
    "S4": Scenario(
        "S4", "20/s for 15 s, then 5/s, burst 10", 20, 10, 385, 50, 1.3, schedule=((15.0, 5.0),)
    ),
    "S5": _S5,
    "S6": replace(_S5, name="S6", about="4 Ray tasks share 10/s, burst 10", runner="ray"),
}
_Q1 = Scenario("S1", "20/s, burst 5, no Retry-After", 20, 5, 25, 10, 1.2)
_Q5 = Scenario("S5", "4 processes share 10/s, burst 5", 10, 5, 8, 8, 1.3, workers=4)

# First contact: a fresh client per batch against a service that never limits, whose model
# takes L seconds to answer; held against the same batch with the control off.
_LIMITLESS = ("websim", "websim-off")
FIRST_CONTACT = {
    f"F{latency}x{calls}": Scenario(
        f"F{latency}x{calls}",
        f"no limit, answers after {latency} s, a fresh client",
        None,
        0,
        calls,
        calls,
        1.05 if calls <= 10 else 1.15,
        latency=float(latency),
        goal="off",
        contenders=_LIMITLESS,
    )
    for latency in (1, 5)
    for calls in (4, 10, 50, 200)
}
NOISE = {
    # 429s that do not depend on our pace: slowing down cannot help, retrying does.
    "N1": Scenario(
        "N1",
        "no limit, 30 % of requests refused at random, max_retries=6",
        None,
        0,
        200,
        50,
        2.0,
        noise=0.3,
        settings=(("max_retries", 6),),
        goal="noise",
        limited_target=None,
        contenders=_LIMITLESS,
    ),
    "N2": replace(
        _S1,
        name="N2",
        about="10/s, burst 10, and 10 % of requests refused at random",
        wall_target=1.3,
        noise=0.1,
        limited_target=None,
        contenders=("websim", "websim-off", "oracle"),
    ),
}
# A model that takes its time: the same limits with every accepted request answered after
# 1 s, while a 429 still comes at once (from the limiter in front of the model).  S3 is left
# out: at 1 s its 50 callers hold it to 50/s as much as its limit does.
_SLOW_OF = ("S1", "S2", "S4", "S5", "N2")


def _answering_after_1s(base: Scenario) -> Scenario:
    about = base.about + "; answers after 1 s"
    return replace(base, name=f"{base.name}@1s", about=about, latency=1.0)


SLOW_MODEL = {f"{n}@1s": _answering_after_1s({**SCENARIOS, **NOISE}[n]) for n in _SLOW_OF}
SCENARIOS.update(FIRST_CONTACT)
SCENARIOS.update(NOISE)
SCENARIOS.update(SLOW_MODEL)
QUICK = {
    "S1": _Q1,
    "S2": replace(_Q1, name="S2", about="20/s, burst 5, Retry-After: 1", retry_after=1),
    "S3": Scenario("S3", "50/s, burst 5", 50, 5, 55, 10, 1.2),
    "S4": Scenario(
        "S4", "20/s for 1 s, then 5/s, burst 5", 20, 5, 30, 10, 1.3, schedule=((1.0, 5.0),)
    ),
    "S5": _Q5,
    "S6": replace(_Q5, name="S6", about="4 Ray tasks share 10/s, burst 5", runner="ray"),
}
QUICK.update(
    {
        name: replace(
            s, latency=s.latency / 5, calls=min(s.calls, 50), concurrency=min(s.calls, 50)
        )
        for name, s in FIRST_CONTACT.items()
    }
)
QUICK.update(
    {
        "N1": replace(NOISE["N1"], calls=40, concurrency=20),
        "N2": replace(NOISE["N2"], rate=20, burst=5, calls=25, concurrency=10),
    }
)
QUICK.update(
    {f"{name}@1s": replace(QUICK[name], name=f"{name}@1s", latency=0.2) for name in _SLOW_OF}
)
GROUPS = {
    "limits": ["S1", "S2", "S3", "S4", "S5", "S6"],
    "first-contact": list(FIRST_CONTACT),
    "noise": list(NOISE),
    "slow-model": list(SLOW_MODEL),
}
"""Names that stand for several scenarios on the command line."""


def run_contender(scenario: Scenario, contender: str, timeout: float) -> Row:
    """One contender through one scenario, against a server of its own."""
    fleet, timed_out = None, ""
    with start_bucket_server(scenario.limit()) as server:
        try:
            fleet = RUNNERS[scenario.runner](scenario.jobs(contender, server.url), timeout)
        except FleetTimeout as exc:
            timed_out = f"timed out: {exc} (limit {timeout:.0f} s)"
    # The server's counts are final only once it has stopped.
    stats = server.stats
    row = Row(
        contender=contender,
        calls=scenario.total_calls,
        ok=0,
        failed=scenario.total_calls,
        requests=stats["requests"],
        limited=stats["limited"],
        wall=None,
        ideal=scenario.ideal(),
        errors={timed_out: scenario.total_calls},
        by_route=stats["by_path"],
        timeline=[(float(t), int(status), float(done)) for t, status, done in stats["timeline"]],
    )
    if fleet is None:
        return row
    errors: Counter[str] = Counter()
    for summary in fleet.summaries:
        errors.update(summary["errors"])
        row.rate_waits += summary["rate_waits"]
    row.ok = sum(s["ok"] for s in fleet.summaries)
    row.failed = sum(s["failed"] for s in fleet.summaries)
    row.errors = dict(errors)
    row.wall = fleet.wall
    return row


def run_repeated(scenario: Scenario, contender: str, timeout: float, repeat: int) -> Row:
    """The run with the median wall time of ``repeat`` runs (a timed-out run counts as the
    slowest), with every run's wall time kept on it."""
    rows = [run_contender(scenario, contender, timeout) for _ in range(repeat)]
    rows.sort(key=lambda r: (r.wall is None, r.wall or 0.0))
    median = rows[len(rows) // 2]
    median.walls = [r.wall for r in rows]
    return median


def run_scenario(
    scenario: Scenario,
    contenders: list[str] | None,
    timeout: float | None,
    repeat: int = 1,
    plots: str | None = None,
) -> dict[str, Any]:
    who = [c for c in (contenders or scenario.contenders)]
    with shared_by_runs(scenario.runner):
        rows = [run_repeated(scenario, c, timeout or scenario.timeout(), repeat) for c in who]
    found: list[Target] = targets(scenario, rows)
    print_scenario(scenario.title(), rows, found)
    if plots:
        import _goodput_plot

        path = _goodput_plot.draw(scenario, rows, plots)
        print(f"picture: {path}")
    return {
        "name": scenario.name,
        "title": scenario.title(),
        "ideal": scenario.ideal(),
        "rows": [r.to_json() for r in rows],
        "targets": [vars(t) for t in found],
    }


def _names(raw: str, known: dict[str, Any], what: str) -> list[str]:
    names: list[str] = []
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        names += GROUPS.get(name, [name]) if known is SCENARIOS else [name]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios",
        type=lambda raw: _names(raw, SCENARIOS, "scenario"),
        default=list(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)} or the groups "
        f"{','.join(GROUPS)} (default all)",
    )
    parser.add_argument(
        "--contenders",
        type=lambda raw: _names(raw, CONTENDERS, "contender"),
        default=None,
        help=f"comma-separated, from {','.join(CONTENDERS)} (default: the scenario's own)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per contender; the run with the median wall time is reported",
    )
    parser.add_argument("--plots", metavar="DIR", help="draw each scenario to DIR/<name>.png")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds each")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        help="hard limit in seconds for each contender's run (default 60 + 3 x ideal)",
    )
    args = parser.parse_args(argv)
    if args.timeout is not None and not args.timeout > 0:
        parser.error("--timeout must be a number of seconds > 0")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _preamble(adaptive: bool) -> None:
    print(_report.machine())
    if not adaptive:
        print(
            "note: ChatWebsim has no adaptive_rate setting in this version: 'ChatWebsim, "
            "adaptive rate off' runs with the defaults, and no call reports rate_wait"
        )
    print(
        "every contender runs in fresh processes against its own server; abatch with "
        "max_concurrency; in S5 and S6 each of the 4 workers has its own concurrency limit; "
        "S6's workers are Ray tasks, each in a fresh Ray worker process, on a local cluster "
        "started for the scenario"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = QUICK if args.quick else SCENARIOS
    adaptive = bool(adaptive_off())
    _preamble(adaptive)
    results = [
        run_scenario(table[n], args.contenders, args.timeout, args.repeat, args.plots)
        for n in args.scenarios
    ]
    if args.json:
        out = {
            "machine": _report.machine(),
            "quick": args.quick,
            "adaptive_rate_setting": adaptive,
            "scenarios": results,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
