"""Goodput under Websim's rate limit: how fast chat calls get through a token bucket.

Usage (after ``pip install -e '.[benchmark]'``)::

    python benchmarks/goodput.py                       # every scenario, every contender
    python benchmarks/goodput.py --quick               # tiny sizes, a smoke test
    python benchmarks/goodput.py --scenarios S1,S3 --contenders websim,oracle --json out.json

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
from _goodput_report import Row, Target, print_scenario, targets
from _goodput_worker import CONTENDERS, Job, adaptive_off


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    rate: float
    """Requests per second the server allows (shared by all workers)."""
    burst: int
    calls: int
    """Per worker."""
    concurrency: int
    """Per worker: abatch's max_concurrency."""
    wall_target: float
    """The most wall / ideal ChatWebsim's defaults may take."""
    workers: int = 1
    retry_after: int | None = None
    schedule: tuple[tuple[float, float], ...] = ()
    """(seconds after the first request, new rate) steps."""
    runner: str = "processes"
    """Key of ``RUNNERS``: how the workers are started."""

    @property
    def worker_kind(self) -> str:
        return WORKER_KINDS[self.runner]

    @property
    def total_calls(self) -> int:
        return self.calls * self.workers

    def ideal(self) -> float:
        """Seconds the bucket needs to let every call through: (calls - burst) / rate,
        phase by phase when the rate changes."""
        need, now, rate = float(self.total_calls - self.burst), 0.0, self.rate
        for at, new_rate in self.schedule:
            if need <= (at - now) * rate:
                break
            need -= (at - now) * rate
            now, rate = at, new_rate
        return now + max(0.0, need) / rate

    def limit(self) -> Limit:
        return Limit(self.rate, self.burst, self.retry_after, self.schedule)

    def jobs(self, contender: str, url: str) -> list[Job]:
        # Each worker's oracle gets an equal share of the true rate and burst.
        share = 1 / self.workers
        schedule = tuple((at, rate * share) for at, rate in self.schedule)
        job = Job(
            contender,
            url,
            self.calls,
            self.concurrency,
            self.rate * share,
            self.burst * share,
            schedule,
        )
        return [job] * self.workers

    def timeout(self) -> float:
        """Hard limit for one contender's run: generous over ideal, but bounded."""
        return 60 + 3 * self.ideal()

    def title(self) -> str:
        each = f" ({self.workers} {self.worker_kind} x {self.calls})" if self.workers > 1 else ""
        conc = f"{self.concurrency} concurrent" + (" in each" if self.workers > 1 else "")
        return (
            f"{self.name}: {self.about}; {self.total_calls} calls{each}, {conc}; "
            f"ideal {self.ideal():.1f} s"
        )


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


def run_scenario(
    scenario: Scenario, contenders: list[str], timeout: float | None
) -> dict[str, Any]:
    with shared_by_runs(scenario.runner):
        rows = [run_contender(scenario, c, timeout or scenario.timeout()) for c in contenders]
    found: list[Target] = targets(scenario.name, rows, scenario.wall_target)
    print_scenario(scenario.title(), rows, found)
    return {
        "name": scenario.name,
        "title": scenario.title(),
        "ideal": scenario.ideal(),
        "rows": [r.to_json() for r in rows],
        "targets": [vars(t) for t in found],
    }


def _names(raw: str, known: dict[str, Any], what: str) -> list[str]:
    names = [n.strip() for n in raw.split(",") if n.strip()]
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
        help=f"comma-separated, from {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument(
        "--contenders",
        type=lambda raw: _names(raw, CONTENDERS, "contender"),
        default=list(CONTENDERS),
        help=f"comma-separated, from {','.join(CONTENDERS)} (default all)",
    )
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
    results = [run_scenario(table[n], args.contenders, args.timeout) for n in args.scenarios]
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
