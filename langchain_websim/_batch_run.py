"""Running a checked batch: bounded concurrency over a streamed input, one journal line per call.

A producer reads the input (again) into a small bounded queue; ``concurrency`` workers take
lines from it, make the call, and append its line to the journal.  A worker takes its next
line only once the previous one is on disk, so at any moment at most ``concurrency`` calls
are finished-but-unrecorded or in flight: that is all a kill can make a rerun repeat.

``stop()`` (Ctrl-C) stops the producer and the idle workers at once; calls in flight get
``grace`` seconds to finish and be recorded, then are cancelled and left for the next run.
A second ``stop()`` cuts the grace period short.  Calls still waiting for a rate slot when
the run stops are not sent at all (``SEND_GUARD``): only requests already on the wire get
the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from langchain_websim._batch_input import (
    BatchLine,
    BatchSource,
    ChatCall,
    Kind,
    image_stem,
    parse_line,
)
from langchain_websim._batch_journal import Journal, JournalState
from langchain_websim._batch_progress import Progress
from langchain_websim._client import SEND_GUARD, WebsimClient
from langchain_websim._download import image_type, write_file
from langchain_websim._requests import ImageRequest
from langchain_websim.errors import WebsimError, WebsimResponseError

__all__ = ["BatchRun", "call_entry"]

TICK = 1.0
"""Seconds between two progress refreshes when no call finishes."""


class _NotSent(Exception):
    """A call the run stopped before its request went out (raised by the send guard)."""


class BatchRun:
    """One run over the input: what is already ok in the journal is skipped."""

    def __init__(
        self,
        kind: Kind,
        source: BatchSource,
        defaults: dict[str, Any],
        *,
        journal: Journal,
        state: JournalState,
        client: WebsimClient,
        images_dir: Path | None,
        concurrency: int,
        grace: float,
        retry_failed: bool,
        progress: Progress,
    ) -> None:
        self._kind = kind
        self._source = source
        self._defaults = defaults
        self._journal = journal
        self._state = state
        self._client = client
        self._images_dir = images_dir
        self._concurrency = concurrency
        self._grace = grace
        self._retry_failed = retry_failed
        self._progress = progress
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._calls: set[asyncio.Task[dict[str, Any] | None]] = set()
        self._on_wire: set[asyncio.Task[Any]] = set()  # calls that have sent a request
        self.finished = 0
        """Calls recorded in this run."""

    @property
    def interrupted(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop sending; a second call also cuts the grace period for calls in flight."""
        if self._stopping.is_set():
            self._hurry.set()
        self._stopping.set()

    async def run(self) -> None:
        queue: asyncio.Queue[BatchLine | None] = asyncio.Queue(maxsize=self._concurrency)
        producer = asyncio.create_task(self._produce(queue))
        workers = [asyncio.create_task(self._work(queue)) for _ in range(self._concurrency)]
        everyone = asyncio.gather(*workers)
        stopper = asyncio.create_task(self._stopping.wait())
        ticker = asyncio.create_task(self._tick())
        try:
            waiting: set[asyncio.Future[Any]] = {everyone, stopper, producer}
            while not (everyone.done() or stopper.done()):
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if producer in done:
                    producer.result()  # a failure to read the input ends the run
                    waiting.discard(producer)
            if self._stopping.is_set() and not everyone.done():
                await self._wind_down(producer, queue, workers)
            everyone.result()
        finally:
            for task in (producer, stopper, ticker, *workers):
                task.cancel()
            await asyncio.gather(producer, stopper, ticker, *workers, return_exceptions=True)
            await self._journal.drain()

    # ------------------------------------------------------------------ the parts

    async def _produce(self, queue: asyncio.Queue[BatchLine | None]) -> None:
        for number, item in self._source.lines():
            line = parse_line(self._kind, number, item, self._defaults)
            if self._skip(line.id):
                continue
            await queue.put(line)
        for _ in range(self._concurrency):
            await queue.put(None)

    def _skip(self, call_id: str) -> bool:
        if call_id in self._state.ok:
            return True
        return call_id in self._state.failed and not self._retry_failed

    async def _work(self, queue: asyncio.Queue[BatchLine | None]) -> None:
        while not self._stopping.is_set():
            line = await queue.get()
            if line is None:
                return
            call = asyncio.create_task(self._call(line))
            self._calls.add(call)
            try:
                entry = await call
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if call.cancelled() and self._stopping.is_set() and not (me and me.cancelling()):
                    return  # cut off by the stop: left for the next run
                raise
            finally:
                self._calls.discard(call)
                self._on_wire.discard(call)
            if entry is None:
                return  # stopped before it was sent: left for the next run
            await self._journal.append(entry)
            self._state.record(line.id, entry["ok"])
            self.finished += 1
            self._progress.advance(entry["ok"])

    async def _wind_down(
        self,
        producer: asyncio.Task[None],
        queue: asyncio.Queue[BatchLine | None],
        workers: list[asyncio.Task[None]],
    ) -> None:
        """Stop feeding, release idle workers, give calls in flight the grace period."""
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        while not queue.empty():
            queue.get_nowait()
        for _ in workers:
            queue.put_nowait(None)
        for call in list(self._calls):
            if call not in self._on_wire:
                call.cancel()  # still waiting for a rate slot: never sent
        finished: asyncio.Future[Any] = asyncio.gather(*workers, return_exceptions=True)
        hurry: asyncio.Future[Any] = asyncio.create_task(self._hurry.wait())
        try:
            await asyncio.wait(
                {finished, hurry},
                timeout=self._grace,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            hurry.cancel()
        self._hurry.set()
        for call in list(self._calls):
            call.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._progress.tick()

    async def _call(self, line: BatchLine) -> dict[str, Any] | None:
        """The call's journal entry; ``None`` when the run stopped before it was sent."""
        task = asyncio.current_task()
        assert task is not None

        def guard() -> None:
            if self._stopping.is_set():
                raise _NotSent
            self._on_wire.add(task)

        SEND_GUARD.set(guard)  # this task's own context: only its requests see it
        started = time.perf_counter()
        try:
            if isinstance(line.call, ChatCall):
                result = await self._chat(line.call)
            else:
                result = await self._image(line.id, line.call)
        except _NotSent:
            return None
        except Exception as exc:  # every failure is one line's outcome, not the batch's
            return failure_entry(line.id, exc, time.perf_counter() - started)
        return call_entry(line.id, result, time.perf_counter() - started)

    async def _chat(self, call: ChatCall) -> dict[str, Any]:
        from langchain_websim.chat_models import ChatWebsim

        model = ChatWebsim(client=self._client, **call.options)
        message = await model.ainvoke(call.messages)
        meta = message.response_metadata
        return {
            "content": message.text,
            "attempts": meta["attempts"],
            "rate_wait": meta["rate_wait"],
        }

    async def _image(self, call_id: str, request: ImageRequest) -> dict[str, Any]:
        assert self._images_dir is not None
        image = await self._client.asend(request)
        data = await self._client.adownload(image.url)
        kind = image_type(data)
        if kind is None:
            raise WebsimResponseError(
                "the downloaded file is not a PNG, JPEG, GIF or WebP image",
                endpoint="download",
                url=image.url,
            )
        path = self._images_dir / f"{image_stem(call_id)}{kind[0]}"
        await asyncio.to_thread(write_file, path, data)
        return {
            "url": image.url,
            "path": str(path),
            "attempts": image.attempts,
            "rate_wait": image.rate_wait,
        }


def call_entry(call_id: str, result: dict[str, Any], elapsed: float) -> dict[str, Any]:
    """The journal line of a call that succeeded."""
    entry: dict[str, Any] = {"id": call_id, "ok": True, **result}
    entry["rate_wait"] = round(float(entry.get("rate_wait", 0.0)), 3)
    entry["elapsed"] = round(elapsed, 3)
    return entry


def failure_entry(call_id: str, exc: Exception, elapsed: float) -> dict[str, Any]:
    """The journal line of a call that failed: the typed error, by name."""
    status = getattr(exc, "status_code", None)
    entry: dict[str, Any] = {
        "id": call_id,
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "status": status if isinstance(status, int) else None,
        },
    }
    if isinstance(exc, WebsimError):
        entry["attempts"] = exc.attempts
    entry["elapsed"] = round(elapsed, 3)
    return entry
