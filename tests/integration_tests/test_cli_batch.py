"""``websim batch`` as a user runs it: killed and rerun, interrupted and rerun, refused input;
and ``websim emulator --verbose``.  Small jobs against a rate-limited emulator; each kill
waits for requests to arrive (an event), never for time to pass."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import WebsimClient
from langchain_websim.batch import DEFAULT_CONCURRENCY
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.cli_run import error_lines_are_ours, run
from tests.integration_tests.emulator_http import USER

PROMPTS = 40


@pytest.fixture
def limited() -> Any:
    """A rate limit that makes a 40-line job last a second or two: long enough to stop it
    half-way, short enough for CI."""
    with WebsimEmulator(rate_limit=30, burst=2) as emu:
        yield emu


def prompts(tmp_path: Path, n: int = PROMPTS) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(n)))
    return path


def batch_argv(source: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return ["batch", "chat", str(source), "-o", str(out), "--base-url", base_url, *extra]


def start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "WEBSIM_BASE_URL"}
    return subprocess.Popen(
        [sys.executable, "-m", "langchain_websim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def ok_ids(out: Path) -> list[str]:
    lines = out.read_bytes().split(b"\n")
    complete = [json.loads(line) for line in lines[1:-1]]  # the last piece may be torn
    return [entry["id"] for entry in complete if entry["ok"]]


def test_killed_then_rerun_finishes_with_every_id_once(
    limited: WebsimEmulator, tmp_path: Path
) -> None:
    source, out = prompts(tmp_path), tmp_path / "out.jsonl"
    argv = batch_argv(source, out, limited.base_url, "-q")
    proc = start(*argv)
    try:
        limited.wait_for_requests_sync(PROMPTS // 3, timeout=30)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(set(ok_ids(out))) < PROMPTS  # stopped part-way

    rerun = run(*argv)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith(f"{PROMPTS} done, 0 failed, 0 left")
    ids = ok_ids(out)
    assert sorted(ids, key=int) == [str(i) for i in range(1, PROMPTS + 1)]  # each once
    sent = len(limited.requests)
    assert sent <= PROMPTS + DEFAULT_CONCURRENCY + limited.rate_limited_count


def test_interrupted_then_rerun_finishes(limited: WebsimEmulator, tmp_path: Path) -> None:
    source, out = prompts(tmp_path), tmp_path / "out.jsonl"
    argv = batch_argv(source, out, limited.base_url, "-q", "--grace", "5")
    proc = start(*argv)
    try:
        limited.wait_for_requests_sync(PROMPTS // 3, timeout=30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    summary = re.search(
        r"^(\d+) done, (\d+) failed, (\d+) left — rerun the same command to continue$", err, re.M
    )
    assert summary, err
    done, failed, left = map(int, summary.groups())
    assert done == len(ok_ids(out)) and failed == 0
    # Calls still waiting for a rate slot were not sent: had they been, the 5 s grace period
    # would have let every one of them finish.
    assert left > 0 and done + left == PROMPTS
    sent_before = len(limited.requests)

    rerun = run(*argv)
    assert rerun.returncode == 0, rerun.stderr
    assert len(set(ok_ids(out))) == PROMPTS
    # The rerun made only the calls that were left (plus the 429s it was told to wait out).
    rerun_requests = limited.requests[sent_before:]
    assert len([r for r in rerun_requests if not r.rate_limited]) == left


def test_bad_input_is_refused_line_by_line_with_nothing_sent(
    emulator: WebsimEmulator, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"prompt": "fine"}\n{"prompt": "x", "seed": 3}\n\n{broken\n'
        + "".join('{"id": "same", "prompt": "x"}\n' for _ in range(12))
    )
    out = tmp_path / "out.jsonl"
    result = run(*batch_argv(source, out, emulator.base_url))
    assert result.returncode == 2
    assert error_lines_are_ours(result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0] == f"websim: {source} has 13 problems; nothing was sent:"
    assert lines[1].startswith("websim: line 2: unknown option 'seed'")
    assert lines[2].startswith("websim: line 4: malformed JSON")
    assert lines[3] == "websim: line 6: duplicate id 'same' (first on line 5)"
    assert lines[-1] == "websim: ... and 3 more"
    assert emulator.requests == []
    assert not out.exists()


def test_a_foreign_output_is_refused_and_left_alone(
    emulator: WebsimEmulator, tmp_path: Path
) -> None:
    source = prompts(tmp_path, 2)
    out = tmp_path / "results.jsonl"
    out.write_text("precious\n")
    result = run(*batch_argv(source, out, emulator.base_url))
    assert result.returncode == 2
    assert "is not a websim batch journal" in result.stderr
    assert out.read_text() == "precious\n"
    assert emulator.requests == []


def test_images_from_standard_input_with_flags_as_defaults(
    emulator: WebsimEmulator, tmp_path: Path
) -> None:
    out, folder = tmp_path / "out.jsonl", tmp_path / "pictures"
    env = {k: v for k, v in os.environ.items() if k != "WEBSIM_BASE_URL"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "langchain_websim",
            "batch",
            "image",
            "-",
            "-o",
            str(out),
            "--images-dir",
            str(folder),
            "--base-url",
            emulator.base_url,
            "--seed",
            "5",
            "--aspect-ratio",
            "16:9",
            "--json",
        ],
        input="a lighthouse\na fox\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["failed"], summary["left"]) == (2, 0, 0)
    assert sorted(p.name for p in folder.iterdir()) == ["1.png", "2.png"]
    bodies = [r.body for r in emulator.requests_for("image")]
    assert {(b["prompt"], b["seed"], b["aspect_ratio"]) for b in bodies} == {
        ("a lighthouse", 5, "16:9"),
        ("a fox", 5, "16:9"),
    }


def test_the_emulator_prints_a_line_per_request_when_verbose() -> None:
    proc = start("emulator", "--port", "0", "--verbose", "--rate-limit", "1", "--burst", "1")
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        with WebsimClient(base_url=base_url, max_retries=0, adaptive_rate=False) as client:
            client.chat(USER)
            with pytest.raises(Exception, match="429"):
                client.chat(USER)
        first, second = proc.stdout.readline(), proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    chat_path = "/api/v1/inference/run_chat_completion"
    assert re.fullmatch(rf"\d\d:\d\d:\d\d POST {chat_path} chat -> 200\n", first)
    assert re.fullmatch(rf"\d\d:\d\d:\d\d POST {chat_path} chat -> 429 \(rate limited\)\n", second)
