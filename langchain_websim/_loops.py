"""Event-loop plumbing: one aiohttp session per loop, and the client's background loop.

An ``aiohttp.ClientSession`` belongs to the loop it was created on.  LangChain users call us
from many loops over a process's life (``asyncio.run`` twice, pytest's per-test loops, a
Jupyter kernel, the calling thread's own loop for sync calls, our background thread for sync
calls made where a loop already runs), so each loop gets its own session, created inside a
coroutine on that loop, and closed when that loop shuts down.

The shutdown hook is an async generator parked at its first ``yield``: ``asyncio.run`` and
``asyncio.Runner`` call ``loop.shutdown_asyncgens()`` before closing a loop, which runs the
generator's ``finally`` *on that loop* -- the only place the session can be closed cleanly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Container, Coroutine
from typing import Any, Generic, TypeVar

import aiohttp

T = TypeVar("T")

_CLOSE_TIMEOUT = 10.0


Keeper = AsyncGenerator[None, None]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None (``asyncio.get_running_loop``
    raises instead)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


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

    def close_all(self, defer: Container[asyncio.AbstractEventLoop] = ()) -> None:
        """Close every session from any thread, each the way its loop's state allows;
        ``defer``: the calling threads' own loops, which only their threads may run."""
        current = running_loop()
        for loop, (session, keeper) in list(self._by_loop.items()):
            if loop.is_closed():
                self._by_loop.pop(loop, None)
                _abandon(session)
            elif loop is current:
                _close_in_background(keeper)  # we cannot block our own loop
            elif loop in defer:
                # Only its thread may run it: the session closes in that loop's next turn
                # (a call in progress fails as cut short), before the thread closes the loop.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_close_in_background, keeper)
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


def _close_in_background(keeper: Keeper) -> None:
    """Close a session on the running loop without waiting, keeping a reference to the task."""
    task = asyncio.get_running_loop().create_task(keeper.aclose())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


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


_IDLE_RUNNERS = 64
"""Runners of ended threads kept for new threads; a burst of threads beyond this many, once
ended, leaves the rest to be closed."""


class CallerLoops:
    """Each calling thread's own event loop, for the client's synchronous methods.

    A sync call made where no event loop runs is run on a private loop of the calling thread
    (an ``asyncio.Runner``), not handed to the background thread and back: the two thread
    switches of a hand-off cost about 100 us per call on a busy machine (300 sequential
    ``invoke`` took 1.20-1.23 x as long as 300 ``ainvoke``), a loop run in the caller's
    thread about 7 us.  The runner also turns Ctrl-C in the main thread into the call's
    cancellation, as ``asyncio.run`` does.

    A thread's loop runs only while that thread makes a call; its session (and pool) lasts
    between calls.  When a thread has ended, the next new thread takes its runner over,
    warm pool included: LangChain's sync ``batch`` starts new worker threads on every call,
    which would otherwise open new connections (TLS handshakes) every time.  Beyond
    ``_IDLE_RUNNERS`` left over, runners are closed; all of them, which closes their
    sessions, when the client closes.  A runner in use then is closed by its thread after
    the call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runners: dict[threading.Thread, _CallerRunner] = {}
        self._idle: list[_CallerRunner] = []  # left by threads that ended
        self._made: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        thread = threading.current_thread()
        with self._lock:
            if self._closed:
                coro.close()
                raise RuntimeError("this WebsimClient is closed; create a new one")
            owned = self._runners.get(thread)
            surplus: list[_CallerRunner] = []
            if owned is None:
                owned, surplus = self._take_over()
                self._runners[thread] = owned
            owned.busy = True
        _close_runners(surplus)
        try:
            return owned.runner.run(_after_a_turn(coro)).value
        except asyncio.CancelledError:
            # As from the background loop: the call's own cancellation, an ``Exception``
            # to the caller.  (Ctrl-C comes out of the runner as ``KeyboardInterrupt``.)
            raise concurrent.futures.CancelledError from None
        finally:
            with self._lock:
                owned.busy = False
                closed = self._closed
                if closed:
                    self._runners.pop(thread, None)
            if closed:
                owned.close()

    def loops(self) -> set[asyncio.AbstractEventLoop]:
        """The threads' loops not closed yet: only their own threads may run them."""
        with self._lock:
            return {loop for loop in self._made if not loop.is_closed()}

    def close(self) -> None:
        """Close every runner not in use (its session too); the others close after their
        call.  From any thread; idempotent."""
        with self._lock:
            self._closed = True
            idle = self._idle + [owned for owned in self._runners.values() if not owned.busy]
            self._idle = []
            self._runners = {t: owned for t, owned in self._runners.items() if owned.busy}
        _close_runners(idle)

    def _take_over(self) -> tuple[_CallerRunner, list[_CallerRunner]]:
        """A runner for a thread that has none (an ended thread's, or a new one), and the
        runners left over beyond ``_IDLE_RUNNERS``, to close.  Under the lock."""
        ended = [t for t, owned in self._runners.items() if not t.is_alive() and not owned.busy]
        self._idle.extend(self._runners.pop(t) for t in ended)
        if self._idle:
            owned = self._idle.pop()
        else:
            owned = _CallerRunner()
            self._made.add(owned.runner.get_loop())
        surplus = self._idle[_IDLE_RUNNERS:]
        del self._idle[_IDLE_RUNNERS:]
        return owned, surplus


class _CallerRunner:
    """One thread's runner, and whether a call of that thread is using it."""

    __slots__ = ("busy", "runner")

    def __init__(self) -> None:
        # A loop factory, so the runner does not make its loop the thread's current one.
        # The loop is not tied to a thread: one thread at a time runs it, whichever owns it.
        self.runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self.runner.get_loop()  # made now, under the lock: ``loops`` only reads it
        self.busy = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            loop = self.runner.get_loop()
            # A session close the client scheduled on this loop (``close_all``) runs and
            # finishes first: ``Runner.close`` would cancel it halfway, or close the
            # session's keeper under it.
            loop.run_until_complete(asyncio.sleep(0))
            closing = [task for task in _PENDING if task.get_loop() is loop]
            if closing:
                loop.run_until_complete(asyncio.gather(*closing, return_exceptions=True))
        # ``Runner.close`` cancels what is left, runs ``shutdown_asyncgens`` (the session
        # keepers close their sessions) and closes the loop.
        with contextlib.suppress(Exception):
            self.runner.close()


def _close_runners(runners: list[_CallerRunner]) -> None:
    """Close runners not in use.  Their loops must run to close their sessions, which a
    thread already running a loop cannot do (``aclose`` from async code, a finalizer in a
    loop's thread): a short-lived thread does it there."""
    if not runners:
        return
    if running_loop() is None:
        for owned in runners:
            owned.close()
        return
    closer = threading.Thread(
        target=_close_runners, args=(runners,), name="langchain-websim-close", daemon=True
    )
    closer.start()
    closer.join(_CLOSE_TIMEOUT)


async def _after_a_turn(coro: Coroutine[Any, Any, T]) -> _Result[T]:
    """Run ``coro`` after one loop turn.  The loop did not run between this thread's calls:
    a pooled connection the server closed meanwhile is noticed in this turn, not by the
    request that picks it."""
    await asyncio.sleep(0)
    return _Result(await coro)


class _Result(Generic[T]):
    """A call's result, boxed.  In the main thread ``asyncio.Runner`` swaps the SIGINT
    handler around each call; ``signal.signal`` returns the handler it replaces, and turning
    that one (a partial holding the task) into an enum member fails with a message that
    formats its ``repr``, the task's result included.  An ``AIMessage``'s repr cost 0.5 ms
    a call; this box's costs nothing."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


class BackgroundLoop:
    """A private event loop on a daemon thread, for the client's synchronous methods.

    Used for sync calls made where an event loop already runs (in a notebook, in async
    code): they cannot run a loop of their own there.  One long-lived loop keeps one warm
    connection pool for all of them.
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
