"""Every Python example on the scaling page runs as written against a rate-limited emulator.

Each example runs as a script of its own in a fresh interpreter (``multiprocessing`` with
``spawn`` needs a real ``__main__`` file, and a Ray driver owns its cluster until it exits),
with ``WEBSIM_BASE_URL`` pointing at an emulator limited to 10 requests/s, as Websim may be.
Ray is kept on loopback and offline by the environment the S6 runner uses for its clusters.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from langchain_websim.testing import WebsimEmulator

pytestmark = pytest.mark.slow  # tens of seconds in all: a parallel run starts this file first

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "scaling.md"
BLOCKS = re.findall(
    r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE
)
RAY_TASKS, RAY_DATA, MULTIPROCESSING = range(3)


@pytest.fixture
def limited_emulator() -> Iterator[WebsimEmulator]:
    with WebsimEmulator(rate_limit=10, burst=10) as emu:
        yield emu


@pytest.fixture
def ray_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    scenario = importlib.import_module("_ray_scenario")
    # Short: Ray's Unix sockets go under it, and their paths may not exceed 107 bytes.
    base = tempfile.mkdtemp(prefix="wsray-")
    try:
        yield scenario.offline_ray_env(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_example(
    number: int, emulator: WebsimEmulator, tmp_path: Path, ray_env: dict[str, str]
) -> str:
    """Run block ``number`` as ``python example.py``; its standard output, once it passed."""
    script = tmp_path / f"example_{number + 1}.py"
    script.write_text(BLOCKS[number], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RAY_"))}
    # This checkout's package, also in Ray's and the pool's worker processes.
    env.update(ray_env, PYTHONPATH=str(ROOT), WEBSIM_BASE_URL=emulator.base_url)
    # A session of its own: whatever the script starts (a Ray cluster) can be ended with it.
    done = subprocess.Popen(
        [sys.executable, "-W", "error::ResourceWarning", str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = done.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # The script is not reaped yet, so its group is still ours: end it and its cluster.
        # (After a normal exit Ray's own shutdown has stopped the cluster.)
        os.killpg(done.pid, signal.SIGKILL)
        done.communicate()
        raise
    assert done.returncode == 0, stderr[-5000:]
    assert "Traceback" not in stderr, stderr[-5000:]
    return stdout


def answered(emulator: WebsimEmulator, endpoint: Literal["chat", "image"]) -> int:
    return sum(r.status == 200 for r in emulator.requests_for(endpoint))


def test_the_page_has_the_three_examples() -> None:
    assert len(BLOCKS) == 3
    assert "@ray.remote" in BLOCKS[RAY_TASKS]
    assert ".map_batches(" in BLOCKS[RAY_DATA]
    assert "multiprocessing.get_context" in BLOCKS[MULTIPROCESSING]


def test_ray_tasks_example(
    limited_emulator: WebsimEmulator, tmp_path: Path, ray_env: dict[str, str]
) -> None:
    out = run_example(RAY_TASKS, limited_emulator, tmp_path, ray_env)
    rows = re.findall(r"^(.+) \| Echo: A one-line tagline for \1\. \| (\S+)$", out, re.MULTILINE)
    assert len(rows) == 8, out
    images = limited_emulator.base_url + "/images/"
    assert all(url.startswith(images) for _, url in rows), out
    assert (answered(limited_emulator, "chat"), answered(limited_emulator, "image")) == (8, 8)


def test_ray_data_example(
    limited_emulator: WebsimEmulator, tmp_path: Path, ray_env: dict[str, str]
) -> None:
    out = run_example(RAY_DATA, limited_emulator, tmp_path, ray_env)
    shown = re.findall(r"^What is (\d+) \+ \1\? -> Echo: What is \1 \+ \1\?$", out, re.MULTILINE)
    assert len(shown) == 3, out
    assert "16 questions answered" in out
    assert answered(limited_emulator, "chat") == 16


def test_multiprocessing_example(
    limited_emulator: WebsimEmulator, tmp_path: Path, ray_env: dict[str, str]
) -> None:
    out = run_example(MULTIPROCESSING, limited_emulator, tmp_path, ray_env)
    lines = out.splitlines()
    assert lines == [f"What is {n} times 7? -> Echo: What is {n} times 7?" for n in range(1, 13)]
    prompts = Counter(
        r.body["messages"][-1]["content"]
        for r in limited_emulator.requests_for("chat")
        if r.status == 200
    )
    assert prompts == Counter(f"What is {n} times 7?" for n in range(1, 13))
