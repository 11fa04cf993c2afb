"""The benchmark script runs end to end in its smoke configuration.

Only that it completes and prints every figure and every target line is checked: timings
on a shared machine say nothing about correctness, so no value is asserted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"

FIGURES = [
    "raw aiohttp, one session",
    "LangChain layer (no network)",
    "floor: raw aiohttp in a LangChain model",
    "ChatWebsim.ainvoke",
    "ChatOpenAI.ainvoke",
    "x ChatWebsim.invoke, sequential",
    "x ChatWebsim.ainvoke, sequential",
    "concurrent ChatWebsim.ainvoke (fresh process): peak RSS",
    "`import langchain_websim` +",
    "`from langchain_websim import ChatWebsim` +",
    "ChatWebsim.ainvoke, a new client per round",
    "floor, a new session per round",
]
TARGETS = [
    r"\[1\] HTTP ChatWebsim / \(LangChain layer \+ raw aiohttp\) = [\d.]+",
    r"\[1\] HTTPS ChatWebsim / \(LangChain layer \+ raw aiohttp\) = [\d.]+",
    r"\[2\] HTTP ChatOpenAI / ChatWebsim = [\d.]+x",
    r"\[2\] HTTPS ChatOpenAI / ChatWebsim = [\d.]+x",
    r"\[3\] HTTP sync invoke / ainvoke, sequential = [\d.]+",
    r"\[3\] HTTPS sync invoke / ainvoke, sequential = [\d.]+",
    r"\[4\] peak RSS, \d+ concurrent ainvoke = [\d.]+ MB",
    r"\[5\] import langchain_websim, added import time = [\d.]+ ms",
    r"\[5\] from langchain_websim import ChatWebsim, added import time = [\d.]+ ms",
    r"\[6\] HTTP ChatWebsim / floor, a new client per round = [\d.]+",
    r"\[6\] HTTPS ChatWebsim / floor, a new client per round = [\d.]+",
]


def test_quick_run_prints_every_figure_and_every_target() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(BENCH), "--quick", "--profile"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for figure in FIGURES:
        assert figure in out, figure
    for row in ("ChatWebsim.ainvoke", "ChatOpenAI.ainvoke", "raw aiohttp, one session"):
        line = next(ln for ln in out.splitlines() if ln.startswith(row))
        assert len(re.findall(r"\d+\.\d+ s", line)) == 2, line  # an HTTP and an HTTPS figure
    for target in TARGETS:
        assert re.search(rf"^  (PASS|MISS)  {target}  \(target ", out, re.MULTILINE), target
    assert re.search(r"^\d+ of 11 targets met$", out, re.MULTILINE)
    assert "==== profile: ChatWebsim.ainvoke" in out
    assert "==== profile: ChatWebsim.invoke" in out
    # Nothing left open: no unclosed sessions, sockets or transports at exit.
    assert "Unclosed" not in done.stderr and "ResourceWarning" not in done.stderr, done.stderr


def test_performance_page_gives_the_command_machine_and_every_target() -> None:
    page = (BENCH.parents[1] / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "python benchmarks/bench.py" in page
    assert "pip install -e '.[benchmark]'" in page
    assert "nproc" in page and "/proc/cpuinfo" in page
    for number in range(1, 6):
        assert re.search(rf"^\| {number} \| .+\| (PASS|\*\*MISS\*\*)", page, re.MULTILINE), number
