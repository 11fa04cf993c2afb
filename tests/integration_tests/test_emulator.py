"""The local Websim emulator, exercised over real loopback sockets.

Scripted statuses and malformed requests are sent with plain aiohttp (the client would
retry or refuse them); contract acceptance goes through ``WebsimClient``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import json
import logging
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient, _wire
from langchain_websim.errors import WebsimAPIError, WebsimConnectionError, WebsimError
from langchain_websim.testing import RecordedRequest, WebsimEmulator
from langchain_websim.testing.__main__ import main as emulator_main

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def chat_request(
    emu: WebsimEmulator, messages: Any = USER, **extra: Any
) -> tuple[str, dict[str, str], bytes]:
    payload = {"project_id": _wire.new_project_id(_wire.CHAT), "messages": messages, **extra}
    headers = _wire.build_headers(emu.base_url, _wire.CHAT, {})
    return emu.base_url + _wire.CHAT.path, headers, json.dumps(payload).encode()


def image_request(
    emu: WebsimEmulator, prompt: str = "a lighthouse", aspect_ratio: str = "1:1"
) -> tuple[str, dict[str, str], bytes]:
    body = _wire.image_body(prompt, aspect_ratio, _wire.new_project_id(_wire.IMAGE))
    headers = _wire.build_headers(emu.base_url, _wire.IMAGE, {})
    return emu.base_url + _wire.IMAGE.path, headers, body


async def post(
    http: aiohttp.ClientSession, request: tuple[str, dict[str, str], bytes]
) -> tuple[int, aiohttp.typedefs.LooseHeaders, bytes]:
    url, headers, body = request
    async with http.post(url, headers=headers, data=body) as resp:
        return resp.status, resp.headers, await resp.read()


# --------------------------------------------------------------------------- contract


async def test_client_requests_pass_the_contract(emulator: WebsimEmulator) -> None:
    async with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
        chat = await client.achat([{"role": "system", "content": "be brief"}, *USER])
        json_chat = await client.achat(USER, json_mode=True)
        image = await client.agenerate_image("a lighthouse", aspect_ratio="16:9")
    assert chat.text == json_chat.text == "Echo: hello"
    assert image.url.startswith(emulator.base_url + "/images/")
    assert [(r.endpoint, r.status, r.violations) for r in emulator.requests] == [
        ("chat", 200, []),
        ("chat", 200, []),
        ("image", 200, []),
    ]
    assert emulator.requests[1].body["json"] is True


def test_sync_client_requests_pass_the_contract(emulator: WebsimEmulator) -> None:
    with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
        assert client.chat(USER).text == "Echo: hello"
        client.generate_image("a fox")
    assert [r.violations for r in emulator.requests] == [[], []]


def test_binds_loopback_by_default(emulator: WebsimEmulator) -> None:
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert int(emulator.base_url.rsplit(":", 1)[1]) > 0


def _break_header(name: str, value: str | None) -> Callable[[dict[str, str]], None]:
    def mutate(headers: dict[str, str]) -> None:
        if value is None:
            del headers[name]
        else:
            headers[name] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_break_header("content-type", "application/json"), "content-type is 'application/json'"),
        (_break_header("content-type", None), "missing header content-type"),
        (_break_header("accept", None), "missing header accept"),
        (_break_header("accept-language", None), "missing header accept-language"),
        (_break_header("user-agent", None), "missing header user-agent"),
        (_break_header("referer", None), "missing header referer"),
        (_break_header("websim-flags", None), "missing header websim-flags"),
        (_break_header("websim-flags", "1"), "websim-flags must be empty"),
        (_break_header("origin", "https://websim.ai"), "origin is 'https://websim.ai'"),
        (_break_header("referer", "https://websim.ai/@x/y"), "does not start with"),
    ],
)
async def test_header_violations_get_400(
    emulator: WebsimEmulator,
    http: aiohttp.ClientSession,
    mutate: Callable[[dict[str, str]], None],
    expected: str,
) -> None:
    url, headers, body = chat_request(emulator)
    mutate(headers)
    # aiohttp adds default headers of its own where some are missing; keep them out.
    skip = {"Accept", "User-Agent", "Content-Type"}
    async with http.post(url, headers=headers, data=body, skip_auto_headers=skip) as resp:
        status, error = resp.status, await resp.json(content_type=None)
    assert status == 400
    assert error["error"] == "the request breaks the Websim contract"
    assert any(expected in v for v in error["violations"]), error["violations"]
    [recorded] = emulator.requests
    assert recorded.status == 400
    assert recorded.violations == error["violations"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "the body is empty"),
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"[1, 2]", "the body is a JSON list"),
        (json.dumps({"messages": USER}).encode(), "missing field 'project_id'"),
        ({"project_id": "mine", "messages": USER}, "does not match the chat format"),
        ({"project_id": 7, "messages": USER}, "must be a non-empty string"),
        ({"messages": []}, "'messages' must be a non-empty list"),
        ({"messages": "hi"}, "'messages' must be a non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role 'tool'"),
        ({"messages": [{"role": "user", "content": 5}]}, "content must be a string or a list"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "string 'type'"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "without a string"),
        ({"messages": ["hi"]}, "message 0 must be an object"),
        ({"messages": [{"role": "user", "content": "x", "name": "n"}]}, "field(s) 'name'"),
        ({"messages": USER, "json": False}, "'json' may only be true"),
        ({"messages": USER, "model": "gemini-1.5-pro"}, "unexpected field(s) 'model'"),
    ],
)
async def test_chat_body_violations_get_400(
    emulator: WebsimEmulator, http: aiohttp.ClientSession, payload: Any, expected: str
) -> None:
    url, headers, _ = chat_request(emulator)
    if isinstance(payload, dict):
        payload = json.dumps({"project_id": _wire.new_project_id(_wire.CHAT), **payload}).encode()
    status, _, raw = await post(http, (url, headers, payload))
    violations = json.loads(raw)["violations"]
    assert status == 400
    assert any(expected in v for v in violations), violations


@pytest.mark.parametrize(
    ("prompt", "aspect_ratio", "expected"),
    [
        ("  ", "1:1", "'prompt' must be a non-empty string"),
        (None, "1:1", "'prompt' must be a non-empty string"),
        ("a cat", "square", "aspect_ratio must look like 'W:H'"),
        ("a cat", 1, "aspect_ratio must be a string"),
        ("a cat", None, "missing field 'aspect_ratio'"),
        ("a cat", " 1:1", "has surrounding white space"),
    ],
)
async def test_image_body_violations_get_400(
    emulator: WebsimEmulator,
    http: aiohttp.ClientSession,
    prompt: Any,
    aspect_ratio: Any,
    expected: str,
) -> None:
    url, headers, _ = image_request(emulator)
    payload: dict[str, Any] = {"project_id": _wire.new_project_id(_wire.IMAGE), "prompt": prompt}
    if aspect_ratio is not None:
        payload["aspect_ratio"] = aspect_ratio
    status, _, raw = await post(http, (url, headers, json.dumps(payload).encode()))
    violations = json.loads(raw)["violations"]
    assert status == 400
    assert any(expected in v for v in violations), violations


async def test_image_project_id_must_use_the_image_format(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    url, headers, _ = image_request(emulator)
    chat_id = _wire.new_project_id(_wire.CHAT)
    body = _wire.image_body("a cat", "1:1", chat_id)
    status, _, raw = await post(http, (url, headers, body))
    assert status == 400
    assert json.loads(raw)["violations"] == [
        f"'project_id' {chat_id!r} does not match the image format "
        f"{_wire.IMAGE.project_id_re.pattern}"
    ]


async def test_own_project_ids_are_accepted_when_format_check_is_off() -> None:
    async with WebsimEmulator(require_project_id_format=False) as emu:
        async with WebsimClient(base_url=emu.base_url, max_retries=0) as client:
            reply = await client.achat(USER, project_id="my-app-session-1")
        async with aiohttp.ClientSession() as http:
            url, headers, _ = chat_request(emu)
            status, _, raw = await post(http, (url, headers, b'{"project_id": "", "messages": []}'))
    assert reply.text == "Echo: hello"
    assert emu.requests[0].violations == []
    assert status == 400
    assert "'project_id' must be a non-empty string" in json.loads(raw)["violations"][0]


async def test_lenient_mode_records_violations_but_answers() -> None:
    async with WebsimEmulator(strict=False) as emu, aiohttp.ClientSession() as http:
        url, headers, body = chat_request(emu)
        headers["content-type"] = "application/json"
        status, _, raw = await post(http, (url, headers, body))
    assert (status, json.loads(raw)) == (200, {"content": "Echo: hello"})
    assert emu.requests[0].status == 200
    assert emu.requests[0].violations == [
        "content-type is 'application/json', expected 'text/plain;charset=UTF-8' "
        "(the body is JSON text sent as text/plain)"
    ]


@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        (b"[1]", "Echo: "),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), "Echo: "),
        (json.dumps({"messages": "hi"}).encode(), "Echo: "),
        (json.dumps({"messages": [{"role": "system", "content": "s"}]}).encode(), "Echo: "),
    ],
)
async def test_lenient_mode_answers_even_unusable_bodies(payload: bytes, answer: str) -> None:
    async with WebsimEmulator(strict=False) as emu, aiohttp.ClientSession() as http:
        url, headers, _ = chat_request(emu)
        status, _, raw = await post(http, (url, headers, payload))
    assert (status, json.loads(raw)) == (200, {"content": answer})
    assert emu.requests[0].violations


async def _raw_http(emu: WebsimEmulator, request: bytes) -> bytes:
    host, port = emu.base_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_header_name_with_semicolon_gets_400_with_json_body(
    emulator: WebsimEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    # The original client's bug.  aiohttp's own client refuses to send this header name, and
    # aiohttp's server parser refuses it before any handler runs: send it over a raw socket.
    _, headers, body = chat_request(emulator)
    del headers["websim-flags"]
    lines = [f"POST {_wire.CHAT.path} HTTP/1.1", f"Host: {emulator.base_url[7:]}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["websim-flags;: ", f"Content-Length: {len(body)}", "Connection: close"]
    answer = await _raw_http(emulator, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"400"
    assert b"content-type: application/json" in head.lower()
    error = json.loads(payload)
    assert error["error"] == "malformed HTTP request"
    assert "websim-flags;" in error["violations"][0]
    # An expected test input, so no error-level traceback in the test's log.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_violation_wins_over_a_queued_script(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.enqueue("chat", status=503)
    url, headers, body = chat_request(emulator)
    status, _, _ = await post(http, (url, {**headers, "origin": "http://evil"}, body))
    assert status == 400
    # The script was not used up by the refused request.
    assert (await post(http, chat_request(emulator)))[0] == 503


# --------------------------------------------------------------------------- default answers


async def test_chat_echoes_last_user_message_joining_text_parts(
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
    assert json.loads(raw) == {"content": "Echo: describe\nthis, ünïcode"}


async def test_image_url_is_deterministic_and_serves_a_png(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    _, _, raw = await post(http, image_request(emulator, "a lighthouse", "16:9"))
    _, _, again = await post(http, image_request(emulator, "a lighthouse", "16:9"))
    name = hashlib.sha256(b"a lighthouse16:9").hexdigest()[:16]
    url = json.loads(raw)["url"]
    assert url == f"{emulator.base_url}/images/{name}.png"
    assert json.loads(again)["url"] == url
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "image/png"
        png = await resp.read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # Walk the chunks: each CRC must match, IHDR says 1x1, and IEND ends the file.
    pos, kinds = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(
            kind + data
        )
        kinds.append(kind)
        if kind == b"IHDR":
            assert struct.unpack(">II", data[:8]) == (1, 1)
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
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


# --------------------------------------------------------------------------- scripts


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


# --------------------------------------------------------------------------- request log


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


# --------------------------------------------------------------------------- lifecycle


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


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_command_line_serves_until_signalled(stop_signal: signal.Signals) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_websim.testing", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url == f"http://127.0.0.1:{port}"
        with WebsimClient(base_url=base_url, max_retries=0) as client:
            assert client.chat(USER).text == "Echo: hello"
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert (out, err) == ("", "")


def test_command_line_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        emulator_main(["--port", "70000"])
    assert exited.value.code == 2
    assert "port must be 0 (any free port) or 1-65535" in capsys.readouterr().err


def test_command_line_reports_a_busy_port(
    emulator: WebsimEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    port = emulator.base_url.rsplit(":", 1)[1]
    assert emulator_main(["--port", port]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: cannot serve on 127.0.0.1:{port}")


# --------------------------------------------------------------------------- the docs page

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"


def test_docs_page_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 9
    namespace: dict[str, Any] = {"__name__": "emulator_docs"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} python block {number}", "exec"), namespace)
    # The pytest example defines a test; run it the way pytest would, with a fresh emulator.
    with WebsimEmulator() as emu:
        namespace["test_my_app_survives_a_rate_limit"](emu)
    out = capsys.readouterr().out
    assert "/images/" in out
    assert "timed out, as scripted" in out
    assert re.search(r"\d+ faults retried in \d+ requests", out)
    assert "WebsimResponseError" in out
    # Every option of enqueue() is documented in the options table.
    for option in inspect.signature(WebsimEmulator.enqueue).parameters:
        if option not in ("self", "endpoint"):
            assert f"| `{option}` |" in text, option
