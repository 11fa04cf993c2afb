"""Requests to the emulator built by hand, for tests that must send what the client would not.

The ``http`` session fixture that sends them is in this package's ``conftest.py``.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from langchain_websim import _requests, _wire
from langchain_websim.testing import WebsimEmulator


def _chat_body(messages: Any, project_id: str, json_mode: bool = False) -> bytes:
    return _requests.ChatRequest(messages, project_id, json_mode).body()


def _image_body(prompt: str, aspect_ratio: str, project_id: str) -> bytes:
    return _requests.ImageRequest(prompt, aspect_ratio, project_id).body()


USER = [{"role": "user", "content": "hello"}]

Request = tuple[str, dict[str, str], bytes]


def chat_request(emu: WebsimEmulator, messages: Any = USER, **extra: Any) -> Request:
    payload = {"project_id": _requests.new_project_id(_wire.CHAT), "messages": messages, **extra}
    headers = _wire.build_headers(emu.base_url, _wire.CHAT, {})
    return emu.base_url + _wire.CHAT.path, headers, json.dumps(payload).encode()


def image_request(
    emu: WebsimEmulator, prompt: str = "a lighthouse", aspect_ratio: str = "1:1"
) -> Request:
    body = _image_body(prompt, aspect_ratio, _requests.new_project_id(_wire.IMAGE))
    headers = _wire.build_headers(emu.base_url, _wire.IMAGE, {})
    return emu.base_url + _wire.IMAGE.path, headers, body


async def post(
    http: aiohttp.ClientSession, request: Request
) -> tuple[int, aiohttp.typedefs.LooseHeaders, bytes]:
    url, headers, body = request
    async with http.post(url, headers=headers, data=body) as resp:
        return resp.status, resp.headers, await resp.read()
