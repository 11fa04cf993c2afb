"""S6 of the goodput benchmark: S5's fleet of workers sharing one rate limit, as Ray tasks.

``run_s6_ray(base_url, contender_kwargs, workers=4, calls=50, concurrency=50)`` runs each
worker as one Ray task.  A task builds ``ChatWebsim(base_url=base_url, **contender_kwargs)``,
waits at a gate until every task has built its model (so Ray's worker start-up and the
imports are never timed), sends its ``calls`` through ``abatch`` with ``max_concurrency``
``concurrency``, and reports what came back.  The gate is one actor, so the wall time is read
on one clock, from the moment every task was let go to the end of the last one.

A cluster already started (``ray.init``) is used as it is; otherwise ``local_ray()`` starts a
local one for the run and shuts it down after.  ``local_ray()`` keeps Ray on loopback and
offline (``offline_ray_env``); the tests and the docs test start their clusters with it too.

Run on its own, it measures S6 against the package's emulator limited to 10 requests/s::

    python benchmarks/_ray_scenario.py [--quick] [--adaptive-off]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import ray

PROMPT = "What is 2 + 2?"

# Ray does three things on its own that leave the machine, none of which a benchmark or test
# may do: it finds its node address by routing a UDP socket towards a public address (and
# then binds and connects on the machine's public interface), it reports usage statistics,
# and its always-loaded usage module probes cloud metadata addresses (169.254.169.254 and
# metadata.google.internal) unless ~/ray_bootstrap_config.yaml names a provider.
OFFLINE_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Read on every platform despite its name: off, Ray uses 127.0.0.1 as the node address.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
_BOOTSTRAP_CONFIG = "provider:\n  type: local\n"


def offline_ray_env(base: str | os.PathLike[str]) -> dict[str, str]:
    """Environment for Ray processes that talk to loopback only and write only under ``base``.

    ``base`` (an existing, short path: Ray's Unix sockets go under it) gets ``home``, which
    becomes ``HOME`` (with the bootstrap config that stops the cloud probes; Ray's auth token
    lands there too, not in the real home directory), and Ray's temporary files.
    """
    home = Path(base, "home")
    home.mkdir(exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text(_BOOTSTRAP_CONFIG, encoding="utf-8")
    return {**OFFLINE_ENV, "HOME": str(home), "RAY_TMPDIR": str(base)}


@contextlib.contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[None]:
    """A local, loopback-only Ray cluster for the ``with`` block; nothing of it is left after.

    The environment is changed for the block (Ray's processes read it when they start, the
    driver reads ``HOME`` for its token) and restored after; Ray's files are removed.
    """
    base = tempfile.mkdtemp(prefix="wsray-")
    env = offline_ray_env(base)
    saved = {name: os.environ.get(name) for name in (*env, "RAY_ADDRESS")}
    # An inherited RAY_ADDRESS would make ray.init join that cluster instead.
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(env)
    # This process imported Ray before the variable was set, and Ray reads it at import: the
    # driver picks the node address, so tell its copy too (the processes it starts read the
    # environment).  test_scale_out.py checks the node really is on 127.0.0.1.
    constants = ray._private.ray_constants
    loopback = (
        mock.patch.object(constants, "ENABLE_RAY_CLUSTER", False)
        if hasattr(constants, "ENABLE_RAY_CLUSTER")
        else contextlib.nullcontext()
    )
    try:
        with loopback:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
            try:
                yield
            finally:
                ray.shutdown()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(base, ignore_errors=True)


@ray.remote
class _Gate:
    """Lets the tasks go together once all have arrived; the one clock for the wall time."""

    def __init__(self, parties: int) -> None:
        self._parties = parties
        self._arrived = 0
        self._go = asyncio.Event()
        self._started = 0.0

    async def arrive(self) -> None:
        self._arrived += 1
        if self._arrived == self._parties:
            self._started = time.monotonic()
            self._go.set()
        await self._go.wait()

    async def since_go(self) -> float:
        return time.monotonic() - self._started


def build_model(
    base_url: str, contender_kwargs: Mapping[str, Any], limiter: tuple[float, float] | None
) -> Any:
    """The contender's model; ``limiter`` (requests/s, burst) adds an oracle rate limiter."""
    from langchain_websim import ChatWebsim

    kwargs = dict(contender_kwargs)
    if limiter is not None:
        from langchain_core.rate_limiters import InMemoryRateLimiter

        rate, burst = limiter
        kwargs["rate_limiter"] = InMemoryRateLimiter(
            requests_per_second=rate, check_every_n_seconds=0.01, max_bucket_size=max(1.0, burst)
        )
    return ChatWebsim(base_url=base_url, **kwargs)


def summarize(results: list[Any], expected: str | None) -> dict[str, Any]:
    """Counts for one worker, in the shape of the goodput benchmark's worker summaries."""
    errors: Counter[str] = Counter()
    waits: list[float] = []
    ok = 0
    for result in results:
        if isinstance(result, BaseException):
            errors[type(result).__name__] += 1
        elif expected is not None and result.content != expected:
            errors["wrong answer"] += 1
        else:
            ok += 1
            wait = result.response_metadata.get("rate_wait")
            if isinstance(wait, (int, float)):
                waits.append(float(wait))
    return {
        "ok": ok,
        "failed": len(results) - ok,
        "errors": dict(errors),
        "rate_waits": waits,
    }


@ray.remote(max_retries=0)
def _worker(
    gate: Any,
    base_url: str,
    contender_kwargs: Mapping[str, Any],
    job: tuple[int, int, str, str | None, tuple[float, float] | None],
) -> dict[str, Any]:
    calls, concurrency, prompt, expected, limiter = job
    # Every retry is logged at WARNING; hundreds of them say nothing the counts do not.
    logging.getLogger("langchain_websim").setLevel(logging.ERROR)
    model = build_model(base_url, contender_kwargs, limiter)
    ray.get(gate.arrive.remote())

    async def run() -> list[Any]:
        return await model.abatch(
            [prompt] * calls, config={"max_concurrency": concurrency}, return_exceptions=True
        )

    # asyncio.run closes the loop, and with it the model's session for that loop.
    summary = summarize(asyncio.run(run()), expected)
    summary["wall"] = ray.get(gate.since_go.remote())
    return summary


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be a whole number >= 1, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def run_s6_ray(
    base_url: str,
    contender_kwargs: Mapping[str, Any],
    workers: int = 4,
    calls: int = 50,
    concurrency: int = 50,
    *,
    prompt: str = PROMPT,
    expected: str | None = None,
    limiter: tuple[float, float] | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Run ``workers`` Ray tasks of ``calls`` calls each; return the counts and the wall time.

    ``contender_kwargs`` are ``ChatWebsim`` settings (picklable: they travel to each task);
    ``expected``, if given, is the answer every call must return to count as ok; ``limiter``
    is each task's (requests/s, burst) for an ``InMemoryRateLimiter`` (the oracle contender).
    ``timeout`` bounds the whole run, start-up included: past it the tasks are cancelled and
    ``TimeoutError`` is raised.

    Returns ``ok``, ``failed``, ``errors`` (error type -> count), ``wall`` (seconds from go
    to the last task's end), ``rate_waits`` and ``summaries`` (one per task, with its own
    ``wall``).
    """
    _check_sizes(workers=workers, calls=calls, concurrency=concurrency)
    if not isinstance(contender_kwargs, Mapping):
        raise TypeError(f"contender_kwargs must be a mapping, got {contender_kwargs!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    with contextlib.ExitStack() as stack:
        if not ray.is_initialized():
            stack.enter_context(local_ray())
        job = (calls, concurrency, prompt, expected, limiter)
        result = _run_fleet(base_url, dict(contender_kwargs), workers, job, timeout)
    return result


def _run_fleet(
    base_url: str, kwargs: dict[str, Any], workers: int, job: tuple[Any, ...], timeout: float
) -> dict[str, Any]:
    if __name__ != "__main__":
        # Ray workers cannot import this file (benchmarks/ is not a package on their path):
        # ship its functions by value instead.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # The tasks wait on the network, not the CPU: share the CPUs so all of them run at once
    # (rounded down to Ray's precision, or the shares could add up to more than there is).
    cpus = float(ray.cluster_resources().get("CPU", 1.0)) / workers
    gate = _Gate.options(num_cpus=0).remote(workers)
    task = _worker.options(num_cpus=math.floor(cpus * 10_000) / 10_000)
    refs = [task.remote(gate, base_url, kwargs, job) for _ in range(workers)]
    try:
        summaries = ray.get(refs, timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise TimeoutError(f"{workers} Ray tasks did not finish within {timeout:g} s") from None
    finally:
        ray.kill(gate)
    errors: Counter[str] = Counter()
    for summary in summaries:
        errors.update(summary["errors"])
    return {
        "ok": sum(s["ok"] for s in summaries),
        "failed": sum(s["failed"] for s in summaries),
        "errors": dict(errors),
        "wall": max(s["wall"] for s in summaries),
        "rate_waits": [w for s in summaries for w in s["rate_waits"]],
        "summaries": summaries,
    }


def main(argv: list[str] | None = None) -> int:
    from langchain_websim import ChatWebsim
    from langchain_websim.testing import WebsimEmulator

    parser = argparse.ArgumentParser(description="S6: 4 Ray tasks share one 10/s limit.")
    parser.add_argument("--quick", action="store_true", help="4 x 8 calls instead of 4 x 50")
    parser.add_argument("--adaptive-off", action="store_true", help="adaptive_rate=False")
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {}
    if args.adaptive_off:
        if "adaptive_rate" not in ChatWebsim.model_fields:
            parser.error("this version of ChatWebsim has no adaptive_rate setting")
        kwargs["adaptive_rate"] = False
    workers, calls, burst = 4, 8 if args.quick else 50, 10
    with WebsimEmulator(rate_limit=10, burst=burst) as emulator, local_ray():
        result = run_s6_ray(emulator.base_url, kwargs, workers, calls, concurrency=calls)
        result["rate_limited"] = emulator.rate_limited_count
    result["ideal"] = (workers * calls - burst) / 10
    result.pop("summaries")
    result.pop("rate_waits")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
