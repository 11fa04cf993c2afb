"""The goodput benchmark runs end to end in its quick configuration, and its arithmetic holds.

No wall-clock figure is asserted against a goal: timings on a shared machine say nothing
about correctness.  What is checked is that every contender ran, in processes (S1) and on Ray
tasks (S6), that the counts agree with one another (every successful call is exactly one
request the bucket let through), that the token bucket and the ideal times are computed as
documented, and that a bad job or run is refused before any worker starts.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import ray
from langchain_core.messages import AIMessage

pytestmark = pytest.mark.slow  # tens of seconds in all: a parallel run starts this file first

ROOT = Path(__file__).resolve().parents[2]
GOODPUT = ROOT / "benchmarks" / "goodput.py"
LABELS = (
    "ChatWebsim defaults",
    "ChatWebsim, adaptive rate off",
    "ChatWebsim + InMemoryRateLimiter (oracle)",
    "ChatOpenAI defaults",
)


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The benchmark's modules, importable the way the script imports them."""
    monkeypatch.syspath_prepend(str(GOODPUT.parent))
    return importlib.import_module("goodput")


def _table_rows(out: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in LABELS:
            assert cells[0] not in rows, f"two rows for {cells[0]}"
            rows[cells[0]] = cells
    return rows


def _run_quick(scenario: str, out_json: Path, *contenders: str) -> subprocess.CompletedProcess[str]:
    # The benchmark imports this checkout's package, not whichever one is installed.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    args = ["--quick", "--scenarios", scenario, "--json", str(out_json)]
    if contenders:
        args += ["--contenders", ",".join(contenders)]
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(GOODPUT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stderr
    assert "Unclosed" not in done.stderr and "ResourceWarning" not in done.stderr, done.stderr
    return done


def _check_rows(
    out: str, calls: int, ideal: float, labels: tuple[str, ...] = LABELS
) -> dict[str, list[str]]:
    """Every contender run has a row, and each row's counts agree with one another."""
    rows = _table_rows(out)
    assert sorted(rows) == sorted(labels), out
    for label, cells in rows.items():
        ok, failed = (int(n) for n in cells[1].split(" / "))
        requests, limited, wall = int(cells[2]), int(cells[3]), float(cells[5])
        assert ok + failed == calls, label
        # Each call sends at least once; every 200 the bucket gave is one successful call.
        assert requests >= calls and requests - limited == ok, label
        assert cells[4] == f"{100 * limited / calls:.0f} %", label
        assert wall > 0 and float(cells[6]) == ideal, label
        assert float(cells[7]) == pytest.approx(wall / ideal, abs=0.06), label
    assert float(rows["ChatWebsim + InMemoryRateLimiter (oracle)"][8]) == 1.0
    return rows


def _check_report(out: str, out_json: Path, name: str, rows: dict[str, list[str]]) -> None:
    for goal in ("failed calls", "429s", "wall / ideal", "wall / oracle"):
        assert re.search(rf"^  (PASS|MISS)  {name} {goal} = ", out, re.M), goal
    report = json.loads(out_json.read_text(encoding="utf-8"))
    figures = {r["label"]: r for r in report["scenarios"][0]["rows"]}
    assert {label: int(cells[1].split(" / ")[0]) for label, cells in rows.items()} == {
        label: figures[label]["ok"] for label in rows
    }
    # Both routes sit behind the bucket: ChatOpenAI used its own, everyone else Websim's.
    websim = {"/api/v1/inference/run_chat_completion"}
    for label, row in figures.items():
        openai = label == "ChatOpenAI defaults"
        assert set(row["requests_by_route"]) == ({"/v1/chat/completions"} if openai else websim)


def test_quick_s1_prints_a_row_for_every_contender_with_consistent_counts(
    tmp_path: Path,
) -> None:
    out_json = tmp_path / "goodput.json"
    done = _run_quick("S1", out_json)
    title = re.search(r"^S1: .*; (\d+) calls, \d+ concurrent; ideal ([\d.]+) s$", done.stdout, re.M)
    assert title, done.stdout
    rows = _check_rows(done.stdout, int(title[1]), float(title[2]))
    _check_report(done.stdout, out_json, "S1", rows)


def test_quick_s6_runs_on_ray_tasks(tmp_path: Path) -> None:
    # ChatWebsim's defaults, which the targets are for, and the oracle they are measured
    # against: all four contenders would take about a minute (S1 builds each of them).
    out_json = tmp_path / "goodput.json"
    done = _run_quick("S6", out_json, "websim", "oracle")
    title = re.search(
        r"^S6: 4 Ray tasks share .*; (\d+) calls \(4 Ray tasks x (\d+)\), \d+ concurrent in "
        r"each; ideal ([\d.]+) s$",
        done.stdout,
        re.M,
    )
    assert title, done.stdout
    assert int(title[1]) == 4 * int(title[2])
    labels = ("ChatWebsim defaults", "ChatWebsim + InMemoryRateLimiter (oracle)")
    rows = _check_rows(done.stdout, int(title[1]), float(title[3]), labels)
    _check_report(done.stdout, out_json, "S6", rows)


def test_bucket_refills_at_the_scheduled_rate_from_the_first_request(bench: ModuleType) -> None:
    from _bucket_server import Bucket, Limit

    # Binary fractions keep the float arithmetic exact.
    bucket = Bucket(Limit(rate=1, burst=1, schedule=((1.0, 16.0),)))
    assert [bucket.take(t) for t in (10.0, 10.0, 10.5)] == [True, False, False]
    # At 11.0 the old rate has refilled one token, and the new one applies from then on.
    assert [bucket.take(t) for t in (11.0, 11.03125, 11.0625)] == [True, False, True]
    # The bucket never holds more than its burst, however long it stays idle.
    assert [bucket.take(100.0), bucket.take(100.0)] == [True, False]


def test_ideal_times_follow_the_rate_schedule(bench: ModuleType) -> None:
    scenarios = bench.SCENARIOS
    assert scenarios["S1"].ideal() == 29.0
    assert scenarios["S3"].ideal() == pytest.approx(7.8)
    assert scenarios["S4"].ideal() == 30.0
    assert scenarios["S5"].total_calls == 200 and scenarios["S5"].ideal() == 19.0
    short = bench.Scenario("S", "", 20, 10, 100, 50, 1.3, schedule=((15.0, 5.0),))
    assert short.ideal() == 4.5  # every call fits in the first phase


@pytest.mark.parametrize("name", ["S5", "S6"])
def test_fleet_oracles_share_the_one_limit(bench: ModuleType, name: str) -> None:
    jobs = bench.SCENARIOS[name].jobs("oracle", "http://127.0.0.1:9")
    assert len(jobs) == 4
    assert sum(job.rate for job in jobs) == 10 and sum(job.burst for job in jobs) == 10


def test_s6_is_s5_on_ray_tasks(bench: ModuleType) -> None:
    for table in (bench.SCENARIOS, bench.QUICK):
        s5, s6 = table["S5"], table["S6"]
        assert (s5.runner, s6.runner) == ("processes", "ray")
        assert replace(s6, name="S5", about=s5.about, runner="processes") == s5
    from _goodput_fleet import RUNNERS

    assert set(RUNNERS) == {s.runner for s in bench.SCENARIOS.values()}


def test_summary_counts_answers_errors_and_wrong_answers(bench: ModuleType) -> None:
    from _goodput_worker import ANSWER, summarize

    results = [
        AIMessage(ANSWER, response_metadata={"rate_wait": 0.25}),
        AIMessage(ANSWER),
        AIMessage("something else"),
        TimeoutError("slow"),
    ]
    assert summarize(results, 1.5) == {
        "ok": 2,
        "failed": 2,
        "errors": {"wrong answer": 1, "TimeoutError": 1},
        "wall": 1.5,
        "rate_waits": [0.25],
    }


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"contender": "gpt"}, ValueError, "unknown contender 'gpt'"),
        ({"calls": 0}, ValueError, "calls must be a whole number >= 1"),
        ({"calls": 2.5}, TypeError, "calls must be a whole number >= 1"),
        ({"concurrency": True}, TypeError, "concurrency must be a whole number >= 1"),
    ],
)
def test_a_job_with_a_bad_field_is_refused_where_it_is_made(
    bench: ModuleType, change: dict[str, Any], error: type[Exception], message: str
) -> None:
    from _goodput_worker import Job

    fields: dict[str, Any] = {
        "contender": "websim",
        "url": "http://127.0.0.1:9",
        "calls": 1,
        "concurrency": 1,
        "rate": 1.0,
        "burst": 1.0,
    }
    with pytest.raises(error, match=message):
        Job(**{**fields, **change})


@pytest.mark.parametrize("runner", ["processes", "ray"])
@pytest.mark.parametrize(
    ("jobs", "timeout", "error", "message"),
    [
        ([], 10, TypeError, "jobs must be a non-empty sequence of Job"),
        ([("websim",)], 10, TypeError, "jobs must be a non-empty sequence of Job"),
        (None, 0, ValueError, "timeout must be a number of seconds > 0"),
        (None, "60", TypeError, "timeout must be a number of seconds > 0"),
        (None, True, TypeError, "timeout must be a number of seconds > 0"),
    ],
)
def test_runners_refuse_a_bad_run_before_starting_anything(
    bench: ModuleType,
    runner: str,
    jobs: Any,
    timeout: Any,
    error: type[Exception],
    message: str,
) -> None:
    from _goodput_fleet import RUNNERS

    if jobs is None:
        jobs = bench.QUICK["S5"].jobs("websim", "http://127.0.0.1:9")
    with pytest.raises(error, match=message):
        RUNNERS[runner](jobs, timeout)
    assert multiprocessing.active_children() == []
    assert not ray.is_initialized()


def test_unknown_names_are_refused_before_anything_runs(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--scenarios", "S1,S9"])
    assert exc.value.code == 2
    assert "unknown scenario S9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--contenders", "websim,gpt"])
    assert "unknown contender gpt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--timeout", "0"])
    assert "--timeout must be" in capsys.readouterr().err


def test_performance_page_documents_the_goodput_benchmark() -> None:
    page = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    section = page.split("## Goodput under Websim's rate limit", 1)[1]
    assert "python benchmarks/goodput.py" in section
    for scenario in ("S1", "S2", "S3", "S4", "S5", "S6"):
        assert re.search(rf"^\*\*{scenario}\*\*: ", section, re.M), scenario
    for label in LABELS:
        assert section.count(f"| {label} |") >= 6, label  # a row in every scenario's table


def test_first_contact_and_noise_scenarios_are_the_issues(bench: ModuleType) -> None:
    first = bench.FIRST_CONTACT
    assert sorted((s.latency, s.calls) for s in first.values()) == sorted(
        (latency, calls) for latency in (1.0, 5.0) for calls in (4, 10, 50, 200)
    )
    for s in first.values():
        # No limit, the whole batch at once, a fresh client each (a worker process each).
        assert s.rate is None and s.ideal() is None and s.concurrency == s.calls
        assert (s.goal, s.wall_target) == ("off", 1.05 if s.calls <= 10 else 1.15)
        assert s.contenders == ("websim", "websim-off")
    n1, n2 = bench.NOISE["N1"], bench.NOISE["N2"]
    assert (n1.rate, n1.noise, n1.calls, n1.concurrency) == (None, 0.3, 200, 50)
    assert dict(n1.settings) == {"max_retries": 6} and n1.goal == "noise"
    assert (n2.rate, n2.noise, n2.wall_target, n2.ideal()) == (10, 0.1, 1.3, 29.0)
    assert bench.parse_args(["--scenarios", "noise,S1"]).scenarios == ["N1", "N2", "S1"]


def test_slow_model_scenarios_are_the_limits_with_answers_after_a_second(
    bench: ModuleType,
) -> None:
    slow = bench.SLOW_MODEL
    assert sorted(slow) == ["N2@1s", "S1@1s", "S2@1s", "S4@1s", "S5@1s"]
    for name, s in slow.items():
        base = bench.SCENARIOS[name.removesuffix("@1s")]
        assert s.latency == 1.0 and base.latency == 0.0
        assert (s.rate, s.burst, s.calls, s.workers, s.noise, s.wall_target) == (
            base.rate,
            base.burst,
            base.calls,
            base.workers,
            base.noise,
            base.wall_target,
        )
    assert bench.parse_args(["--scenarios", "slow-model"]).scenarios == list(slow)


def _row(bench: ModuleType, contender: str, wall: float | None, failed: int = 0) -> Any:
    from _goodput_report import Row

    return Row(contender, 10, 10 - failed, failed, 10, 0, wall, None)


@pytest.mark.parametrize(
    ("name", "websim", "off", "verdict"),
    [
        ("F1x10", 1.05, 1.0, "PASS"),  # at the bound
        ("F1x10", 1.06, 1.0, "MISS"),
        ("F1x50", 1.15, 1.0, "PASS"),
        ("N1", 21.0, 10.0, "PASS"),  # 2 x 10 + 1
        ("N1", 21.5, 10.0, "MISS"),
    ],
)
def test_time_goals_against_the_control_off_run(
    bench: ModuleType, name: str, websim: float, off: float, verdict: str
) -> None:
    from _goodput_report import targets

    rows = [_row(bench, "websim", websim), _row(bench, "websim-off", off)]
    found = [t for t in targets(bench.SCENARIOS[name], rows) if "wall" in t.name]
    assert len(found) == 1 and ("PASS" if found[0].ok else "MISS") == verdict, found


def test_a_run_with_failed_calls_meets_no_time_goal(bench: ModuleType) -> None:
    from _goodput_report import targets

    rows = [_row(bench, "websim", 1.0, failed=1), _row(bench, "websim-off", 1.0)]
    assert [t.ok for t in targets(bench.SCENARIOS["F1x4"], rows)] == [False, True, False]


def test_the_bucket_without_a_limit_takes_everything(
    bench: ModuleType,
) -> None:
    from _bucket_server import Bucket, Limit

    limitless = Bucket(Limit(rate=None, burst=0))
    assert all(limitless.take(t / 1000) for t in range(1000))


def test_the_picture_is_drawn_from_the_servers_record(bench: ModuleType, tmp_path: Path) -> None:
    import _goodput_plot
    from _goodput_report import Row

    s1 = bench.SCENARIOS["S1"]
    timeline = [(i / 10, 429 if i % 4 == 0 else 200, i / 10 + 0.05) for i in range(100)]
    rows = [Row("websim", 75, 75, 0, 100, 25, 10.0, 29.0, timeline=timeline)]
    path = _goodput_plot.draw(s1, rows, str(tmp_path))
    assert path == tmp_path / "S1.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    xs, rates = _goodput_plot.per_second([0.05, 0.15, 0.16], span=0.3, width=0.1)
    assert rates == pytest.approx([10.0, 20.0, 0.0]) and xs == pytest.approx([0.05, 0.15, 0.25])
    assert _goodput_plot.limit_line(bench.SCENARIOS["S4"], 30.0) == (
        [0.0, 15.0, 15.0, 30.0],
        [20, 20, 5.0, 5.0],
    )
