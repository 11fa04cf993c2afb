"""``--profile``: where ChatWebsim's time goes, on the async path and on the sync path.

pyinstrument samples the benchmark's thread with the event loop included (``async_mode``
off), so the profile shows LangChain's layer, ChatWebsim, aiohttp and the loop side by side.
Each profile is printed as a tree and summed up by package (self time), which is the short
answer to "whose code is the call spending its time in".  The sync profile covers the
calling thread; the request itself runs on the client's background loop thread and shows up
there as the wait in ``BackgroundLoop.run``.
"""

from __future__ import annotations

import asyncio
import sysconfig
from collections import Counter
from typing import Any

import _contenders as c
from _server import Server
from pyinstrument import Profiler

# Package of a frame, by the first of these path fragments its file path contains.
_PACKAGES = (
    ("langchain_websim", "/langchain_websim/"),
    ("langchain_core", "/langchain_core/"),
    ("langsmith", "/langsmith/"),
    ("pydantic", "/pydantic"),
    ("aiohttp", "/aiohttp/"),
    ("multidict/yarl", "/multidict/"),
    ("multidict/yarl", "/yarl/"),
    ("asyncio", "/asyncio/"),
    ("ssl", "/ssl.py"),
    ("benchmark", "/benchmarks/"),
)


_STDLIB = sysconfig.get_paths()["stdlib"]


def profile_paths(server: Server, calls: int, concurrency: int, sequential: int) -> None:
    from langchain_websim import ChatWebsim, WebsimClient

    with asyncio.Runner() as runner:
        client = WebsimClient(server.http_url)
        model = ChatWebsim(client=client)
        call = c.ainvoke_call(model)
        try:
            runner.run(c.run_concurrent(call, concurrency * 2, concurrency))  # warm pool
            with Profiler(interval=0.0002, async_mode="disabled") as async_profile:
                runner.run(c.run_concurrent(call, calls, concurrency))
            c.invoke_call(model)()
            with Profiler(interval=0.0002, async_mode="disabled") as sync_profile:
                c.run_sequential_sync(c.invoke_call(model), sequential)
        finally:
            runner.run(client.aclose())
    for title, profile in (
        (f"ChatWebsim.ainvoke, {calls} calls, {concurrency} concurrent (HTTP)", async_profile),
        (f"ChatWebsim.invoke, {sequential} sequential calls (HTTP)", sync_profile),
    ):
        print(f"\n==== profile: {title}")
        print(profile.output_text(unicode=False, color=False, show_all=False))
        print(f"self time by package: {by_package(profile)}")


def by_package(profile: Profiler) -> str:
    session = profile.last_session
    root = session.root_frame() if session is not None else None
    if root is None:
        return "(no samples)"
    totals: Counter[str] = Counter()

    def walk(frame: Any, parent: str) -> None:
        path = frame.file_path or ""
        name = next((pkg for pkg, fragment in _PACKAGES if fragment in path), None)
        if name is None:
            # "[self]" time, built-ins (json's C code, socket calls) and the rest of the
            # standard library (inspect, uuid, ...) count for the package that called them.
            own = path and not path.startswith("<") and not path.startswith(_STDLIB)
            name = "other" if own else parent
        if frame.children:
            totals[name] += frame.time - sum(child.time for child in frame.children)
            for child in frame.children:
                walk(child, name)
        else:
            totals[name] += frame.time

    walk(root, "other")
    whole = sum(totals.values()) or 1.0
    return ", ".join(f"{name} {share / whole:.0%}" for name, share in totals.most_common())
