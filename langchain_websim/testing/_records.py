"""The emulator's request log: what arrived, what it was answered, and who is waiting for it.

The server thread appends; test code reads from its own thread or event loop.  Waiters are
woken by callbacks instead of polling, so ``wait_for_requests`` returns as soon as the
request is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_websim._wire import EndpointName


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request to an API endpoint, as the emulator saw and answered it.

    ``status`` is the HTTP status the emulator answered with, or ``None`` when a script told
    it to drop the connection without answering.  ``violations`` lists every way the request
    broke the Websim contract (empty for a well-formed request).  ``rate_limited`` is true
    when the emulator's rate limit answered it (429), rather than a script or a fault.
    ``time`` is the ``time.monotonic()`` reading the rate limit decided with.
    """

    endpoint: EndpointName
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    time: float
    status: int | None
    violations: list[str] = field(default_factory=list)
    rate_limited: bool = False


class RequestLog:
    def __init__(self, listener: Callable[[RecordedRequest], None] | None = None) -> None:
        self._lock = threading.Condition()
        self._entries: list[RecordedRequest] = []
        self._wakers: set[Callable[[], None]] = set()
        self._listener = listener

    def append(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            wakers = list(self._wakers)
            self._lock.notify_all()
        for wake in wakers:
            wake()
        if self._listener is not None:
            self._listener(entry)  # outside the lock: it may be slow (a terminal)

    def snapshot(self, endpoint: EndpointName | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [e for e in self._entries if endpoint is None or e.endpoint == endpoint]

    def count_rate_limited(self, endpoint: EndpointName | None = None) -> int:
        with self._lock:
            return sum(
                e.rate_limited for e in self._entries if endpoint is None or e.endpoint == endpoint
            )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def wait_sync(
        self, n: int, timeout: float, endpoint: EndpointName | None
    ) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [e for e in self._entries if endpoint is None or e.endpoint == endpoint]
                if len(found) >= n:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timeout_error(n, len(found), timeout, endpoint)
                self._lock.wait(remaining)

    async def wait(
        self,
        n: int,
        timeout: float,  # noqa: ASYNC109
        endpoint: EndpointName | None,
    ) -> list[RecordedRequest]:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()

        def wake() -> None:
            # The caller's loop may have closed meanwhile; then nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(arrived.set)

        with self._lock:
            self._wakers.add(wake)
        found: list[RecordedRequest] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    arrived.clear()
                    found = self.snapshot(endpoint)
                    if len(found) >= n:
                        return found
                    await arrived.wait()
        except TimeoutError:
            raise _timeout_error(n, len(found), timeout, endpoint) from None
        finally:
            with self._lock:
                self._wakers.discard(wake)


def _timeout_error(n: int, got: int, timeout: float, endpoint: EndpointName | None) -> TimeoutError:
    what = f"{endpoint} requests" if endpoint else "requests"
    return TimeoutError(f"expected {n} {what} within {timeout} s, the emulator received {got}")
