"""``--profile``: where ChatWebsim's time goes, on the async path and on the sync path.

pyinstrument samples the benchmark's thread with the event loop included (``async_mode``
off), so the profile shows LangChain's layer, ChatWebsim, aiohttp and the loop side by side.
The sync profile covers the calling thread; the request itself runs on the client's
background loop thread and shows up there as the wait in ``BackgroundLoop.run``.
"""

from __future__ import annotations

import asyncio

import _contenders as c
from _server import Server
from pyinstrument import Profiler


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
