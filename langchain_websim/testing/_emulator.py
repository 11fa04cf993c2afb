"""``WebsimEmulator``: a local stand-in for the Websim inference API.

The server always runs on a thread of its own with its own event loop, so the same object
works from synchronous code, from ``async`` code (the caller's loop is never blocked by
request handling) and across pytest's per-test event loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Mapping
from typing import Any

from langchain_websim._wire import EndpointName
from langchain_websim.testing._ratelimit import RateLimit, RateLimiter, make_rate_limit
from langchain_websim.testing._records import RecordedRequest, RequestLog
from langchain_websim.testing._script import (
    ScriptBook,
    check_endpoint,
    make_script,
)
from langchain_websim.testing._server import ChatResponder, EmulatorServer, Settings

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class WebsimEmulator:
    """A Websim API on loopback: default answers, scripted faults and a request log.

    Args:
        host: address to bind; loopback by default.
        port: TCP port; 0 picks a free one (read it back from ``base_url``).
        chat_responder: ``fn(messages, body)`` returning the chat answer text (or a whole
            JSON object); default: ``"Echo: <last user message>"``.
        strict: answer requests that break the contract with 400.  With ``False`` the
            violations are still recorded, but the request is answered normally.
        require_project_id_format: treat a ``project_id`` outside the endpoint's generated
            format as a violation.  Turn off when the code under test passes its own ids.
        rate_limit: requests per second each endpoint admits (a token bucket per endpoint);
            others are answered 429 ``Rate limit exceeded``.  ``None``: no limit.
        burst: the bucket's size, the requests admitted at once; default: one second's
            worth, rounded up, at least 1.  Buckets start full.
        retry_after: seconds to send as ``Retry-After`` with each 429; ``None``: no header.
        on_request: ``fn(request)`` called with each ``RecordedRequest`` as it is recorded,
            on the emulator's thread (``websim emulator --verbose`` prints them with it).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        chat_responder: ChatResponder | None = None,
        strict: bool = True,
        require_project_id_format: bool = True,
        rate_limit: float | None = None,
        burst: int | None = None,
        retry_after: float | None = None,
        on_request: Callable[[RecordedRequest], None] | None = None,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty address such as '127.0.0.1', got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1-65535, got {port!r}")
        _check_responder(chat_responder)
        if on_request is not None and not callable(on_request):
            raise TypeError(f"on_request must be callable(request), got {on_request!r}")
        self._limiter = RateLimiter(make_rate_limit(rate_limit, burst, retry_after))
        self._host = host
        self._port = port
        self._log = RequestLog(on_request)
        self._scripts = ScriptBook()
        self._settings = Settings(
            strict=bool(strict),
            require_project_id_format=bool(require_project_id_format),
            chat_responder=chat_responder,
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._base_url: str | None = None

    # ----------------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._base_url is not None

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``, to pass as the client's ``base_url``."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not running; call start() or use 'with' first")
        return self._base_url

    def start(self) -> WebsimEmulator:
        """Bind and serve on a background thread; returns once requests are accepted."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"the emulator is already running at {self._base_url}")
            started: concurrent.futures.Future[str] = concurrent.futures.Future()
            thread = threading.Thread(
                target=self._serve, args=(started,), name="websim-emulator", daemon=True
            )
            thread.start()
            try:
                self._base_url = started.result(_START_TIMEOUT)
            except BaseException:
                thread.join(_STOP_TIMEOUT)
                raise
            self._thread = thread
        return self

    def stop(self) -> None:
        """Stop serving: in-flight delayed or streamed answers are cut off.  Idempotent."""
        with self._lock:
            thread, loop, stop_event = self._thread, self._loop, self._stop_event
            if thread is None or loop is None or stop_event is None:
                return
            if threading.current_thread() is thread:
                raise RuntimeError("stop() was called from the emulator's own thread")
            loop.call_soon_threadsafe(stop_event.set)
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                raise RuntimeError(f"the emulator thread did not stop within {_STOP_TIMEOUT} s")
            self._thread = self._loop = self._stop_event = None
            self._base_url = None

    async def astart(self) -> WebsimEmulator:
        """``start()`` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """``stop()`` without blocking the caller's event loop."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> WebsimEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> WebsimEmulator:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def __repr__(self) -> str:
        where = self._base_url or "stopped"
        return f"WebsimEmulator({where}, strict={self._settings.strict})"

    def _serve(self, started: concurrent.futures.Future[str]) -> None:
        # asyncio.Runner cancels leftovers and closes async generators and the loop, so
        # nothing from this thread outlives stop() (no ResourceWarning at interpreter exit).
        with asyncio.Runner() as runner:
            runner.run(self._main(started))

    async def _main(self, started: concurrent.futures.Future[str]) -> None:
        server = EmulatorServer(self._settings, self._log, self._scripts, self._limiter)
        stop_event = asyncio.Event()
        try:
            base_url = await server.open(self._host, self._port)
        except BaseException as exc:
            started.set_exception(exc)
            return
        self._loop, self._stop_event = asyncio.get_running_loop(), stop_event
        started.set_result(base_url)
        try:
            await stop_event.wait()
        finally:
            await server.close()

    # ----------------------------------------------------------------------- scripting

    def enqueue(
        self,
        endpoint: EndpointName,
        *,
        status: int = 200,
        json: Any = None,
        body: str | bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        drop: bool = False,
        body_size: int | None = None,
        times: int | None = 1,
    ) -> None:
        """Queue a scripted answer for the endpoint's next request(s), played in order.

        ``json`` sends a JSON body; ``body`` sends ``str``/``bytes`` as given (with
        ``content_type``); neither: the usual answer for a 2xx ``status``, a short JSON error
        otherwise.  ``delay`` waits before answering (other requests are not held up);
        ``drop`` closes the connection without answering; ``body_size`` streams that many
        filler bytes (chunked).  ``times`` repeats it; ``None`` repeats until ``clear()``.
        A request that breaks the contract still gets 400 and does not use up a script.
        """
        name = check_endpoint(endpoint)
        script = make_script(
            status=status,
            json=json,
            body=body,
            content_type=content_type,
            headers=headers,
            delay=delay,
            drop=drop,
            body_size=body_size,
        )
        self._scripts.enqueue(name, script, times)

    def set_fault_rate(
        self,
        endpoint: EndpointName,
        p: float,
        *,
        status: int = 429,
        seed: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer a random fraction ``p`` of unscripted requests with ``status``.

        Reproducible with ``seed``; ``p=0`` turns faults off.  Queued scripts play first.
        """
        self._scripts.set_fault_rate(check_endpoint(endpoint), p, status, seed, headers)

    def set_chat_responder(self, fn: ChatResponder | None) -> None:
        """Answer chat with ``fn(messages, body)``: a str becomes ``{"content": str}``, a
        dict is sent as the JSON object.  ``None`` restores the echo answer."""
        _check_responder(fn)
        self._settings.chat_responder = fn

    def set_rate_limit(
        self,
        rate_limit: float | None,
        *,
        burst: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Change the rate limit, also while serving; ``None`` lifts it.

        Arguments as for the constructor.  Both endpoints' buckets start full under the new
        limit.  Safe to call from any thread; a request being decided meanwhile sees either
        the old limit or the new one.
        """
        self._limiter.configure(make_rate_limit(rate_limit, burst, retry_after))

    @property
    def rate_limit(self) -> RateLimit | None:
        """The rate limit in force (``rate``, ``burst``, ``retry_after``), or ``None``."""
        return self._limiter.limit

    def clear(self) -> None:
        """Forget recorded requests, queued scripts, fault rates and the chat responder.

        The rate limit stays (like ``strict``, it is configuration), but its buckets are
        refilled, so no state from before ``clear()`` carries over.
        """
        self._scripts.clear()
        self._settings.chat_responder = None
        self._limiter.refill()
        self._log.clear()

    # ----------------------------------------------------------------------- request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request so far, oldest first (a copy)."""
        return self._log.snapshot()

    def requests_for(self, endpoint: EndpointName) -> list[RecordedRequest]:
        return self._log.snapshot(check_endpoint(endpoint))

    @property
    def rate_limited_count(self) -> int:
        """How many recorded requests the rate limit answered with 429 (scripted or
        injected 429s are not counted); ``RecordedRequest.rate_limited`` marks each one."""
        return self._log.count_rate_limited()

    async def wait_for_requests(
        # A timeout argument, like the sync twin, reads better in tests than a wrapper.
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        endpoint: EndpointName | None = None,
    ) -> list[RecordedRequest]:
        """Wait until at least ``n`` requests (to ``endpoint``, if given) were recorded.

        Returns the recorded requests; raises ``TimeoutError`` naming how many arrived.
        """
        _check_count(n, timeout)
        name = check_endpoint(endpoint) if endpoint is not None else None
        return await self._log.wait(n, timeout, name)

    def wait_for_requests_sync(
        self, n: int, timeout: float = 5.0, *, endpoint: EndpointName | None = None
    ) -> list[RecordedRequest]:
        """Blocking twin of ``wait_for_requests``, for synchronous code."""
        _check_count(n, timeout)
        name = check_endpoint(endpoint) if endpoint is not None else None
        return self._log.wait_sync(n, timeout, name)


def _check_responder(fn: object) -> None:
    if fn is not None and not callable(fn):
        raise TypeError(f"chat_responder must be callable(messages, body), got {fn!r}")


def _check_count(n: int, timeout: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a whole number >= 0, got {n!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
