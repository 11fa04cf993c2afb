"""``WebsimClient.download`` without a network: what it refuses, what it sends, and how each
failure is reported.  The size cap, redirects, timeouts and saving to files run over
loopback in ``tests/integration_tests/test_downloads.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from langchain_websim import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimClient,
    WebsimConnectionError,
    WebsimImageResponse,
    WebsimRateLimitError,
    WebsimResponseError,
)
from langchain_websim._download import image_type, writable_dir, writable_path, write_file

CDN = "https://cdn.websim.test/img/abc.png"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def client() -> Iterator[WebsimClient]:
    # Extra headers are for the API host; a download must not carry them elsewhere.
    with WebsimClient("http://websim.test", headers={"x-api-secret": "s3cret"}) as made:
        yield made


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://cdn.websim.test/a.png", ValueError),
        ("/images/a.png", ValueError),
        ("data:image/png;base64,iVBORw0KGgo=", ValueError),
        ("javascript:alert(1)", ValueError),
        ("https://", ValueError),
        (b"https://cdn.websim.test/a.png", TypeError),
        (None, TypeError),
    ],
)
async def test_only_http_urls_are_downloaded(
    http: aioresponses, client: WebsimClient, url: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"http\(s\) URLs|must be a string"):
        await client.adownload(url)
    with pytest.raises(error):
        client.download(url)
    assert http.requests == {}


async def test_download_returns_the_bytes_and_sends_no_api_headers(
    http: aioresponses, client: WebsimClient
) -> None:
    http.get(CDN, body=PNG, content_type="image/png")
    assert await client.adownload(f"  {CDN} ") == PNG
    ((_, url), (call,)), *_ = http.requests.items()
    assert url == URL(CDN)
    headers = call.kwargs["headers"]
    assert "x-api-secret" not in headers and "origin" not in headers
    assert headers["user-agent"].startswith("Mozilla/5.0")
    assert headers["accept"].startswith("image/")


def test_sync_download(http: aioresponses, client: WebsimClient) -> None:
    http.get(CDN, body=PNG, content_type="image/png")
    assert client.download(CDN) == PNG


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ({"status": 404, "body": "gone"}, WebsimAPIError, "the image is not there"),
        ({"status": 410, "body": ""}, WebsimAPIError, "may have expired"),
        ({"status": 500, "body": "oops"}, WebsimAPIError, "the download failed (HTTP 500"),
        (
            {"status": 429, "body": "slow down", "headers": {"Retry-After": "7"}},
            WebsimRateLimitError,
            "rate limited",
        ),
        (
            {
                "status": 403,
                "body": "<html><title>Just a moment...</title></html>",
                "content_type": "text/html",
            },
            WebsimBlockedError,
            "challenge page",
        ),
        ({"status": 200, "body": b""}, WebsimResponseError, "the answer is empty"),
        (
            {"status": 200, "body": "<!doctype html><p>login</p>", "content_type": "text/html"},
            WebsimResponseError,
            "an HTML page arrived instead of an image",
        ),
    ],
)
async def test_failures_raise_typed_errors_after_one_attempt(
    http: aioresponses,
    client: WebsimClient,
    answer: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    http.get(CDN, **answer)
    with pytest.raises(error) as caught:
        await client.adownload(CDN)
    err = caught.value
    assert message in str(err)
    assert (err.endpoint, err.url, err.attempts) == ("download", CDN, 1)  # type: ignore[attr-defined]
    assert len(http.requests[("GET", URL(CDN))]) == 1  # no retries
    if isinstance(err, WebsimRateLimitError):
        assert err.retry_after == 7


async def test_binary_error_bodies_are_not_quoted(http: aioresponses, client: WebsimClient) -> None:
    http.get(CDN, status=502, body=b"\x89PNG\x00\xff", content_type="image/png")
    with pytest.raises(WebsimAPIError) as caught:
        await client.adownload(CDN)
    assert caught.value.body == ""
    assert caught.value.status_code == 502


async def test_connection_failures_are_said_in_words(
    http: aioresponses, client: WebsimClient
) -> None:
    cause = aiohttp.ServerDisconnectedError()
    http.get(CDN, exception=cause)
    with pytest.raises(WebsimConnectionError) as caught:
        await client.adownload(CDN)
    assert caught.value.reason == "disconnected"
    assert re.search(
        r"download failed: cdn\.websim\.test:443 closed the connection", str(caught.value)
    )
    assert caught.value.__cause__ is cause


async def test_a_closed_client_refuses_to_download(http: aioresponses) -> None:
    client = WebsimClient("http://websim.test")
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.adownload(CDN)


def test_saving_a_hand_made_response_needs_a_client(tmp_path: Any) -> None:
    image = WebsimImageResponse(CDN, "a fox", "1:1", "abcdefg_0123456789ab", 1, 0.0)
    with pytest.raises(ValueError, match="pass client="):
        image.save(tmp_path / "fox.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (PNG, (".png", "image/png")),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 8, (".jpg", "image/jpeg")),
        (b"GIF89a" + b"\x00" * 8, (".gif", "image/gif")),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", (".webp", "image/webp")),
        (b"<svg xmlns=...", None),
        (b"", None),
    ],
)
def test_image_type_by_first_bytes(head: bytes, expected: tuple[str, str] | None) -> None:
    assert image_type(head) == expected


def test_paths_are_checked_before_downloading_and_written_whole(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"cannot write .*: File name too long"):
        writable_path(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        writable_path(42)  # type: ignore[arg-type]
    # A name near the file system's 255-byte limit still gets its partial file beside it.
    long_name = tmp_path / ("y" * 250 + ".png")
    write_file(writable_path(long_name), PNG)
    assert long_name.read_bytes() == PNG
    assert [p.name for p in tmp_path.iterdir()] == [long_name.name]


def test_a_save_directory_is_made_or_refused_in_the_callers_words(tmp_path: Path) -> None:
    made = writable_dir(tmp_path / "a" / "b", "--output-dir")
    assert made.is_dir() and made == tmp_path / "a" / "b"
    assert writable_dir(made, "--output-dir") == made  # an existing one is fine
    with pytest.raises(ValueError, match="--output-dir is empty"):
        writable_dir("  ", "--output-dir")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"cannot use images directory .*file"):
        writable_dir(tmp_path / "file", "images directory")
