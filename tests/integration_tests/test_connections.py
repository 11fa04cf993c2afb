"""Connection failures said in words, and HTTPS with a private CA (real sockets, loopback)."""

from __future__ import annotations

import pickle
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from langchain_websim import ChatWebsim, WebsimClient, WebsimConnectionError, WebsimImageTool

MESSAGES = [{"role": "user", "content": "hi"}]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_connection_names_host_port_and_what_happened() -> None:
    port = _closed_port()
    async with WebsimClient(f"http://127.0.0.1:{port}", max_retries=0) as client:
        with pytest.raises(WebsimConnectionError) as info:
            await client.achat(MESSAGES)
    err = info.value
    assert err.reason == "refused"
    assert f"127.0.0.1:{port} refused the connection" in str(err)
    assert "ClientConnectorError" not in str(err) and "ssl:default" not in str(err)
    assert isinstance(err.__cause__, aiohttp.ClientConnectorError)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[str]:
    """A Websim chat route over HTTPS, its certificate signed by a private CA."""

    async def chat(request: web.Request) -> web.Response:
        return web.json_response({"content": "over TLS"})

    app = web.Application()
    app.router.add_post("/api/v1/inference/run_chat_completion", chat)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_an_untrusted_certificate_is_a_tls_error_in_words(tls_server: str) -> None:
    async with WebsimClient(tls_server, max_retries=2) as client:
        with pytest.raises(WebsimConnectionError) as info:
            await client.achat(MESSAGES)
    err = info.value
    assert err.reason == "tls" and err.attempts == 1  # a certificate does not heal on retry
    assert "TLS certificate of 127.0.0.1" in str(err) and "could not be verified" in str(err)
    assert isinstance(err.__cause__, aiohttp.ClientConnectorCertificateError)


async def test_the_tool_tells_the_agent_a_certificate_failed_not_that_it_could_not_reach(
    tls_server: str,
) -> None:
    tool = WebsimImageTool(base_url=tls_server, max_retries=0)
    message = await tool.ainvoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"prompt": "a fox"}}
    )
    assert message.status == "error"
    assert "could not verify the image service's TLS certificate" in message.content
    assert "could not reach" not in message.content
    await tool._websim_client().aclose()


async def test_a_ca_bundle_trusts_a_private_ca_and_survives_pickling(
    tls_server: str, ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    llm = ChatWebsim(base_url=tls_server, ca_bundle=str(bundle), max_retries=0)
    copy = pickle.loads(pickle.dumps(llm))
    try:
        assert (await copy.ainvoke("hi")).content == "over TLS"
    finally:
        await copy._websim_client().aclose()
