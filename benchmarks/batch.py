"""`websim batch` against a rate-limited emulator: speed, crash and Ctrl-C resume, images, memory.

Usage (after ``pip install -e '.[test]'``)::

    python benchmarks/batch.py            # the issue's sizes (about 6 minutes)
    python benchmarks/batch.py --quick    # small sizes, a smoke test (under a minute)

Every run is the real command (``python -m langchain_websim batch ...``) in a process of its
own, so it can be killed, and its peak memory is its own; the emulator runs in this process
and counts every request it receives.  "Ideal" is the fastest the emulator's token bucket
allows: ``(calls - burst) / rate`` seconds.  The report prints each figure and PASS or MISS
for each target:

1. N chat prompts at the rate limit, defaults: 0 failed, wall <= 1.15 x ideal.
2. The same run killed with SIGKILL at about half, then rerun: exactly N ok lines with
   unique ids; requests over both runs <= N + concurrency + 429s; total wall <= 1.25 x ideal.
3. SIGINT at about half: exit 130 within the grace period + 1 s, a summary line, and the
   rerun completes the job.
4. M image prompts: M valid PNG files, every ``path`` exists, no two lines share one.
5. Memory: a BIG-line chat batch (no rate limit) peaks within 50 MB of a SMALL-line one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from langchain_websim.batch import DEFAULT_CONCURRENCY, DEFAULT_GRACE
from langchain_websim.testing import WebsimEmulator

RATE, BURST = 10.0, 10


@dataclass(frozen=True)
class Sizes:
    chat: int
    images: int
    memory_small: int
    memory_big: int


FULL = Sizes(chat=1000, images=200, memory_small=1000, memory_big=20000)
QUICK = Sizes(chat=60, images=10, memory_small=100, memory_big=400)


@dataclass
class Run:
    code: int
    wall: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    signal_to_exit: float = float("nan")


def command(kind: str, source: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "langchain_websim",
        "batch",
        kind,
        str(source),
        "--output",
        str(out),
        "--base-url",
        base_url,
        "--quiet",
        *extra,
    ]


def run(
    argv: list[str], *, until: Callable[[], bool] | None = None, send: int | None = None
) -> Run:
    """Run ``argv``; when ``until()`` turns true, send it signal ``send``.

    ``wall`` is from spawn to exit; ``signal_to_exit`` from the signal to exit.  The child
    is reaped with ``wait4`` to read its own peak RSS.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=_env())
        signalled_at = None
        if until is not None and send is not None:
            while proc.poll() is None and not until():
                time.sleep(0.05)
            if proc.poll() is None:
                signalled_at = time.perf_counter()
                proc.send_signal(send)
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.perf_counter()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(
            proc.returncode, ended - started, usage.ru_maxrss / 1024, out.read(), err.read()
        )
    if signalled_at is not None:
        result.signal_to_exit = ended - signalled_at
    return result


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WEBSIM_BASE_URL", None)
    return env


def journal_lines(out: Path) -> list[dict[str, object]]:
    """The complete entries of a journal (a torn last line is not counted)."""
    if not out.exists():
        return []
    entries = []
    with out.open("rb") as journal:
        for number, raw in enumerate(journal):
            if number == 0 or not raw.endswith(b"\n"):
                continue
            entries.append(json.loads(raw))
    return entries


def count_lines(out: Path) -> int:
    try:
        with out.open("rb") as journal:
            return max(0, sum(1 for _ in journal) - 1)
    except FileNotFoundError:
        return 0


def write_prompts(path: Path, n: int, what: str) -> Path:
    with path.open("w", encoding="utf-8") as file:
        for i in range(n):
            file.write(json.dumps({"id": f"{what}-{i:05d}", "prompt": f"{what} number {i}"}))
            file.write("\n")
    return path


def ideal(n: int) -> float:
    return max(n - BURST, 0) / RATE


class Report:
    def __init__(self) -> None:
        self.misses = 0

    def figure(self, name: str, value: str) -> None:
        print(f"  {name}: {value}", flush=True)

    def target(self, label: str, ok: bool, detail: str) -> None:
        self.misses += not ok
        print(f"[{label}] {'PASS' if ok else 'MISS'}: {detail}", flush=True)


def check_complete(out: Path, n: int) -> tuple[bool, str]:
    entries = journal_lines(out)
    ok = [e for e in entries if e.get("ok") is True]
    ids = {e["id"] for e in ok}
    failed = sum(1 for e in entries if e.get("ok") is False)
    good = len(ok) == n and len(ids) == n
    return good, f"{len(ok)} ok lines, {len(ids)} unique ids, {failed} failed lines"


# ---------------------------------------------------------------------- the scenarios


def speed(emu: WebsimEmulator, work: Path, n: int, report: Report) -> None:
    print(f"\n1. {n} chat prompts at {RATE:g}/s (burst {BURST}), defaults", flush=True)
    emu.clear()
    source = write_prompts(work / "speed.jsonl", n, "speed")
    out = work / "speed.out.jsonl"
    result = run(command("chat", source, out, emu.base_url))
    complete, detail = check_complete(out, n)
    ratio = result.wall / ideal(n)
    report.figure("exit code", str(result.code))
    report.figure("journal", detail)
    report.figure("requests", f"{len(emu.requests)} ({emu.rate_limited_count} answered 429)")
    report.figure("wall", f"{result.wall:.1f} s; ideal {ideal(n):.1f} s; ratio {ratio:.3f}")
    report.target("1", result.code == 0 and complete and ratio <= 1.15, f"wall/ideal = {ratio:.3f}")


def kill_and_resume(emu: WebsimEmulator, work: Path, n: int, report: Report) -> None:
    print("\n2. the same, SIGKILL at about half, then rerun", flush=True)
    emu.clear()
    source = write_prompts(work / "kill.jsonl", n, "kill")
    out = work / "kill.out.jsonl"
    argv = command("chat", source, out, emu.base_url)
    first = run(argv, until=lambda: count_lines(out) >= n // 2, send=signal.SIGKILL)
    at_kill = count_lines(out)
    second = run(argv)
    complete, detail = check_complete(out, n)
    requests, limited = len(emu.requests), emu.rate_limited_count
    bound = n + DEFAULT_CONCURRENCY + limited
    total = first.wall + second.wall
    ratio = total / ideal(n)
    report.figure("killed with", f"{at_kill} lines in the journal (exit {first.code})")
    report.figure("rerun exit code", str(second.code))
    report.figure("journal", detail)
    report.figure(
        "requests over both runs",
        f"{requests} <= {n} + {DEFAULT_CONCURRENCY} + {limited} 429s = {bound}",
    )
    report.figure(
        "wall", f"{first.wall:.1f} s + {second.wall:.1f} s = {total:.1f} s; ratio {ratio:.3f}"
    )
    report.target(
        "2",
        second.code == 0 and complete and requests <= bound and ratio <= 1.25,
        f"{detail}; requests {requests} <= {bound}; total/ideal = {ratio:.3f}",
    )


def interrupt_and_resume(emu: WebsimEmulator, work: Path, n: int, report: Report) -> None:
    print("\n3. the same, SIGINT at about half, then rerun", flush=True)
    emu.clear()
    source = write_prompts(work / "int.jsonl", n, "int")
    out = work / "int.out.jsonl"
    argv = command("chat", source, out, emu.base_url)
    first = run(argv, until=lambda: count_lines(out) >= n // 2, send=signal.SIGINT)
    to_exit = first.signal_to_exit
    summary = [line for line in first.stderr.splitlines() if "rerun the same command" in line]
    second = run(argv)
    complete, detail = check_complete(out, n)
    report.figure("first run", f"exit {first.code}, {to_exit:.2f} s from SIGINT to exit")
    report.figure("its summary", summary[0] if summary else "(none)")
    report.figure("rerun", f"exit {second.code}; {detail}")
    limit = DEFAULT_GRACE + 1.0
    report.target(
        "3",
        first.code == 130 and to_exit <= limit and bool(summary) and complete,
        f"exit {first.code} in {to_exit:.2f} s <= {limit:g} s; rerun: {detail}",
    )


def images(emu: WebsimEmulator, work: Path, n: int, report: Report) -> None:
    print(f"\n4. {n} image prompts at {RATE:g}/s", flush=True)
    emu.clear()
    source = write_prompts(work / "images.jsonl", n, "picture")
    out = work / "images.out.jsonl"
    folder = work / "pictures"
    result = run(command("image", source, out, emu.base_url, "--images-dir", str(folder)))
    entries = [e for e in journal_lines(out) if e.get("ok") is True]
    paths = [str(e["path"]) for e in entries]
    valid = sum(1 for p in paths if Path(p).is_file() and png_is_valid(Path(p).read_bytes()))
    unique = len(set(paths))
    report.figure("exit code", str(result.code))
    report.figure("ok lines", f"{len(entries)}; valid PNG files {valid}; unique paths {unique}")
    report.figure("wall", f"{result.wall:.1f} s; ideal {ideal(n):.1f} s")
    report.target(
        "4",
        result.code == 0 and len(entries) == n and valid == n and unique == n,
        f"{valid} valid PNGs of {n}, {unique} unique existing paths",
    )


def memory(emu: WebsimEmulator, work: Path, small: int, big: int, report: Report) -> None:
    print(f"\n5. memory: {big} vs {small} chat lines, no rate limit", flush=True)
    emu.set_rate_limit(None)
    peaks = {}
    for n in (small, big):
        emu.clear()
        source = work / f"memory-{n}.txt"
        source.write_text("".join(f"short prompt {i}\n" for i in range(n)), encoding="utf-8")
        result = run(command("chat", source, work / f"memory-{n}.out.jsonl", emu.base_url))
        peaks[n] = result.peak_rss_mb
        report.figure(
            f"{n} lines",
            f"peak RSS {result.peak_rss_mb:.1f} MB, {result.wall:.1f} s, exit {result.code}",
        )
    growth = peaks[big] - peaks[small]
    report.target("5", growth <= 50, f"{big} lines peak {growth:+.1f} MB over {small} lines")
    emu.set_rate_limit(RATE, burst=BURST)


def png_is_valid(data: bytes) -> bool:
    """Signature, every chunk's CRC, IHDR first, IEND last, the pixel data inflates."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, kinds, idat = 8, [], b""
    while pos < len(data):
        if pos + 8 > len(data):
            return False
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length] or b"\0\0\0\0")
        if zlib.crc32(kind + body) != crc:
            return False
        kinds.append(kind)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    try:
        zlib.decompress(idat)
    except zlib.error:
        return False
    return bool(kinds) and kinds[0] == b"IHDR" and kinds[-1] == b"IEND"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    report = Report()
    with (
        tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp,
        WebsimEmulator(rate_limit=RATE, burst=BURST) as emu,
    ):
        work = Path(tmp)
        speed(emu, work, sizes.chat, report)
        kill_and_resume(emu, work, sizes.chat, report)
        interrupt_and_resume(emu, work, sizes.chat, report)
        images(emu, work, sizes.images, report)
        memory(emu, work, sizes.memory_small, sizes.memory_big, report)
    print(f"\n{report.misses} targets missed", flush=True)
    return 1 if report.misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
