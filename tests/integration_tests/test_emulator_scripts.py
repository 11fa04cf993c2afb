"""Scripted answers and injected faults, over loopback.

Scripted statuses are sent with plain aiohttp (the client would retry or refuse them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import tracemalloc
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient, _wire
from langchain_websim.errors import WebsimAPIError, WebsimConnectionError, WebsimError
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.emulator_http import USER, chat_request, image_request, post


async def test_scripted_status_json_and_headers(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", status=429, json={"error": "slow down"}, headers={"Retry-After": "1"})
    status, headers, raw = await post(http, chat_request(emulator))
    assert (status, json.loads(raw)) == (429, {"error": "slow down"})
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"] == "application/json"
    assert emulator.requests[0].status == 429
    # Played once: the next request gets the default answer.
    assert (await post(http, chat_request(emulator)))[0] == 200


async def test_scripted_raw_bodies_keep_their_content_type(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    page = "<html><body>cf-chl challenge</body></html>"
    emulator.enqueue("chat", status=403, body=page, content_type="text/html; charset=UTF-8")
    emulator.enqueue("chat", body=b"\x00\x01binary")
    emulator.enqueue("chat", body="plain words")
    answers = [await post(http, chat_request(emulator)) for _ in range(3)]
    assert [(s, h["Content-Type"], b) for s, h, b in answers] == [
        (403, "text/html; charset=UTF-8", page.encode()),
        (200, "application/octet-stream", b"\x00\x01binary"),
        (200, "text/plain; charset=utf-8", b"plain words"),
    ]


async def test_scripts_without_a_body(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", status=201, headers={"X-Scripted": "yes"})
    emulator.enqueue("image", status=503)
    status, headers, raw = await post(http, chat_request(emulator))
    assert (status, headers["X-Scripted"], json.loads(raw)) == (
        201,
        "yes",
        {"content": "Echo: hello"},
    )
    status, _, raw = await post(http, image_request(emulator))
    assert (status, json.loads(raw)) == (503, {"error": "scripted 503"})


async def test_scripts_play_in_order_per_endpoint_with_times(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", json={"content": "a"}, times=2)
    emulator.enqueue("chat", json={"content": "b"})
    emulator.enqueue("image", status=500)
    chats = [json.loads((await post(http, chat_request(emulator)))[2]) for _ in range(4)]
    assert [c["content"] for c in chats] == ["a", "a", "b", "Echo: hello"]
    assert (await post(http, image_request(emulator)))[0] == 500


async def test_times_none_repeats_until_clear(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", status=502, times=None)
    statuses = [(await post(http, chat_request(emulator)))[0] for _ in range(5)]
    assert statuses == [502] * 5
    emulator.clear()
    assert emulator.requests == []
    assert (await post(http, chat_request(emulator)))[0] == 200


async def test_delay_does_not_hold_up_other_requests(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", json={"content": "late"}, delay=0.5)
    started = time.monotonic()
    slow = asyncio.create_task(post(http, chat_request(emulator)))
    [first] = await emulator.wait_for_requests(1)
    # The delayed answer is recorded on arrival, with the status it will get.
    assert first.status == 200
    assert not slow.done()
    status, _, raw = await post(http, image_request(emulator))
    assert status == 200
    assert not slow.done()
    status, _, raw = await slow
    assert (status, json.loads(raw)) == (200, {"content": "late"})
    assert time.monotonic() - started >= 0.45


async def test_drop_closes_the_connection_without_answering(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", drop=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, chat_request(emulator))
    assert [r.status for r in emulator.requests] == [None]
    assert (await post(http, chat_request(emulator)))[0] == 200


async def test_drop_makes_the_client_report_a_connection_error(emulator: WebsimEmulator) -> None:
    emulator.enqueue("image", drop=True, times=None)
    async with WebsimClient(base_url=emulator.base_url, max_retries=1, retry_base_delay=0) as c:
        with pytest.raises(WebsimConnectionError):
            await c.agenerate_image("a cat")
    assert len(emulator.requests_for("image")) == 2


async def test_body_size_streams_chunked_filler(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    size = 3 * 1024 * 1024 + 7
    emulator.enqueue("chat", status=200, body_size=size, headers={"X-Big": "1"})
    url, headers, body = chat_request(emulator)
    async with http.post(url, headers=headers, data=body) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in resp.headers
        assert resp.headers["X-Big"] == "1"
        total = 0
        async for piece in resp.content.iter_any():
            total += len(piece)
    assert total == size


async def test_body_size_keeps_the_scripted_status(
    emulator: WebsimEmulator, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.enqueue("chat", status=206, body_size=10, content_type="text/plain")
    status, headers, raw = await post(http, chat_request(emulator))
    assert (status, headers["Content-Type"], raw) == (206, "text/plain", b"x" * 10)
    assert emulator.requests[0].status == 206
    # The request log stands in for aiohttp's access log, which stays quiet.
    assert not [r for r in caplog.records if r.name == "aiohttp.access"]


async def test_client_hanging_up_mid_stream(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", body_size=500 * 1024 * 1024)
    url, headers, body = chat_request(emulator)
    async with http.post(url, headers=headers, data=body) as resp:
        assert len(await resp.content.readexactly(1024 * 1024)) == 1024 * 1024
    # Leaving the block without reading on closes the connection; the emulator carries on.
    assert (await post(http, chat_request(emulator)))[0] == 200


async def test_body_size_is_streamed_not_built_in_memory(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    size = 40 * 1024 * 1024
    emulator.enqueue("chat", body_size=size)
    url, headers, body = chat_request(emulator)
    tracemalloc.start()
    try:
        async with http.post(url, headers=headers, data=body) as resp:
            total = 0
            async for piece in resp.content.iter_chunked(256 * 1024):
                total += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < size // 4


async def test_client_size_cap_against_a_huge_streamed_body(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", body_size=_wire.MAX_BODY_BYTES + 1024 * 1024)
    async with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
        with pytest.raises(WebsimError):
            await client.achat(USER)
    # The emulator is still healthy after the client hung up mid-stream.
    async with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
        assert (await client.achat(USER)).text == "Echo: hello"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"json": {}, "body": "x"}, ValueError, "only one of json, body and body_size"),
        ({"body": "x", "body_size": 3}, ValueError, "only one of json, body and body_size"),
        ({"drop": True, "json": {}}, ValueError, "drop=True sends no answer"),
        ({"drop": True, "headers": {"A": "b"}}, ValueError, "drop=True sends no answer"),
        ({"status": 42}, ValueError, "HTTP status code"),
        ({"status": True}, ValueError, "HTTP status code"),
        ({"delay": -1}, ValueError, "delay must be >= 0"),
        ({"delay": float("inf")}, TypeError, "delay must be a number"),
        ({"delay": "1"}, TypeError, "delay must be a number"),
        ({"times": 0}, ValueError, "times must be a whole number >= 1"),
        ({"body_size": -5}, ValueError, "body_size must be"),
        ({"body": 5}, TypeError, "body must be str or bytes"),
        ({"content_type": 5, "body": "x"}, TypeError, "content_type must be a string"),
        ({"headers": {"A": 1}}, TypeError, "response headers must map str to str"),
        ({"headers": {"A": "b\r\nX: y"}}, ValueError, "CR, LF or NUL"),
    ],
)
def test_enqueue_rejects_bad_arguments(
    emulator: WebsimEmulator, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        emulator.enqueue("chat", **kwargs)


def test_endpoint_names_are_checked(emulator: WebsimEmulator) -> None:
    for call in (
        lambda: emulator.enqueue("images"),  # type: ignore[arg-type]
        lambda: emulator.set_fault_rate("completion", 0.5),  # type: ignore[arg-type]
        lambda: emulator.requests_for("Chat"),  # type: ignore[arg-type]
        lambda: emulator.wait_for_requests_sync(1, endpoint="img"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="endpoint must be 'chat' or 'image'"):
            call()


# --------------------------------------------------------------------------- fault rate


async def _fault_pattern(seed: int, n: int) -> list[int]:
    async with WebsimEmulator() as emu, aiohttp.ClientSession() as http:
        emu.set_fault_rate("chat", 0.5, status=503, seed=seed, headers={"Retry-After": "0"})
        statuses = [(await post(http, chat_request(emu)))[0] for _ in range(n)]
        assert [r.status for r in emu.requests] == statuses
        return statuses


async def test_fault_rate_is_reproducible_with_a_seed() -> None:
    first = await _fault_pattern(seed=7, n=40)
    assert first == await _fault_pattern(seed=7, n=40)
    assert set(first) == {200, 503}
    assert first != await _fault_pattern(seed=8, n=40)


async def test_fault_rate_one_zero_and_scripts_first(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.set_fault_rate("image", 1.0, headers={"Retry-After": "2"})
    emulator.enqueue("image", json={"url": "http://x/scripted.png"})
    status, _, raw = await post(http, image_request(emulator))
    assert (status, json.loads(raw)) == (200, {"url": "http://x/scripted.png"})
    status, headers, raw = await post(http, image_request(emulator))
    assert (status, headers["Retry-After"]) == (429, "2")
    assert json.loads(raw) == {"error": "injected fault", "status": 429}
    # Faults on one endpoint leave the other alone.
    assert (await post(http, chat_request(emulator)))[0] == 200
    emulator.set_fault_rate("image", 0)
    assert (await post(http, image_request(emulator)))[0] == 200


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_fault_rate_must_be_a_probability(emulator: WebsimEmulator, p: Any) -> None:
    with pytest.raises(ValueError, match="probability between 0 and 1"):
        emulator.set_fault_rate("chat", p)


async def test_client_retries_through_faults(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", status=503, times=2)
    async with WebsimClient(base_url=emulator.base_url, max_retries=2, retry_base_delay=0) as c:
        reply = await c.achat(USER)
    assert (reply.text, reply.attempts) == ("Echo: hello", 3)
    assert [r.status for r in emulator.requests] == [503, 503, 200]
    emulator.enqueue("chat", status=404, json={"error": "nope"})
    async with WebsimClient(base_url=emulator.base_url, max_retries=2) as c:
        with pytest.raises(WebsimAPIError) as caught:
            await c.achat(USER)
    assert caught.value.status_code == 404
