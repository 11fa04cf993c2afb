"""How much ChatWebsim costs on top of LangChain and the wire, against local servers.

Usage (after ``pip install -e '.[benchmark]'``)::

    python benchmarks/bench.py            # the full run documented in docs/performance.md
    python benchmarks/bench.py --quick    # a few seconds: every figure, tiny sizes
    python benchmarks/bench.py --profile  # also print pyinstrument profiles of both paths

One local server process (``_server.py``) answers a Websim chat route and an OpenAI-shaped
route over HTTP and HTTPS.  The contenders run in interleaved rounds in this one process,
each round timing every contender once, and the report gives the medians, the ratios the
targets are stated in, and PASS or MISS for each.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import random
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import _contenders as c
import _probes
import _report
from _report import PROTOCOLS
from _server import ANSWER, Server, start_server


@dataclass(frozen=True)
class Config:
    calls: int = 2000
    concurrency: int = 50
    rounds: int = 5
    sequential: int = 300
    memory_calls: int = 10_000
    import_runs: int = 7


QUICK = Config(calls=100, concurrency=50, rounds=1, sequential=10, memory_calls=200, import_runs=1)


@dataclass
class Contenders:
    """Everything timed over one protocol; built and closed on the benchmark's loop."""

    raw: c.RawAiohttp
    floor: c.WireChatModel
    websim: Any  # ChatWebsim
    openai: Any  # ChatOpenAI
    base: str = ""
    trust: Any = None  # the SSLContext that trusts the test certificate (HTTPS)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in self.closers:
            await close()

    async def fresh_websim(self, n: int, conc: int) -> float:
        """What a user's script does: a new client (pool, rate control) for the batch."""
        from langchain_websim import ChatWebsim, WebsimClient

        client = WebsimClient(self.base, ssl_context=self.trust)
        try:
            return await c.run_concurrent(c.ainvoke_call(ChatWebsim(client=client)), n, conc)
        finally:
            await client.aclose()

    async def fresh_floor(self, n: int, conc: int) -> float:
        """The composed floor the same way: a new aiohttp session for the batch."""
        raw = c.RawAiohttp(self.base, self.trust)
        try:
            return await c.run_concurrent(c.ainvoke_call(c.WireChatModel(wire=raw)), n, conc)
        finally:
            await raw.aclose()


def build(server: Server, protocol: str) -> Contenders:
    import openai
    from langchain_openai import ChatOpenAI

    from langchain_websim import ChatWebsim, WebsimClient

    https = protocol == "HTTPS"
    base = server.https_url if https else server.http_url
    trust = server.trust if https else None
    client = WebsimClient(base, ssl_context=trust)
    # The SDK's own client class (its connection limits), told to trust the certificate.
    openai_async = openai.DefaultAsyncHttpxClient(verify=server.trust)
    openai_sync = openai.DefaultHttpxClient(verify=server.trust)
    raw = c.RawAiohttp(base, trust)

    async def close_sync_openai() -> None:
        openai_sync.close()

    return Contenders(
        raw=raw,
        floor=c.WireChatModel(wire=raw),
        websim=ChatWebsim(client=client),
        openai=ChatOpenAI(
            model="gpt-4o-mini",
            api_key="sk-benchmark",
            base_url=base + "/v1",
            http_async_client=openai_async,
            http_client=openai_sync,
        ),
        base=base,
        trust=trust,
        closers=[raw.aclose, client.aclose, openai_async.aclose, close_sync_openai],
    )


Samples = dict[str, list[float]]


def run(config: Config, server: Server, only: tuple[str, ...] = ("",)) -> tuple[Samples, Samples]:
    """Wall-clock and client-CPU seconds per round for every figure (``"websim HTTP"``...);
    ``only``: just the figures whose key starts with one of these."""
    wall: Samples = {}
    cpu: Samples = {}
    fixed = c.FixedChatModel()
    n, conc, seq = config.calls, config.concurrency, config.sequential

    with asyncio.Runner() as runner:
        contenders = {p: build(server, p) for p in PROTOCOLS}

        def concurrent(call: c.Call) -> Callable[[], float]:
            return lambda: runner.run(c.run_concurrent(call, n, conc))

        def sequential(call: c.Call) -> Callable[[], float]:
            return lambda: runner.run(c.run_sequential_async(call, seq))

        def fresh(batch: Callable[[int, int], Coroutine[Any, Any, float]]) -> Callable[[], float]:
            return lambda: runner.run(batch(n, conc))

        jobs: list[tuple[str, Callable[[], float]]] = [
            ("langchain", concurrent(c.ainvoke_call(fixed)))
        ]
        for p, k in contenders.items():
            jobs += [
                (f"raw {p}", concurrent(k.raw.call)),
                (f"floor {p}", concurrent(c.ainvoke_call(k.floor))),
                (f"websim {p}", concurrent(c.ainvoke_call(k.websim))),
                (f"openai {p}", concurrent(c.ainvoke_call(k.openai))),
                (f"sync {p}", partial(c.run_sequential_sync, c.invoke_call(k.websim), seq)),
                (f"async {p}", sequential(c.ainvoke_call(k.websim))),
                # A new client per round: the first contact is timed every round.
                (f"fresh websim {p}", fresh(k.fresh_websim)),
                (f"fresh floor {p}", fresh(k.fresh_floor)),
            ]
        jobs = [(key, job) for key, job in jobs if key.startswith(only)]
        try:
            _warm_up(runner, config, fixed, contenders)
            for round_no in range(config.rounds):
                # A new order every round (seeded, so runs are comparable): neither a drift
                # of the machine nor the garbage one job leaves behind always lands on the
                # same contender; and every job starts from a collected heap.
                random.Random(round_no).shuffle(jobs)
                for key, job in jobs:
                    gc.collect()
                    started = time.process_time()
                    wall.setdefault(key, []).append(job())
                    cpu.setdefault(key, []).append(time.process_time() - started)
        finally:
            for k in contenders.values():
                runner.run(k.aclose())
    return wall, cpu


def _warm_up(
    runner: asyncio.Runner, config: Config, fixed: Any, contenders: dict[str, Contenders]
) -> None:
    """Check every contender gets the right answer, and open the connection pools."""
    calls = [c.ainvoke_call(fixed)]
    for k in contenders.values():
        calls += [k.raw.call, *(c.ainvoke_call(m) for m in (k.floor, k.websim, k.openai))]
        if c.invoke_call(k.websim)() != ANSWER:
            raise RuntimeError("ChatWebsim.invoke returned a wrong answer")
    for call in calls:
        answer = runner.run(call())
        if answer != ANSWER:
            raise RuntimeError(f"a contender answered {answer!r}, expected {ANSWER!r}")
        runner.run(c.run_concurrent(call, config.concurrency * 2, config.concurrency))


def _missing_dependencies() -> list[str]:
    import importlib.util

    needed = ("langchain_openai", "trustme", "pyinstrument")
    return [name for name in needed if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--profile", action="store_true", help="print pyinstrument profiles")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 1)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="only ChatWebsim and the floor with a new client per round, side by side",
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    missing = _missing_dependencies()
    if missing:
        print(
            f"the benchmark needs {', '.join(missing)}: pip install -e '.[benchmark]'",
            file=sys.stderr,
        )
        return 2
    config = QUICK if args.quick else Config()
    if args.rounds is not None:
        config = dataclasses.replace(config, rounds=args.rounds)
    with start_server() as server:
        if args.fresh:
            times, cpu = run(config, server, only=("fresh", "websim", "floor"))
            _report.fresh_report(config, times, cpu)
            return 0
        times, cpu = run(config, server)
        memory = {"calls": float(config.memory_calls)}
        memory.update(_probes.peak_memory(server.http_url, config.memory_calls))
        imports = _probes.import_times(config.import_runs)
        _report.report(config, times, cpu, memory, imports)
        if args.profile:
            import _profile

            _profile.profile_paths(server, config.calls, config.concurrency, config.sequential)
    return 0


if __name__ == "__main__":
    sys.exit(main())
