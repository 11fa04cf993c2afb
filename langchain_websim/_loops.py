"""Event-loop plumbing: one aiohttp session per loop, and the client's background loop.

An ``aiohttp.ClientSession`` belongs to the loop it was created on.  LangChain users call us
from many loops over a process's life (``asyncio.run`` twice, pytest's per-test loops, a
Jupyter kernel, our own background thread for sync calls), so each loop gets its own session,
created inside a coroutine on that loop, and closed when that loop shuts down.

The shutdown hook is an async generator parked at its first ``yield``: ``asyncio.run`` and
``asyncio.Runner`` call ``loop.shutdown_asyncgens()`` before closing a loop, which runs the
generator's ``finally`` *on that loop* -- the only place the session can be closed cleanly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, Generic, TypeVar

import aiohttp

T = TypeVar("T")

_CLOSE_TIMEOUT = 10.0


Keeper = AsyncGenerator[None, None]

# Strong references to every parked keeper.  The loop itself only holds its async generators
# weakly; without this, a client dropped while its loop lives would take its session down in
# garbage collection ("Unclosed client session") instead of at the loop's shutdown.
_KEEPERS: dict[aiohttp.ClientSession, Keeper] = {}


class LoopSessions:
    """Hands out the session for the running loop, creating it on first use."""

    def __init__(self, factory: Callable[[], aiohttp.ClientSession]) -> None:
        self._factory = factory
        self._by_loop: dict[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, Keeper]] = {}

    def __len__(self) -> int:
        return sum(1 for session, _ in self._by_loop.values() if not session.closed)

    async def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is not None and not entry[0].closed:
            return entry[0]
        return await self._open(loop)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        self._forget_dead_loops()
        session = self._factory()
        # The keeper must not reference the client (only this dict), or a parked keeper
        # would keep a dropped client alive for as long as its loop runs.
        keeper = _keeper(self._by_loop, loop, session)
        # Registered before the first await, so concurrent first calls share this session.
        self._by_loop[loop] = (session, keeper)
        _KEEPERS[session] = keeper
        await keeper.__anext__()
        return session

    def _forget_dead_loops(self) -> None:
        for loop in [lp for lp in self._by_loop if lp.is_closed()]:
            session, _ = self._by_loop.pop(loop)
            _abandon(session)

    async def aclose_current(self) -> None:
        entry = self._by_loop.get(asyncio.get_running_loop())
        if entry is not None:
            await entry[1].aclose()

    def close_all(self) -> None:
        """Close every session from any thread, each the way its loop's state allows."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, (session, keeper) in list(self._by_loop.items()):
            if loop.is_closed():
                self._by_loop.pop(loop, None)
                _abandon(session)
            elif loop is current:
                # We cannot block our own loop: close in the background, keeping a reference.
                task = loop.create_task(keeper.aclose())
                _PENDING.add(task)
                task.add_done_callback(_PENDING.discard)
            elif loop.is_running():
                fut = asyncio.run_coroutine_threadsafe(keeper.aclose(), loop)
                with contextlib.suppress(Exception):
                    fut.result(_CLOSE_TIMEOUT)
            else:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(keeper.aclose())


async def _keeper(
    by_loop: dict[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, Keeper]],
    loop: asyncio.AbstractEventLoop,
    session: aiohttp.ClientSession,
) -> Keeper:
    try:
        yield
    finally:
        entry = by_loop.get(loop)
        if entry is not None and entry[0] is session:
            del by_loop[loop]
        _KEEPERS.pop(session, None)
        await session.close()


_PENDING: set[asyncio.Task[None]] = set()


def _abandon(session: aiohttp.ClientSession) -> None:
    """Release a session whose loop was closed without ``shutdown_asyncgens``.

    Nothing can run on a closed loop, so the usual ``await session.close()`` is impossible;
    left alone, the session and its sockets would warn when garbage-collected.  Close the
    pooled sockets directly and mark session and connector closed.
    """
    _KEEPERS.pop(session, None)
    connector = session.connector
    session.detach()
    if connector is None:
        return
    for conns in list(getattr(connector, "_conns", {}).values()):
        for proto, *_ in conns:
            transport = getattr(proto, "transport", None)
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport._call_connection_lost(None)
    with contextlib.suppress(Exception):
        connector._conns.clear()
        connector._closed = True


class BackgroundLoop:
    """A private event loop on a daemon thread, for the client's synchronous methods.

    One long-lived loop (not ``asyncio.run`` per call) keeps one warm connection pool for
    every sync call, and works whether or not the calling thread already runs a loop.
    """

    def __init__(self, name: str = "langchain-websim") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    try:
                        loop.run_forever()
                    finally:
                        # Wound down here, on the loop's own thread, whoever asked to stop
                        # (including a finalizer that happened to run on this thread).
                        loop.run_until_complete(_wind_down())
                        loop.close()

                thread = threading.Thread(target=serve, name=self._name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop or self._start()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a synchronous Websim call was made from the client's own event loop; "
                "use the async method (await ...) there"
            )
        call = _HandOff(coro)
        try:
            loop.call_soon_threadsafe(call.start)
        except RuntimeError:  # the loop closed since we looked it up
            coro.close()
            raise RuntimeError("the Websim client was closed while this call ran") from None
        try:
            call.finished.acquire()
        except BaseException:
            # KeyboardInterrupt or the caller's own cancellation: stop the request too.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(call.cancel)
            raise
        task = call.task
        assert task is not None  # ``finished`` is released by the task's done callback
        if task.cancelled():
            if self._loop is not loop:  # stop() wound the loop down under this call
                raise RuntimeError("the Websim client was closed while this call ran")
            raise concurrent.futures.CancelledError
        return task.result()

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if threading.current_thread() is thread:
            loop.call_soon(loop.stop)
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_CLOSE_TIMEOUT)


class _HandOff(Generic[T]):
    """A coroutine handed to the loop thread, and the lock its caller blocks on.

    Lighter than ``run_coroutine_threadsafe``, whose concurrent future chains callbacks
    both ways on every call: a bare lock, released by the task's done callback, saves
    about 30 us per synchronous call.  ``start`` and ``cancel`` run on the loop thread,
    in that order (``call_soon_threadsafe`` keeps it).
    """

    __slots__ = ("coro", "finished", "task")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self.coro = coro
        self.task: asyncio.Task[T] | None = None
        self.finished = threading.Lock()
        self.finished.acquire()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.coro)
        self.task.add_done_callback(self._done)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _done(self, task: asyncio.Task[T]) -> None:
        self.finished.release()


async def _wind_down() -> None:
    """What ``asyncio.run`` does before closing a loop, so nothing is left half-open.

    In-flight calls (a sync call racing ``close()``) are cancelled, so no caller waits
    forever on a loop that no longer runs; ``shutdown_asyncgens`` then runs the session
    keepers, which close their sessions.
    """
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks(loop) if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()
