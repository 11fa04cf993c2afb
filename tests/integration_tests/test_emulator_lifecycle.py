"""Starting, stopping and restarting the emulator, from sync and async code."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.emulator_http import USER, chat_request, image_request, post


async def test_stop_from_the_emulators_own_thread_is_refused(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.set_chat_responder(lambda messages, body: emulator.stop() or "unreachable")
    status, _, raw = await post(http, chat_request(emulator))
    assert status == 500
    assert "stop() was called from the emulator's own thread" in json.loads(raw)["error"]
    assert emulator.running


def test_start_stop_restart_and_misuse() -> None:
    emu = WebsimEmulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url
    emu.stop()  # stopping a stopped emulator is harmless
    assert emu.start() is emu
    try:
        assert emu.running
        with pytest.raises(RuntimeError, match="already running"):
            emu.start()
    finally:
        emu.stop()
    assert not emu.running
    assert "stopped" in repr(emu)
    with emu:
        with WebsimClient(base_url=emu.base_url, max_retries=0) as client:
            assert client.chat(USER).text == "Echo: hello"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"port": -1}, "port must be"),
        ({"port": 70000}, "port must be"),
        ({"port": "80"}, "port must be"),
        ({"host": ""}, "host must be"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WebsimEmulator(**kwargs)


def test_start_reports_a_busy_port(emulator: WebsimEmulator) -> None:
    port = int(emulator.base_url.rsplit(":", 1)[1])
    other = WebsimEmulator(port=port)
    with pytest.raises(OSError):
        other.start()
    assert not other.running


async def test_stop_cuts_off_a_pending_delayed_answer(http: aiohttp.ClientSession) -> None:
    emu = await WebsimEmulator().astart()
    # An earlier request leaves a kept-alive connection in the client's pool.
    assert (await post(http, image_request(emu)))[0] == 200
    emu.enqueue("chat", delay=600)
    pending = asyncio.create_task(post(http, chat_request(emu)))
    await emu.wait_for_requests(1, endpoint="chat")
    # stop() gives up with RuntimeError after 10 s, so returning at all means the 600 s
    # answer was cut off rather than waited for.
    await emu.astop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending
    assert not emu.running


def test_works_from_plain_sync_code_and_asyncio_run() -> None:
    with WebsimEmulator() as emu:

        async def twice() -> list[str]:
            async with WebsimClient(base_url=emu.base_url, max_retries=0) as client:
                return [(await client.achat(USER)).text for _ in range(2)]

        # Two separate event loops, one after the other, against the same emulator.
        assert asyncio.run(twice()) == asyncio.run(twice()) == ["Echo: hello"] * 2
    assert len(emu.requests) == 4


@pytest.mark.parametrize("run", [1, 2])
async def test_shared_emulator_across_test_loops(shared_emulator: WebsimEmulator, run: int) -> None:
    shared_emulator.clear()
    async with WebsimClient(base_url=shared_emulator.base_url, max_retries=0) as client:
        assert (await client.achat([{"role": "user", "content": f"run {run}"}])).text == (
            f"Echo: run {run}"
        )
    assert len(shared_emulator.requests) == 1
