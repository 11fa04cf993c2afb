"""JSON nested 100,000 deep: the emulator answers 400 with ``violations`` (and logs the
request), the client refuses such a content part with ``ValueError`` before sending --
never a ``RecursionError`` or a 500."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient, _requests, _wire
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.emulator_http import chat_request, post

DEPTH = 100_000


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_value(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    "payload",
    [
        # The whole body, nested far past Python's parser.
        '{"project_id": "%s", "messages": ' + _nested(DEPTH) + "}",
        # A part's extra field, deep but parseable: refused by the depth limit.
        '{"project_id": "%s", "messages": [{"role": "user", "content": [{"type": "text", '
        '"text": "hi", "extra": ' + _nested(200) + "}]}]}",
    ],
    ids=["100000-deep-body", "200-deep-part"],
)
async def test_a_deeply_nested_body_is_a_400_with_violations_and_is_logged(
    emulator: WebsimEmulator, http: aiohttp.ClientSession, payload: str
) -> None:
    url, headers, _ = chat_request(emulator)
    body = (payload % _requests.new_project_id(_wire.CHAT)).encode()
    status, _, raw = await post(http, (url, headers, body))
    assert status == 400
    violations = json.loads(raw)["violations"]
    assert any("deep" in v for v in violations), violations
    (recorded,) = emulator.requests
    assert recorded.status == 400
    assert recorded.violations == violations
    # The emulator still answers after it.
    client = WebsimClient(emulator.base_url)
    try:
        assert (await client.achat([{"role": "user", "content": "ping"}])).text
    finally:
        await client.aclose()


@pytest.mark.parametrize("where", ["text part", "image part", "not a dict"])
async def test_the_client_refuses_a_100000_deep_content_part_with_a_value_error(
    emulator: WebsimEmulator, where: str
) -> None:
    deep = _deep_value(DEPTH)
    part: Any
    if where == "text part":
        part = {"type": "text", "text": "hi", "extra": deep}
    elif where == "image part":
        part = {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "meta": deep}}
    else:
        part = [deep]
    client = WebsimClient(emulator.base_url)
    try:
        with pytest.raises(ValueError, match="content part 0"):
            await client.achat([{"role": "user", "content": [part]}])
        with pytest.raises(ValueError, match="content part 0"):
            client.chat([{"role": "user", "content": [part]}])
    finally:
        await client.aclose()
    assert emulator.requests == []
