"""The emulator's default answers, image downloads and chat responders, over loopback."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient, _wire
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.emulator_http import USER, chat_request, image_request, post
from tests.png import read_png


async def test_chat_echoes_last_user_message_joining_text_parts_and_counting_images(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                {"type": "text", "text": "this, ünïcode"},
            ],
        },
        {"role": "system", "content": "later system note"},
    ]
    status, headers, raw = await post(http, chat_request(emulator, messages))
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(raw) == {"content": "Echo: describe\nthis, ünïcode [1 image]"}


async def test_image_url_is_deterministic_and_serves_a_png(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(http, image_request(emulator, "a lighthouse", "16:9"))
    _, _, again = await post(http, image_request(emulator, "a lighthouse", "16:9"))
    name = hashlib.sha256(b"a lighthouse16:9").hexdigest()[:16]
    url = json.loads(raw)["url"]
    assert url == f"{emulator.base_url}/images/{name}-1024x576.png"
    assert json.loads(again)["url"] == url
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        png = read_png(await resp.read())
    # A real picture: the size the aspect ratio implies, 8-bit RGB, more than one colour.
    assert (png.width, png.height, png.channels) == (1024, 576, 3)
    assert len({png.pixel(x, y) for x in (0, 511, 1023) for y in (0, 287, 575)}) > 1
    # Image fetches are not API calls: the log holds only the two generations.
    assert [r.endpoint for r in emulator.requests] == ["image", "image"]


async def test_unknown_paths_and_wrong_methods(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(emulator.base_url + _wire.CHAT.path) as resp:
        assert (resp.status, resp.headers["Allow"]) == (405, "POST")
    async with http.get(emulator.base_url + "/api/v2/other") as resp:
        assert resp.status == 404
        assert "no such path" in (await resp.json())["error"]
    async with http.post(emulator.base_url + "/images/abc.png") as resp:
        assert resp.status == 405
    assert emulator.requests == []


async def test_large_request_bodies_are_accepted(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    text = "y" * (3 * 1024 * 1024)  # well above aiohttp's 1 MiB default request limit
    url, headers, body = chat_request(emulator, [{"role": "user", "content": text}])
    # A file-like body: aiohttp warns (ResourceWarning) about sending big bytes directly.
    async with http.post(url, headers=headers, data=io.BytesIO(body)) as resp:
        status, raw = resp.status, await resp.read()
    assert status == 200
    assert json.loads(raw)["content"] == "Echo: " + text


async def test_chat_responder_str_dict_errors_and_reset(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    seen: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []

    def shout(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        seen.append((messages, body))
        return messages[-1]["content"].upper()

    emulator.set_chat_responder(shout)
    assert json.loads((await post(http, chat_request(emulator)))[2]) == {"content": "HELLO"}
    assert seen[0][0] == USER
    assert seen[0][1]["project_id"] == emulator.requests[0].body["project_id"]

    emulator.set_chat_responder(lambda messages, body: {"content": None, "extra": 1})
    assert json.loads((await post(http, chat_request(emulator)))[2]) == {
        "content": None,
        "extra": 1,
    }

    def broken(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        raise KeyError("oops")

    emulator.set_chat_responder(broken)
    status, _, raw = await post(http, chat_request(emulator))
    assert status == 500
    assert json.loads(raw)["error"] == "chat responder raised KeyError: 'oops'"
    assert emulator.requests[-1].status == 500

    emulator.set_chat_responder(lambda messages, body: 42)  # type: ignore[arg-type,return-value]
    status, _, raw = await post(http, chat_request(emulator))
    assert (status, json.loads(raw)["error"]) == (
        500,
        "chat responder returned int, expected str or dict",
    )

    emulator.set_chat_responder(None)
    assert json.loads((await post(http, chat_request(emulator)))[2]) == {"content": "Echo: hello"}


async def test_chat_responder_from_constructor_and_type_check() -> None:
    with pytest.raises(TypeError, match="chat_responder must be callable"):
        WebsimEmulator(chat_responder="hi")  # type: ignore[arg-type]
    async with WebsimEmulator(chat_responder=lambda m, b: "fixed") as emu:
        async with WebsimClient(base_url=emu.base_url, max_retries=0) as client:
            assert (await client.achat(USER)).text == "fixed"
        with pytest.raises(TypeError, match="chat_responder must be callable"):
            emu.set_chat_responder(3)  # type: ignore[arg-type]
