"""The goodput benchmark runs end to end in its quick configuration, and its arithmetic holds.

No wall-clock figure is asserted against a goal: timings on a shared machine say nothing
about correctness.  What is checked is that every contender ran, that the counts agree with
one another (every successful call is exactly one request the bucket let through), and that
the token bucket and the ideal times are computed as documented.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

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


def test_quick_s1_prints_a_row_for_every_contender_with_consistent_counts(
    tmp_path: Path,
) -> None:
    out_json = tmp_path / "goodput.json"
    # The benchmark imports this checkout's package, not whichever one is installed.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    args = ["--quick", "--scenarios", "S1", "--json", str(out_json)]
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(GOODPUT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 0, done.stderr
    title = re.search(r"^S1: .*; (\d+) calls, \d+ concurrent; ideal ([\d.]+) s$", done.stdout, re.M)
    assert title, done.stdout
    calls, ideal = int(title[1]), float(title[2])
    rows = _table_rows(done.stdout)
    assert sorted(rows) == sorted(LABELS), done.stdout
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
    for goal in ("failed calls", "429s", "wall / ideal", "wall / oracle"):
        assert re.search(rf"^  (PASS|MISS)  S1 {goal} = ", done.stdout, re.M), goal
    report = json.loads(out_json.read_text(encoding="utf-8"))
    figures = {r["label"]: r for r in report["scenarios"][0]["rows"]}
    assert {label: int(rows[label][1].split(" / ")[0]) for label in LABELS} == {
        label: figures[label]["ok"] for label in LABELS
    }
    # Both routes sit behind the bucket: ChatOpenAI used its own, everyone else Websim's.
    assert set(figures["ChatOpenAI defaults"]["requests_by_route"]) == {"/v1/chat/completions"}
    assert set(figures["ChatWebsim defaults"]["requests_by_route"]) == {
        "/api/v1/inference/run_chat_completion"
    }
    assert "Unclosed" not in done.stderr and "ResourceWarning" not in done.stderr, done.stderr


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


def test_s5_oracles_share_the_one_limit(bench: ModuleType) -> None:
    jobs = bench.SCENARIOS["S5"].jobs("oracle", "http://127.0.0.1:9")
    assert len(jobs) == 4
    assert sum(job.rate for job in jobs) == 10 and sum(job.burst for job in jobs) == 10


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
    for scenario in ("S1", "S2", "S3", "S4", "S5"):
        assert re.search(rf"^\*\*{scenario}\*\*: ", section, re.M), scenario
    for label in LABELS:
        assert section.count(f"| {label} |") >= 5, label  # a row in every scenario's table
