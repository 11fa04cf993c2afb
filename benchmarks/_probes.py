"""Figures measured in fresh processes: peak memory under load, and import time.

Each probe runs this file as a child (``python _probes.py memory URL N`` or ``python
_probes.py imports``) so nothing the benchmark already loaded or allocated counts; the child
prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

# A child's ``ru_maxrss`` starts from the peak of the process it was forked from (Linux
# carries the pre-exec address space's high-water mark across exec), so the probe is started
# by a small launcher, not by the benchmark and its few hundred MB.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        check=False,
        env=_child_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe {args[0]} failed:\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def peak_memory(base_url: str, calls: int) -> dict[str, float]:
    """Peak RSS (MB) of a fresh process running ``calls`` ``ainvoke`` at once."""
    return _run_child("memory", base_url, str(calls))


def _child_env() -> dict[str, str]:
    """The benchmark's environment, with bytecode caching on: a pip-installed package runs
    from cached bytecode, and the untimed first run is there to cache it.  With
    ``PYTHONDONTWRITEBYTECODE`` set (containers often set it) nothing was cached, and every
    timed child compiled the package from source: +60 ms where the import takes +32 ms."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def import_times(runs: int) -> dict[str, float]:
    """Median milliseconds over ``runs`` fresh processes (after one untimed warm-up)."""
    _run_child("imports")  # compiles any stale bytecode so it is not timed
    samples = [_run_child("imports") for _ in range(runs)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


# ---------------------------------------------------------------------- child side


def _max_rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def _vm_hwm_mb() -> float:
    """Linux's own peak-RSS figure for this address space, as a cross-check (else -1)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


def _memory_child(base_url: str, calls: int) -> dict[str, float]:
    import asyncio

    from langchain_websim import ChatWebsim, WebsimClient

    async def main() -> dict[str, float]:
        client = WebsimClient(base_url)
        model = ChatWebsim(client=client)
        try:
            (await model.ainvoke("warm-up")).text  # noqa: B018 - opens the pool
            before = _max_rss_mb()
            started = time.perf_counter()
            answers = await asyncio.gather(*(model.ainvoke("hello") for _ in range(calls)))
            elapsed = time.perf_counter() - started
        finally:
            await client.aclose()
        if len(answers) != calls or any(not a.text for a in answers):
            raise RuntimeError("some calls came back without an answer")
        return {
            "before_mb": before,
            "peak_mb": _max_rss_mb(),
            "vm_hwm_mb": _vm_hwm_mb(),
            "seconds": elapsed,
        }

    return asyncio.run(main())


def _imports_child() -> dict[str, float]:
    started = time.perf_counter()
    import aiohttp  # noqa: F401
    import langchain_core.language_models.chat_models  # noqa: F401

    base = time.perf_counter()
    import langchain_websim  # noqa: F401

    package = time.perf_counter()
    from langchain_websim import ChatWebsim  # noqa: F401

    chat = time.perf_counter()
    return {
        "baseline_ms": (base - started) * 1000,
        "package_ms": (package - base) * 1000,
        "chat_model_ms": (chat - base) * 1000,
    }


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "memory":
        out = _memory_child(sys.argv[2], int(sys.argv[3]))
    elif kind == "imports":
        out = _imports_child()
    else:
        sys.exit(f"unknown probe {kind!r}")
    print(json.dumps(out))
