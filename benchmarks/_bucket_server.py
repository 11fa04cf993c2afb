"""A rate-limited stand-in for Websim: the benchmark server's two routes behind a token bucket.

Run as its own process (``python _bucket_server.py CONFIG_JSON``), so the clients under test
do not share its GIL.  Both chat routes (Websim's and the OpenAI-shaped one) draw from one
bucket of ``burst`` tokens refilled at ``rate`` per second; a request that finds no token gets
``429 {"error": "Rate limit exceeded"}`` (with ``Retry-After`` when configured), as Websim
answers.  ``schedule`` changes the rate at given seconds after the *first* request, so the
time a client spends starting up does not eat into a phase.  ``rate=None`` is no limit at
all; ``noise`` refuses that share of requests at random whatever the pace (a limit shared
with others, upstream overload), before the bucket is asked; ``latency`` is how long a model
takes to answer (a 429 comes back at once, as a rate limiter's does).

The process prints ``READY <port>``, serves until its standard input closes, then prints
``STATS <json>`` (requests, 429s, first and last request times, and every request's time
and status for the pictures) and exits; ``GET /stats``
gives the same figures while it runs.  ``start_bucket_server()`` wraps all of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from _server import _BODIES
from aiohttp import web

_LIMITED_BODY = json.dumps({"error": "Rate limit exceeded"}).encode()


@dataclass(frozen=True)
class Limit:
    rate: float | None
    """Requests per second; None: no limit."""
    burst: int
    retry_after: int | None = None
    schedule: tuple[tuple[float, float], ...] = ()
    """(seconds after the first request, new rate) steps, in order."""
    noise: float = 0.0
    """Share of requests refused at random, whatever the pace (they take no token)."""
    latency: float = 0.0
    """Seconds before a request the server takes is answered."""
    seed: int = 0


class Bucket:
    """A token bucket whose refill follows the schedule exactly, with no timers."""

    def __init__(self, limit: Limit) -> None:
        self.rate = math.inf if limit.rate is None else limit.rate
        self.burst = float(limit.burst)
        self.tokens = float(limit.burst)
        self.steps = list(limit.schedule)
        self.anchor: float | None = None
        self.stamp = 0.0

    def take(self, now: float) -> bool:
        if self.anchor is None:
            self.anchor = self.stamp = now
        # Steps that fell due since the last request: refill at the old rate up to the
        # step, then switch, so a change never lands between two arbitrary requests.
        while self.steps and self.anchor + self.steps[0][0] <= now:
            offset, rate = self.steps.pop(0)
            self._refill(self.anchor + offset)
            self.rate = rate
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def _refill(self, until: float) -> None:
        if math.isinf(self.rate):
            self.tokens = self.burst = math.inf
            return
        self.tokens = min(self.burst, self.tokens + (until - self.stamp) * self.rate)
        self.stamp = until


@dataclass
class Stats:
    requests: int = 0
    limited: int = 0
    first: float | None = None
    last: float | None = None
    by_path: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[float, int, float]] = field(default_factory=list)
    """(arrived, status, answered) of every request, in seconds after the first request."""


def make_handler(limit: Limit, stats: Stats) -> Any:
    bucket = Bucket(limit)
    noise = random.Random(limit.seed)
    headers = {} if limit.retry_after is None else {"Retry-After": str(limit.retry_after)}

    async def handle(request: web.BaseRequest) -> web.Response:
        await request.read()
        if request.method == "GET" and request.path == "/stats":
            return web.json_response(asdict(stats))
        body = _BODIES.get(request.path)
        if request.method != "POST" or body is None:
            return web.Response(status=404, text="not found")
        now = time.monotonic()
        stats.requests += 1
        stats.by_path[request.path] = stats.by_path.get(request.path, 0) + 1
        stats.first = now if stats.first is None else stats.first
        stats.last = now
        # Noise is drawn first and takes no token: it does not depend on anyone's pace.
        refused = (limit.noise and noise.random() < limit.noise) or not bucket.take(now)
        arrived = now - stats.first
        if refused:
            stats.limited += 1
            stats.timeline.append((arrived, 429, arrived))
            return web.Response(
                status=429, body=_LIMITED_BODY, content_type="application/json", headers=headers
            )
        if limit.latency:
            await asyncio.sleep(limit.latency)
        stats.timeline.append((arrived, 200, time.monotonic() - stats.first))
        return web.Response(body=body, content_type="application/json")

    return handle


async def _serve(limit: Limit) -> None:
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def wait_for_eof() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stdin_closed.set)

    stats = Stats()
    # Answers take at most the latency, so nothing in flight is worth a long shutdown.
    runner = web.ServerRunner(
        web.Server(make_handler(limit, stats), access_log=None),
        shutdown_timeout=2 + limit.latency,
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY {port}", flush=True)
    threading.Thread(target=wait_for_eof, daemon=True).start()
    try:
        await stdin_closed.wait()
    finally:
        await runner.cleanup()
    print("STATS " + json.dumps(asdict(stats)), flush=True)


@dataclass
class BucketServer:
    url: str
    stats: dict[str, Any] = field(default_factory=dict)
    """Filled in when the server stops."""


@contextlib.contextmanager
def start_bucket_server(limit: Limit) -> Iterator[BucketServer]:
    """Run the server for the ``with`` block; its final counts land in ``.stats`` on exit."""
    proc = subprocess.Popen(
        [sys.executable, __file__, json.dumps(asdict(limit))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # A server that dies before READY closes its stdout: readline returns "".
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the bucket server did not start: {line!r}")
        server = BucketServer(url=f"http://127.0.0.1:{int(line.split()[1])}")
        yield server
        # Closing its standard input stops the server; it prints its counts on the way out.
        tail, _ = proc.communicate(timeout=15)
        found = [ln for ln in tail.splitlines() if ln.startswith("STATS ")]
        if not found:
            raise RuntimeError("the bucket server stopped without its counts")
        server.stats = json.loads(found[-1][len("STATS ") :])
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _limit_from_json(raw: str) -> Limit:
    data = json.loads(raw)
    schedule = tuple((float(at), float(rate)) for at, rate in data.pop("schedule"))
    return Limit(schedule=schedule, **data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: _bucket_server.py CONFIG_JSON")
    asyncio.run(_serve(_limit_from_json(sys.argv[1])))
