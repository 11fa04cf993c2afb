"""Fetching a generated image, and writing it to a file.

A download is not an API call, so it does not go through the retry loop: one streamed GET
(a missing image stays missing, and a retry would only repeat a 20 MiB read), redirects
followed (image hosts hand out CDN links), and none of the API's headers -- a caller's extra
headers are meant for the API host, not for whichever host serves the image.  Failures raise
the same typed errors as API calls, with ``endpoint="download"``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import hdrs

from langchain_websim import _wire
from langchain_websim._retry import parse_retry_after_header
from langchain_websim._transport import HttpAnswer, answer_error, client_closed, failure_error
from langchain_websim.errors import WebsimAPIError, WebsimConnectionError, WebsimResponseError

__all__ = [
    "MAX_DOWNLOAD_BYTES",
    "check_url",
    "fetch",
    "image_type",
    "writable_dir",
    "writable_path",
    "write_file",
]

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
"""The largest file ``WebsimClient.download`` reads; a 2048x2048 PNG is well below it."""
MAX_REDIRECTS = 5
ENDPOINT = "download"

_HEADERS = {"accept": "image/*,*/*;q=0.8", "user-agent": _wire.USER_AGENT}
_READ_CHUNK = 64 * 1024
_ERROR_HEAD = 4096  # enough of an error page to quote it and to spot a challenge page


def check_url(url: Any) -> str:
    """An absolute http(s) URL, stripped; anything else is refused before a request."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__}")
    value = url.strip()
    if not _wire.is_absolute_http_url(value):
        raise ValueError(
            f"only absolute http(s) URLs can be downloaded, got {_wire.excerpt(repr(url), 80)}"
        )
    return value


async def fetch(
    session: aiohttp.ClientSession, url: str, *, proxy: str | None, session_timeout: float
) -> bytes:
    """GET ``url`` and return the body: at most ``MAX_DOWNLOAD_BYTES``, never empty or HTML.

    ``session_timeout`` is the session's own limit (it is enforced there), for the message.
    """
    try:
        # aiohttp refuses the redirect that reaches max_redirects, so one more lets
        # MAX_REDIRECTS of them through.
        async with session.get(
            url, headers=_HEADERS, proxy=proxy, max_redirects=MAX_REDIRECTS + 1
        ) as resp:
            content_type = resp.headers.get(hdrs.CONTENT_TYPE, "")
            if not 200 <= resp.status < 300:
                raise _status_error(resp, url, await resp.content.read(_ERROR_HEAD))
            body = await _read_capped(resp, url)
    except aiohttp.TooManyRedirects as exc:
        words = f"download failed: more than {MAX_REDIRECTS} redirects"
        raise WebsimConnectionError(words, url=url, endpoint=ENDPOINT, reason="redirects") from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        if session.closed:  # the client's own close() cut it: not the server's doing
            raise client_closed() from None
        raise failure_error(
            ENDPOINT, url, exc, timeout=session_timeout, proxy=proxy, failed="download failed"
        ) from exc
    if not body:
        raise _unusable("the answer is empty: there is no image", resp.status, url, content_type)
    if _wire.looks_like_html(content_type, body):
        problem = "an HTML page arrived instead of an image"
        raise _unusable(problem, resp.status, url, content_type, _wire.excerpt(body[:_ERROR_HEAD]))
    return body


async def _read_capped(resp: aiohttp.ClientResponse, url: str) -> bytes:
    # Without Content-Encoding, Content-Length is the size that would be read: refuse early.
    declared = resp.content_length
    if (
        declared is not None
        and declared > MAX_DOWNLOAD_BYTES
        and not resp.headers.get(hdrs.CONTENT_ENCODING)
    ):
        raise _too_large(resp, url)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > MAX_DOWNLOAD_BYTES:
            # The traceback keeps this frame alive for a while: drop the 20 MiB read so far.
            chunks.clear()
            raise _too_large(resp, url)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(resp: aiohttp.ClientResponse, url: str) -> WebsimResponseError:
    cap = MAX_DOWNLOAD_BYTES // (1024 * 1024)
    return _unusable(
        f"the file is larger than the {cap} MiB download cap; it was not read past it",
        resp.status,
        url,
        resp.headers.get(hdrs.CONTENT_TYPE, ""),
    )


def _unusable(
    problem: str, status: int, url: str, content_type: str, body: str = ""
) -> WebsimResponseError:
    return WebsimResponseError(
        problem,
        endpoint=ENDPOINT,
        url=url,
        status_code=status,
        content_type=content_type,
        body=body,
    )


def _status_error(resp: aiohttp.ClientResponse, url: str, head: bytes) -> WebsimAPIError:
    content_type = resp.headers.get(hdrs.CONTENT_TYPE, "")
    if resp.status in (404, 410):
        problem = (
            "the image is not there: it may have expired, or the server that made it has "
            "stopped (an emulator's images live only as long as the emulator)"
        )
    else:
        # The status itself is in the message's "(HTTP ...)".
        problem = "the download failed"
    return answer_error(
        ENDPOINT,
        url,
        HttpAnswer(resp.status, content_type, resp.headers, head),
        problem,
        retry_after=parse_retry_after_header(resp.headers),
        # An image or binary error body quoted as text would only be noise.
        quote_body=any(kind in content_type for kind in ("text", "json", "xml", "html")),
    )


# ---------------------------------------------------------------------- files

# The formats image services answer with, by their first bytes.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ".png", "image/png"),
    (b"\xff\xd8\xff", ".jpg", "image/jpeg"),
    (b"GIF87a", ".gif", "image/gif"),
    (b"GIF89a", ".gif", "image/gif"),
)


class ImageType(NamedTuple):
    """An image format: the file name suffix and the media type."""

    suffix: str
    media_type: str


def image_type(data: bytes) -> ImageType | None:
    """The format of a PNG, JPEG, GIF or WebP file; ``None`` for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageType(".webp", "image/webp")
    for magic, suffix, media_type in _SIGNATURES:
        if data.startswith(magic):
            return ImageType(suffix, media_type)
    return None


def writable_path(path: str | os.PathLike[str]) -> Path:
    """Check where a file will go before anything is downloaded; return it as a ``Path``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if not str(path).strip():
        raise ValueError("path is empty; give a file name such as 'image.png'")
    target = Path(path).expanduser()
    try:
        is_dir, parent_is_dir = target.is_dir(), target.parent.is_dir()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ValueError(f"cannot write {target}: {exc.strerror or exc}") from None
    if is_dir:
        raise ValueError(
            f"{target} is a directory; give a file name such as {target / 'image.png'}"
        )
    if not parent_is_dir:
        raise ValueError(f"cannot write {target}: the directory {target.parent} does not exist")
    return target


def writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """A directory to save files in, made (with its parents) before anything is downloaded;
    ``what`` names it in errors (``--output-dir``, ``images directory``)."""
    if not str(path).strip():
        raise ValueError(f"{what} is empty; give a directory such as 'images'")
    target = Path(path).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot use {what} {path}: {exc.strerror or exc}") from None
    return target


def write_file(target: Path, data: bytes) -> None:
    """Write the whole file or nothing: a failed write leaves no half image under the name."""
    # Shortened, so a name near the file system's limit still gets a partial file beside it.
    partial = target.with_name(f".{target.name[:100]}.{secrets.token_hex(4)}.part")
    # 0o666 less the umask, as for any file the user creates (a temp file would be 0o600).
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
