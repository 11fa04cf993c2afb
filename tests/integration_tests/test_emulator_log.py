"""The emulator's request log: what it records and waiting for requests to arrive."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import aiohttp
import pytest

from langchain_websim import WebsimClient, _wire
from langchain_websim.errors import WebsimAPIError
from langchain_websim.testing import RecordedRequest, WebsimEmulator
from tests.integration_tests.emulator_http import USER, chat_request, image_request, post


async def test_requests_record_everything(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    before = time.monotonic()
    request = chat_request(emulator)
    await post(http, request)
    await post(http, image_request(emulator))
    chat: RecordedRequest = emulator.requests_for("chat")[0]
    assert chat.endpoint == "chat"
    assert (chat.method, chat.path) == ("POST", _wire.CHAT.path)
    assert chat.raw == request[2]
    assert chat.body == json.loads(request[2])
    assert chat.headers["websim-flags"] == ""
    assert chat.headers["origin"] == emulator.base_url
    assert all(name == name.lower() for name in chat.headers)
    assert before <= chat.time <= time.monotonic()
    assert (chat.status, chat.violations) == (200, [])
    assert [r.endpoint for r in emulator.requests_for("image")] == ["image"]
    # The log hands out copies: changing one does not change the emulator's.
    emulator.requests.clear()
    assert len(emulator.requests) == 2


async def test_wait_for_requests_async(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", delay=0.3)
    pending = asyncio.create_task(post(http, chat_request(emulator)))
    got = await emulator.wait_for_requests(1, endpoint="chat")
    assert [r.endpoint for r in got] == ["chat"]
    assert not pending.done()
    await pending
    with pytest.raises(TimeoutError, match=r"expected 1 image requests within 0\.05 s"):
        await emulator.wait_for_requests(1, timeout=0.05, endpoint="image")
    assert await emulator.wait_for_requests(0) == emulator.requests


def test_wait_for_requests_sync(emulator: WebsimEmulator) -> None:
    result: list[str] = []

    def call() -> None:
        with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
            result.append(client.generate_image("a fox").url)

    worker = threading.Thread(target=call)
    worker.start()
    try:
        got = emulator.wait_for_requests_sync(1, timeout=10)
    finally:
        worker.join()
    assert got[0].endpoint == "image"
    assert result and result[0].startswith(emulator.base_url)
    with pytest.raises(TimeoutError, match="received 1"):
        emulator.wait_for_requests_sync(2, timeout=0.05)
    with pytest.raises(ValueError, match="n must be a whole number"):
        emulator.wait_for_requests_sync(-1)


def test_clear_resets_log_scripts_faults_and_responder(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", status=500, times=None)
    emulator.set_fault_rate("image", 1.0)
    emulator.set_chat_responder(lambda m, b: "custom")
    with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
        with pytest.raises(WebsimAPIError):
            client.chat(USER)
        emulator.clear()
        assert emulator.requests == []
        assert client.chat(USER).text == "Echo: hello"
        client.generate_image("a cat")
    assert [r.status for r in emulator.requests] == [200, 200]
