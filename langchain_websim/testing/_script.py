"""Scripted answers and injected faults, per endpoint.

Test code queues scripts from its thread while the server thread pops them, so every access
goes through one lock.  Arguments are checked when a script is queued, not when it plays, so
a mistake fails the test line that made it.
"""

from __future__ import annotations

import json as jsonlib
import math
import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_websim._wire import ENDPOINTS, EndpointName


@dataclass(frozen=True, slots=True)
class Script:
    """One queued answer.  ``body is None`` and ``body_size is None`` and not ``drop``: the
    emulator's usual answer (for 2xx) or a short JSON error (for any other status)."""

    status: int = 200
    body: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    body_size: int | None = None


@dataclass(slots=True)
class _Queued:
    script: Script
    remaining: int | None  # None: every request until clear()


@dataclass(slots=True)
class _Fault:
    rate: float
    status: int
    headers: dict[str, str]
    rng: random.Random


def check_endpoint(endpoint: object) -> EndpointName:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be 'chat' or 'image', got {endpoint!r}")
    return endpoint


def check_status(status: object) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"status must be an HTTP status code (100-599), got {status!r}")
    return status


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"response headers must map str to str, got {name!r}: {value!r}")
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"response header {name!r} contains CR, LF or NUL")
        out[name] = value
    return out


def make_script(
    *,
    status: int,
    json: Any,
    body: str | bytes | None,
    content_type: str | None,
    headers: Mapping[str, str] | None,
    delay: float,
    drop: bool,
    body_size: int | None,
) -> Script:
    check_status(status)
    given = [name for name, v in (("json", json), ("body", body)) if v is not None]
    if body_size is not None:
        given.append("body_size")
    if len(given) > 1:
        raise ValueError(f"pass only one of json, body and body_size, got {', '.join(given)}")
    if drop and (given or content_type is not None or headers):
        raise ValueError(
            "drop=True sends no answer at all; it takes no body, content type or headers"
        )
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay):
        raise TypeError(f"delay must be a number of seconds, got {delay!r}")
    if delay < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
    if body_size is not None and (
        isinstance(body_size, bool) or not isinstance(body_size, int) or body_size < 0
    ):
        raise ValueError(f"body_size must be a whole number of bytes >= 0, got {body_size!r}")
    if content_type is not None and not isinstance(content_type, str):
        raise TypeError(f"content_type must be a string, got {content_type!r}")
    raw: bytes | None = None
    if json is not None:
        raw = jsonlib.dumps(json, ensure_ascii=False).encode()
        content_type = content_type or "application/json"
    elif isinstance(body, str):
        raw = body.encode()
        content_type = content_type or "text/plain; charset=utf-8"
    elif isinstance(body, bytes):
        raw = body
        content_type = content_type or "application/octet-stream"
    elif body is not None:
        raise TypeError(f"body must be str or bytes, got {type(body).__name__}")
    return Script(
        status=status,
        body=raw,
        content_type=content_type,
        headers=check_headers(headers),
        delay=float(delay),
        drop=drop,
        body_size=body_size,
    )


class ScriptBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[EndpointName, deque[_Queued]] = {name: deque() for name in ENDPOINTS}
        self._faults: dict[EndpointName, _Fault] = {}

    def enqueue(self, endpoint: EndpointName, script: Script, times: int | None) -> None:
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(
                f"times must be a whole number >= 1, or None for always; got {times!r}"
            )
        with self._lock:
            self._queues[endpoint].append(_Queued(script, times))

    def set_fault_rate(
        self,
        endpoint: EndpointName,
        rate: float,
        status: int,
        seed: int | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"fault rate must be a probability between 0 and 1, got {rate!r}")
        check_status(status)
        fault = _Fault(float(rate), status, check_headers(headers), random.Random(seed))
        with self._lock:
            if rate == 0:
                self._faults.pop(endpoint, None)
            else:
                self._faults[endpoint] = fault

    def next(self, endpoint: EndpointName) -> Script | None:
        """The script for the next request: queued ones first, then a random fault."""
        with self._lock:
            queue = self._queues[endpoint]
            if queue:
                head = queue[0]
                if head.remaining is not None:
                    head.remaining -= 1
                    if head.remaining == 0:
                        queue.popleft()
                return head.script
            fault = self._faults.get(endpoint)
            if fault is not None and fault.rng.random() < fault.rate:
                body = jsonlib.dumps({"error": "injected fault", "status": fault.status})
                return Script(
                    status=fault.status,
                    body=body.encode(),
                    content_type="application/json",
                    headers=fault.headers,
                )
            return None

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self._faults.clear()
