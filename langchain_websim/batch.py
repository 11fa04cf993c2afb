"""Bulk chat and image jobs that show progress, survive a crash and resume.

``run_batch`` / ``await arun_batch`` run one call per input line through a shared
``WebsimClient`` (so the adaptive rate control paces the whole job), append each outcome to
a journal file as it finishes, and return a ``BatchSummary``.  Running the same job again
skips what the journal already holds; ``websim batch chat|image`` is the same thing from a
shell.  See https://github.com/langchain-websim/langchain-websim/blob/main/docs/batch.md
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from langchain_websim._batch_input import (
    KINDS,
    BatchInputError,
    BatchSource,
    InputFormat,
    Kind,
    check_defaults,
    check_input,
)
from langchain_websim._batch_journal import Journal, JournalState, read_journal
from langchain_websim._batch_progress import ProgressMode, make_progress
from langchain_websim._batch_run import BatchRun
from langchain_websim._client import WebsimClient
from langchain_websim._download import writable_dir, writable_path
from langchain_websim._loops import running_loop

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_GRACE",
    "BatchInputError",
    "BatchSummary",
    "arun_batch",
    "run_batch",
]

DEFAULT_CONCURRENCY = 32
"""Calls in flight at once.  The rate control sets the pace; this only has to cover the
service's latency at that pace (32 calls of 3 s each keep up with about 10 calls a second)."""
DEFAULT_GRACE = 10.0
"""Seconds calls in flight may take to finish after Ctrl-C before they are cut off."""

BatchInput = str | os.PathLike[str] | IO[str] | Sequence[str | Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Where a batch stands after a run (this run and every earlier one on the same journal).

    ``done + failed + left == total``.  ``interrupted`` is true when the run was stopped
    (Ctrl-C): rerunning the same job continues it.
    """

    kind: Kind
    total: int
    """Calls in the input."""
    done: int
    """Calls whose last journal line is ok."""
    failed: int
    """Calls whose last journal line is a failure (``retry_failed=True`` retries them)."""
    left: int
    """Calls not made yet (or cut off by an interruption)."""
    finished_this_run: int
    """Journal lines this run added."""
    elapsed: float
    """Seconds this run took."""
    interrupted: bool
    output: Path
    images_dir: Path | None
    rate_limited: int
    """429 answers this run's client saw (each was waited out and sent again)."""

    def __str__(self) -> str:
        return f"{self.done} done, {self.failed} failed, {self.left} left"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "left": self.left,
            "finished_this_run": self.finished_this_run,
            "elapsed": round(self.elapsed, 3),
            "interrupted": self.interrupted,
            "output": str(self.output),
            "images_dir": None if self.images_dir is None else str(self.images_dir),
            "rate_limited": self.rate_limited,
        }


async def arun_batch(
    kind: Kind,
    input: BatchInput,
    output: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    input_format: InputFormat = "auto",
    concurrency: int = DEFAULT_CONCURRENCY,
    retry_failed: bool = False,
    client: WebsimClient | None = None,
    base_url: str | None = None,
    progress: ProgressMode = "off",
    grace: float = DEFAULT_GRACE,
    handle_sigint: bool = False,
) -> BatchSummary:
    """Run a batch job; return where it stands.

    Args:
        kind: ``"chat"`` (each line's answer text goes into the journal) or ``"image"``
            (each image is saved as ``images_dir/<id>.png``; its URL and path are journaled).
        input: a JSONL or plain text file (path or open text stream), or a list of prompts
            and line objects (``{"id", "prompt" | "messages", ...options}``).
        output: the journal file (JSONL), created if missing, resumed if it is this kind's
            journal, refused if it is anything else.
        images_dir: for ``"image"``: where images go (created if missing).
        options: defaults for every line (the same names a line takes, e.g. ``model``,
            ``system``, ``stop``, ``json_mode``; ``aspect_ratio``, ``seed``, ``width``...).
        input_format: ``"auto"`` (JSONL when the first line starts with ``{``), ``"jsonl"``,
            or ``"text"`` (one prompt per line).
        concurrency: calls in flight at once (the rate control paces them).
        retry_failed: also redo the ids whose last journal line is a failure.
        client: the ``WebsimClient`` to use; by default a new one for ``base_url`` (closed
            at the end).
        progress: ``"bar"``, ``"lines"`` (a status line every few seconds), ``"auto"`` (a
            bar when stderr is a terminal) or ``"off"``.
        grace: seconds calls in flight get to finish once the run is stopped.
        handle_sigint: stop gracefully on Ctrl-C (main thread only) instead of being
            cancelled; a second Ctrl-C cuts the grace period short.

    Raises:
        BatchInputError: the input has problems (the first ten named by line); nothing was
            sent and the journal was not touched.
        ValueError, TypeError: a bad argument, or an ``output`` that is not this kind's
            journal.

    A call that fails is a journal line (``"ok": false``), not an exception.  Cancelling
    the task cancels the calls in flight; the journal keeps every finished call.
    """
    started = time.monotonic()
    _check_arguments(kind, concurrency, grace)
    plan = _Plan(
        kind=kind,
        defaults=check_defaults(kind, options or {}),
        output=writable_path(output),
        images_dir=_images_dir(kind, images_dir),
        concurrency=concurrency,
        grace=grace,
        retry_failed=retry_failed,
        progress=progress,
        handle_sigint=handle_sigint,
    )
    source = BatchSource(input, input_format)
    try:
        _refuse_same_file(source, plan.output)
        state = read_journal(plan.output, kind)
        ids = check_input(kind, source, plan.defaults).ids
        owned = client is None
        client = WebsimClient(base_url) if client is None else client
        try:
            run = await _run(plan, source, state, ids, client)
        finally:
            if owned:
                await client.aclose()
    finally:
        source.close()
    return _summary(plan, ids, state, run, client, time.monotonic() - started)


def _summary(
    plan: _Plan,
    ids: frozenset[str],
    state: JournalState,
    run: BatchRun,
    client: WebsimClient,
    elapsed: float,
) -> BatchSummary:
    done = len(ids & state.ok)
    failed = len(ids & state.failed)
    rate = client.rate_state().get(plan.kind)
    return BatchSummary(
        kind=plan.kind,
        total=len(ids),
        done=done,
        failed=failed,
        left=len(ids) - done - failed,
        finished_this_run=run.finished,
        elapsed=elapsed,
        interrupted=run.interrupted,
        output=plan.output,
        images_dir=plan.images_dir,
        rate_limited=rate.rate_limited if rate is not None else 0,
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """A batch's arguments, checked."""

    kind: Kind
    defaults: dict[str, Any]
    output: Path
    images_dir: Path | None
    concurrency: int
    grace: float
    retry_failed: bool
    progress: ProgressMode
    handle_sigint: bool


async def _run(
    plan: _Plan,
    source: BatchSource,
    state: JournalState,
    ids: frozenset[str],
    client: WebsimClient,
) -> BatchRun:
    """Open the journal and run what it does not hold yet."""
    failed = 0 if plan.retry_failed else len(ids & state.failed)
    shown = make_progress(
        plan.progress, len(ids), len(ids & state.ok), failed, _rate_words(client, plan.kind)
    )
    journal = Journal(plan.output, plan.kind, state.keep)
    run = BatchRun(
        plan.kind,
        source,
        plan.defaults,
        journal=journal,
        state=state,
        client=client,
        images_dir=plan.images_dir,
        concurrency=plan.concurrency,
        grace=plan.grace,
        retry_failed=plan.retry_failed,
        progress=shown,
    )
    try:
        with _sigint_stops(run, plan.handle_sigint), shown.showing():
            await run.run()
    finally:
        journal.close()
    return run


def run_batch(
    kind: Kind,
    input: BatchInput,
    output: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | None = None,
    input_format: InputFormat = "auto",
    concurrency: int = DEFAULT_CONCURRENCY,
    retry_failed: bool = False,
    client: WebsimClient | None = None,
    base_url: str | None = None,
    progress: ProgressMode = "auto",
    grace: float = DEFAULT_GRACE,
    handle_sigint: bool = True,
) -> BatchSummary:
    """Blocking twin of :func:`arun_batch` (same arguments; Ctrl-C stops it gracefully and
    the summary says ``interrupted``).  Inside a running event loop (a notebook), use
    ``await arun_batch(...)``."""
    if running_loop() is not None:
        raise RuntimeError(
            "run_batch() cannot run inside a running event loop; use await arun_batch(...)"
        )
    return asyncio.run(
        arun_batch(
            kind,
            input,
            output,
            images_dir=images_dir,
            options=options,
            input_format=input_format,
            concurrency=concurrency,
            retry_failed=retry_failed,
            client=client,
            base_url=base_url,
            progress=progress,
            grace=grace,
            handle_sigint=handle_sigint,
        )
    )


# ---------------------------------------------------------------------- helpers


def _check_arguments(kind: Kind, concurrency: int, grace: float) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not grace >= 0:
        raise ValueError(f"grace must be a number of seconds >= 0, got {grace!r}")


def _images_dir(kind: Kind, images_dir: str | os.PathLike[str] | None) -> Path | None:
    if kind != "image":
        if images_dir is not None:
            raise ValueError("images_dir is for image batches only")
        return None
    if images_dir is None or not str(images_dir).strip():
        raise ValueError("an image batch needs images_dir, the directory images are saved in")
    return writable_dir(images_dir, "images directory")


def _refuse_same_file(source: BatchSource, out: Path) -> None:
    path = source.path
    if path is not None and out.exists() and os.path.samefile(path, out):
        raise ValueError(f"the output {out} is the input file; give another file name")


def _rate_words(client: WebsimClient, kind: Kind) -> Any:
    def words() -> str:
        if not client.settings.adaptive_rate:
            return "(rate control off)"
        state = client.rate_state().get(kind)
        if state is None or state.rate is None:
            return "? (learning)"
        return f"{state.rate:.1f}/s"

    return words


@contextlib.contextmanager
def _sigint_stops(run: BatchRun, enabled: bool) -> Iterator[None]:
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, run.stop)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
