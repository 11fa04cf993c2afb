"""How the goodput benchmark starts its workers: fresh processes or Ray tasks, bounded.

A runner takes the jobs of one contender in one scenario and a hard timeout, starts one
worker per job, lets them all go at once when every one is ready, and returns the wall time
from go to the last summary with the summaries.  ``RUNNERS`` maps a scenario's ``runner``
name to its function: ``processes`` (spawned processes, always reaped) or ``ray`` (Ray
tasks, each in a worker process of its own, on a local loopback-only cluster).  Either way
a worker is ``_goodput_worker``'s ``build_model`` then ``run_calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import _goodput_worker
from _goodput_worker import Job, build_model, quiet_retry_logs, run_calls

# Spawning and importing LangChain takes a second or two per process; on a busy machine
# more, but never this long unless something is wrong.
STARTUP_TIMEOUT = 120.0
# Seconds the tasks waiting at a gate that was taken down get to end by themselves.
GATE_GRACE = 5.0


class FleetTimeout(Exception):
    """The workers did not all start, or all finish, in time (they were killed)."""


@dataclass(frozen=True)
class FleetResult:
    wall: float
    """Seconds from go to the last worker's summary."""
    summaries: list[dict[str, Any]]


Runner = Callable[[Sequence[Job], float], FleetResult]


def check_run(jobs: Sequence[Job], timeout: float) -> None:
    """Refuse a run that could only fail, before any worker starts."""
    if not jobs or not all(isinstance(job, Job) for job in jobs):
        raise TypeError(f"jobs must be a non-empty sequence of Job, got {jobs!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")


def run_in_processes(jobs: Sequence[Job], timeout: float) -> FleetResult:
    """One spawned process per job (nothing inherited from this one), killed if still alive.

    ``timeout`` bounds the calls, from go; starting the processes has its own bound.
    """
    check_run(jobs, timeout)
    ctx = multiprocessing.get_context("spawn")
    pipes: list[Connection] = []
    procs: list[BaseProcess] = []
    finished = False
    try:
        for job in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_goodput_worker.serve, args=(child, job), daemon=True)
            proc.start()
            child.close()  # the child's end lives in the child only: its exit means EOF
            pipes.append(parent)
            procs.append(proc)
        _collect(pipes, procs, "ready", time.monotonic() + STARTUP_TIMEOUT)
        started = time.monotonic()
        for pipe in pipes:
            pipe.send("go")
        summaries = _collect(pipes, procs, "done", started + timeout)
        wall = time.monotonic() - started
        finished = True
        return FleetResult(wall, summaries)
    finally:
        for pipe in pipes:
            pipe.close()
        # Finished workers are exiting on their own; after a timeout or a failure nothing
        # they are still doing is wanted.
        _reap(procs, grace=10.0 if finished else 0.0)


def _collect(
    pipes: list[Connection], procs: list[BaseProcess], kind: str, deadline: float
) -> list[Any]:
    """Each worker's next message, which must be ``kind``; waits on pipes and exits alike."""
    pending = dict(zip(pipes, procs, strict=True))
    got: dict[Connection, Any] = {}
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FleetTimeout(f"{len(pending)} of {len(pipes)} worker(s) not {kind}")
        ready = wait([*pending, *(p.sentinel for p in pending.values())], timeout=left)
        for conn in [c for c in pending if c in ready]:
            try:
                tag, payload = conn.recv()
            except EOFError:
                tag, payload = "error", "the worker closed its pipe without a word"
            if tag != kind:
                raise RuntimeError(f"a worker sent {tag!r} instead of {kind!r}:\n{payload}")
            got[conn] = payload
            del pending[conn]
        for conn, proc in list(pending.items()):
            # An exit with nothing left to read is a crash, not a slow worker.
            if proc.sentinel in ready and not conn.poll():
                raise RuntimeError(f"a worker exited with code {proc.exitcode} before {kind}")
    return [got[pipe] for pipe in pipes]


def _reap(procs: list[BaseProcess], grace: float) -> None:
    for proc in procs:
        proc.join(timeout=grace)
        if proc.is_alive():
            proc.kill()
            proc.join()
        proc.close()


class _Gate:
    """A Ray actor: lets the tasks go together once all have built their models, and is the
    one clock their wall time is read on."""

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

    async def opened(self) -> None:
        await self._go.wait()

    async def since_go(self) -> float:
        return time.monotonic() - self._started


def _ray_task(gate: Any, job: Job) -> tuple[dict[str, Any], float]:
    """A Ray task's body: build, wait at the gate, run; the summary and seconds since go."""
    import ray

    quiet_retry_logs()
    model, limiter = build_model(job)
    ray.get(gate.arrive.remote())
    # asyncio.run closes the loop, and with it the model's session for that loop.
    summary = asyncio.run(run_calls(job, model, limiter))
    return summary, ray.get(gate.since_go.remote())


def run_in_ray_tasks(jobs: Sequence[Job], timeout: float) -> FleetResult:
    """One Ray task per job, each in a fresh Ray worker process (nothing carried over).

    A cluster already started (``ray.init``, or ``shared_by_runs``) is used as it is;
    otherwise a local one is started for the run (``_ray_scenario.local_ray``: loopback only,
    offline) and shut down after.  ``timeout`` bounds the calls, from go; start-up has its
    own bound.
    """
    check_run(jobs, timeout)
    with ray_cluster():
        return _run_ray_fleet(jobs, timeout)


@contextlib.contextmanager
def ray_cluster() -> Iterator[None]:
    """The running Ray cluster, or a local one (loopback only, offline) for the block."""
    # Ray is the benchmark extra's: only scenarios run on Ray need it.
    import _ray_scenario
    import ray

    with contextlib.ExitStack() as stack:
        if not ray.is_initialized():
            stack.enter_context(_ray_scenario.local_ray())
        yield


def shared_by_runs(runner: str) -> contextlib.AbstractContextManager[None]:
    """What the runs of one scenario share: for Ray, one cluster (each task still gets a
    fresh worker process, so only the cluster's start-up is saved); nothing otherwise."""
    return ray_cluster() if runner == "ray" else contextlib.nullcontext()


def _run_ray_fleet(jobs: Sequence[Job], timeout: float) -> FleetResult:
    import ray

    # Ray workers may not find benchmarks/ on their path: ship the worker's code by value.
    for module in (_goodput_worker, sys.modules[__name__]):
        ray.cloudpickle.register_pickle_by_value(module)
    # The tasks wait on the network, not the CPU: share the CPUs so all of them run at once
    # (rounded down to Ray's precision, or the shares could add up to more than there is).
    cpus = float(ray.cluster_resources().get("CPU", 1.0)) / len(jobs)
    gate = ray.remote(_Gate).options(num_cpus=0).remote(len(jobs))
    # max_calls=1: the worker process exits after its task, so no client, pool or rate
    # control state outlives the run, even on a cluster that serves several runs.
    task = ray.remote(max_calls=1, max_retries=0)(_ray_task).options(
        num_cpus=math.floor(cpus * 10_000) / 10_000
    )
    refs = [task.remote(gate, job) for job in jobs]
    went = finished = False
    try:
        _await_go(gate.opened.remote(), refs)
        went = True
        try:
            done = ray.get(refs, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise FleetTimeout(f"{len(refs)} Ray task(s) not done") from None
        finished = True
    finally:
        ray.kill(gate)  # a task still waiting at the gate fails now, on its own
        if not finished:
            _stop(refs, at_the_gate=not went)
    return FleetResult(max(since for _, since in done), [summary for summary, _ in done])


def _stop(refs: list[Any], at_the_gate: bool) -> None:
    """Kill the tasks still running; before go, first let those at the gate end by themselves.

    Force-cancelling a task that is about to end races its reply: Ray's driver then aborts
    ("Tried to complete task that was not pending") and takes this process with it.  Before
    go the tasks waiting at the gate end once it is gone, within ``GATE_GRACE``; those still
    building their models, and after go those in their calls, are far from their end and are
    killed.
    """
    import ray

    running = refs
    if at_the_gate:
        _, running = ray.wait(refs, num_returns=len(refs), timeout=GATE_GRACE)
    for ref in running:
        ray.cancel(ref, force=True)


def _await_go(opened: Any, refs: list[Any]) -> None:
    """Until the gate opens; a task that ends first failed (``ray.get`` raises its error)."""
    import ray

    ready, _ = ray.wait([opened, *refs], num_returns=1, timeout=STARTUP_TIMEOUT)
    if not ready:
        raise FleetTimeout(f"{len(refs)} Ray task(s) not ready")
    if ready[0] != opened:
        ray.get(ready[0])
        raise RuntimeError("a Ray task ended before go")


RUNNERS: dict[str, Runner] = {"processes": run_in_processes, "ray": run_in_ray_tasks}
