"""How the goodput benchmark starts its workers: fresh processes, bounded, always reaped.

A runner takes the jobs of one contender in one scenario and a hard timeout, starts one
worker per job, lets them all go at once when every one is ready, and returns the wall time
from go to the last summary with the summaries.  ``RUNNERS`` maps a scenario's ``runner``
name to its function; another way of starting workers (Ray tasks, say) is one more entry
with the same signature.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import _goodput_worker
from _goodput_worker import Job

# Spawning and importing LangChain takes a second or two per process; on a busy machine
# more, but never this long unless something is wrong.
STARTUP_TIMEOUT = 120.0


class FleetTimeout(Exception):
    """The workers did not all start, or all finish, in time (they were killed)."""


@dataclass(frozen=True)
class FleetResult:
    wall: float
    """Seconds from go to the last worker's summary."""
    summaries: list[dict[str, Any]]


Runner = Callable[[Sequence[Job], float], FleetResult]


def run_in_processes(jobs: Sequence[Job], timeout: float) -> FleetResult:
    """One spawned process per job (nothing inherited from this one), killed if still alive.

    ``timeout`` bounds the calls, from go; starting the processes has its own bound.
    """
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


RUNNERS: dict[str, Runner] = {"processes": run_in_processes}
