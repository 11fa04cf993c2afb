"""The emulator's contract checks, over real loopback sockets.

Malformed requests are sent with plain aiohttp (the client would refuse to build them);
contract acceptance goes through ``WebsimClient``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient, _requests, _wire
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.emulator_http import USER, chat_request, image_request, post


def _chat_body(messages: Any, project_id: str, json_mode: bool = False) -> bytes:
    return _requests.ChatRequest(messages, project_id, json_mode).body()


def _image_body(prompt: str, aspect_ratio: str, project_id: str) -> bytes:
    return _requests.ImageRequest(prompt, aspect_ratio, project_id).body()


async def test_client_requests_pass_the_contract(emulator: WebsimEmulator) -> None:
    async with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
        chat = await client.achat([{"role": "system", "content": "be brief"}, *USER])
        json_chat = await client.achat(USER, json_mode=True)
        image = await client.agenerate_image("a lighthouse", aspect_ratio="16:9")
    assert chat.text == "Echo: hello"
    assert json.loads(json_chat.text) == {"echo": "hello"}  # JSON mode answers JSON
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
        payload = json.dumps(
            {"project_id": _requests.new_project_id(_wire.CHAT), **payload}
        ).encode()
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
    payload: dict[str, Any] = {
        "project_id": _requests.new_project_id(_wire.IMAGE),
        "prompt": prompt,
    }
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
    chat_id = _requests.new_project_id(_wire.CHAT)
    body = _image_body("a cat", "1:1", chat_id)
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
