"""The local Websim emulator, exercised over real loopback sockets."""

from __future__ import annotations

from langchain_websim import WebsimClient
from langchain_websim.testing import WebsimEmulator


async def test_client_requests_pass_the_contract(emulator: WebsimEmulator) -> None:
    async with WebsimClient(base_url=emulator.base_url, max_retries=0) as client:
        chat = await client.achat([{"role": "user", "content": "hello"}])
        image = await client.agenerate_image("a lighthouse", aspect_ratio="16:9")
    assert chat.text == "Echo: hello"
    assert image.url.startswith(emulator.base_url + "/images/")
    assert [(r.endpoint, r.status, r.violations) for r in emulator.requests] == [
        ("chat", 200, []),
        ("image", 200, []),
    ]
