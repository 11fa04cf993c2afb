"""Downloading and saving images over loopback: the 20 MiB cap, redirects, timeouts, and the
files ``WebsimImageResponse.save``/``asave`` write."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from langchain_websim import (
    WebsimClient,
    WebsimConnectionError,
    WebsimResponseError,
    WebsimTimeoutError,
)
from langchain_websim._download import MAX_DOWNLOAD_BYTES
from langchain_websim.testing import WebsimEmulator
from tests.png import read_png

CHUNK = b"\x00" * (64 * 1024)


@dataclass
class FileServer:
    """A loopback server with the answers an image host might give."""

    base_url: str = ""
    hits: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    finished: dict[str, asyncio.Event] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)


async def _stream(
    request: web.Request, server: FileServer, total: int, declared: bool
) -> web.StreamResponse:
    name = request.path
    resp = web.StreamResponse(headers={"Content-Type": "image/png"})
    if declared:
        resp.content_length = total
    await resp.prepare(request)
    server.written[name] = 0
    try:
        while server.written[name] < total:
            piece = CHUNK[: total - server.written[name]]
            await resp.write(piece)
            server.written[name] += len(piece)
            if declared:  # one chunk, then hold the rest back: a client reading on would wait
                await server.release.wait()
        await resp.write_eof()
    except ConnectionError:
        pass  # the client stopped reading: the point of the cap
    finally:
        server.finished.setdefault(name, asyncio.Event()).set()
    return resp


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    server = FileServer()
    png = b"\x89PNG\r\n\x1a\nnot-really-a-png"

    def counted(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def wrapper(request: web.Request) -> Any:
            server.hits[request.path] = server.hits.get(request.path, 0) + 1
            return await handler(request)

        return wrapper

    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        target = "/png" if left == 0 else f"/hop/{left - 1}"
        raise web.HTTPFound(target)

    async def slow(request: web.Request) -> web.Response:
        await server.release.wait()
        return web.Response(body=png)

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    def streaming(total: int, declared: bool) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await _stream(request, server, total, declared)

        return handler

    app = web.Application()
    app.router.add_get("/png", counted(image))
    app.router.add_get("/hop/{n}", counted(hop))
    app.router.add_get("/slow", counted(slow))
    app.router.add_get("/over-cap", streaming(64 * 1024 * 1024, False))
    app.router.add_get("/at-cap", streaming(MAX_DOWNLOAD_BYTES, False))
    app.router.add_get("/declared-over", streaming(30 * 1024 * 1024, True))
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"http://{host}:{port}"
    yield server
    server.release.set()
    await runner.cleanup()


async def test_a_body_over_the_cap_is_not_read_past_it(
    files: FileServer, make_client: Callable[..., WebsimClient]
) -> None:
    client = make_client(base_url=files.base_url)
    with pytest.raises(WebsimResponseError, match="larger than the 20 MiB download cap") as caught:
        await client.adownload(files.base_url + "/over-cap")
    assert caught.value.endpoint == "download"
    await files.finished.setdefault("/over-cap", asyncio.Event()).wait()
    # The server was cut off long before the end of its 64 MiB.
    assert files.written["/over-cap"] < 48 * 1024 * 1024


async def test_a_body_exactly_at_the_cap_is_read(
    files: FileServer, make_client: Callable[..., WebsimClient]
) -> None:
    client = make_client(base_url=files.base_url)
    data = await client.adownload(files.base_url + "/at-cap")
    assert len(data) == MAX_DOWNLOAD_BYTES


async def test_a_declared_length_over_the_cap_is_refused_without_reading(
    files: FileServer, make_client: Callable[..., WebsimClient]
) -> None:
    # The server sends one chunk and holds the rest until the test ends: a client that read
    # on would wait for it and time out instead of refusing.
    client = make_client(base_url=files.base_url, timeout=30)
    with pytest.raises(WebsimResponseError, match="download cap"):
        await client.adownload(files.base_url + "/declared-over")


async def test_redirects_are_followed_up_to_five(
    files: FileServer, make_client: Callable[..., WebsimClient]
) -> None:
    client = make_client(base_url=files.base_url)
    assert (await client.adownload(files.base_url + "/hop/4")).startswith(b"\x89PNG")
    with pytest.raises(WebsimConnectionError, match="more than 5 redirects") as caught:
        await client.adownload(files.base_url + "/hop/9")
    assert caught.value.reason == "redirects"


async def test_a_slow_download_times_out(
    files: FileServer, make_client: Callable[..., WebsimClient]
) -> None:
    client = make_client(base_url=files.base_url, timeout=0.3)
    with pytest.raises(WebsimTimeoutError, match=r"no complete answer within 0\.3 s"):
        await client.adownload(files.base_url + "/slow")
    assert files.hits["/slow"] == 1  # downloads are not retried


# --------------------------------------------------------------------------- saving


async def test_save_and_asave_write_the_picture(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    client = make_client()
    image = await client.agenerate_image("a fox", width=320, height=200, transparent=True)
    saved = await image.asave(tmp_path / "fox.png")
    assert saved == tmp_path / "fox.png"
    png = read_png(saved.read_bytes())
    assert (png.width, png.height, png.channels) == (320, 200, 4)
    assert len(client._sessions) == 1  # the same pooled session as the API call
    # The sync twin, replacing an existing file; no temporary file is left beside it.
    (tmp_path / "again.png").write_bytes(b"old")
    sync_saved = await asyncio.to_thread(image.save, str(tmp_path / "again.png"))
    assert sync_saved.read_bytes() == saved.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["again.png", "fox.png"]


@pytest.mark.parametrize(
    ("where", "message"),
    [(".", "is a directory"), ("missing/fox.png", "does not exist"), ("", "path is empty")],
)
async def test_a_bad_path_is_refused_before_downloading(
    files: FileServer,
    make_client: Callable[..., WebsimClient],
    tmp_path: Path,
    where: str,
    message: str,
) -> None:
    client = make_client(base_url=files.base_url)
    image = _image_from(client, files.base_url + "/png")
    path = str(tmp_path / where) if where else ""
    with pytest.raises(ValueError, match=message):
        await image.asave(path)
    assert files.hits.get("/png") is None


async def test_a_failed_download_leaves_no_file(
    files: FileServer, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    client = make_client(base_url=files.base_url)
    image = _image_from(client, files.base_url + "/over-cap")
    with pytest.raises(WebsimResponseError):
        await image.asave(tmp_path / "big.png")
    assert os.listdir(tmp_path) == []


def test_save_after_the_client_is_closed_uses_the_shared_client(
    emulator: WebsimEmulator, tmp_path: Path
) -> None:
    with WebsimClient(emulator.base_url, timeout=7) as client:
        image = client.generate_image("a fox", width=100, height=100)
    assert client.closed
    try:
        path = image.save(tmp_path / "fox.png")
        assert read_png(path.read_bytes()).width == 100
    finally:
        WebsimClient.close_shared(emulator.base_url)
    assert os.access(path, os.R_OK)


def _image_from(client: WebsimClient, url: str) -> Any:
    from langchain_websim import WebsimImageResponse

    return WebsimImageResponse(url, "x", "1:1", "abcdefg_0123456789ab", 1, 0.0, client=client)
