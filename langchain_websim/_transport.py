"""One HTTP exchange with Websim, and what a failed one means.

``WebsimClient.asend`` decides *whether* to try again; this module does a single POST (the
answer read whole, but never past the size cap, or what kept one from coming) and turns
whatever went wrong into the typed error the caller will see.  Proxy credentials are
redacted from everything it writes.
"""

from __future__ import annotations

import asyncio
import errno
import io
import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
from aiohttp import hdrs

from langchain_websim import _wire
from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)

_READ_CHUNK = 64 * 1024
_LARGE_BODY = 1024 * 1024
# What is kept of a non-2xx body over the cap: enough to quote it and to recognise a
# bot-protection challenge page (``_wire.looks_like_challenge`` reads this much).
_ERROR_HEAD = 64 * 1024


class HttpAnswer(NamedTuple):
    """What came back from one exchange."""

    status: int
    content_type: str
    headers: Mapping[str, str]
    body: bytes


def new_session(
    timeout: float, max_connections: int, ssl_context: ssl.SSLContext | None = None
) -> aiohttp.ClientSession:
    # ``True`` is aiohttp's default: verify against the system's trust store.
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ssl=verify)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        # The request headers are set per endpoint; no cookies or env proxies leak in.
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


Unanswered = TimeoutError | aiohttp.ClientError | OSError
"""What aiohttp raises for an exchange that got no HTTP answer (refused, reset, timed
out); :func:`post` returns it rather than raising it."""


async def post(
    session: aiohttp.ClientSession,
    endpoint: _wire.Endpoint,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    proxy: str | None,
    attempts: int,
) -> HttpAnswer | Unanswered:
    """One POST: the answer (any status), or what kept one from coming.

    The failure is returned, not raised, so the send loop awaits this directly and decides
    what it means, with no coroutine of its own around the exchange (what a call holds
    while its request is out is what the garbage collector works through in a busy batch).
    Raised: a 2xx body over the cap (``WebsimResponseError``, saying ``attempts``, this one
    included), and the client's own shutdown.  The caller checked ``headers`` beforehand
    (:func:`unsendable`).
    """
    if session.closed:  # closed while this call waited (a backoff, a rate-control slot)
        raise client_closed()
    # aiohttp warns (ResourceWarning) about bytes bodies over 1 MiB, which chat bodies with
    # images reach; a fresh BytesIO per attempt is sent the same, in chunks.
    data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > _LARGE_BODY else body
    try:
        # Awaited, then entered: ``async with session.post(...)`` is the same exchange with
        # one more coroutine held while the request is out.
        resp = await session.post(
            url, data=data, headers=headers, proxy=proxy, allow_redirects=False
        )
        async with resp:
            raw = await _read_capped(resp, endpoint, url)
            return HttpAnswer(resp.status, resp.headers.get("content-type", ""), resp.headers, raw)
    except WebsimResponseError as exc:
        exc.attempts = attempts
        raise
    except (TimeoutError, aiohttp.ClientError, OSError, RuntimeError) as exc:
        # The client's own shutdown cut the exchange: not the service's doing, and nothing to
        # retry (aiohttp reports it as a dropped connection, or "Session is closed").
        if session.closed:
            raise client_closed() from None
        if isinstance(exc, RuntimeError):
            raise
        return exc


def unsendable(endpoint: _wire.Endpoint, url: str, problem: str) -> WebsimConnectionError:
    """What a call raises, unsent, for request headers with ``problem``
    (``_wire.header_problem``): aiohttp would refuse them with a bare ValueError that
    names no header (and escapes the image tool)."""
    return WebsimConnectionError(
        f"the request was not sent: {problem}",
        url=url,
        endpoint=endpoint.name,
        reason="headers",
    )


def client_closed() -> RuntimeError:
    """What a call cut short by ``close()``/``aclose()`` raises, sync or async."""
    return RuntimeError("the Websim client was closed while this call ran")


async def _read_capped(resp: aiohttp.ClientResponse, endpoint: _wire.Endpoint, url: str) -> bytes:
    """Read at most ``MAX_BODY_BYTES`` (after decompression).

    Past the cap a 2xx answer is unusable (``WebsimResponseError``); any other status still
    decides what the call means (retry, rate control, error class), so its body is cut to
    the head an error quotes and a challenge page is recognised by.
    """
    length = resp.content_length
    # aiohttp's parser stops at Content-Length and, without Content-Encoding, nothing is
    # decompressed: such a body cannot pass the cap, so one read, without the chunk loop.
    if (
        length is not None
        and length <= _wire.MAX_BODY_BYTES
        and hdrs.CONTENT_ENCODING not in resp.headers
    ):
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    too_large = length is not None and length > _wire.MAX_BODY_BYTES
    if too_large and not 200 <= resp.status < 300:
        # Declared too large: only the head is worth reading.
        chunks.append(await resp.content.read(_ERROR_HEAD))
    if not too_large:
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            chunks.append(chunk)  # kept even when over: the error quotes its beginning
            if size > _wire.MAX_BODY_BYTES:
                too_large = True
                break
    if not too_large:
        return b"".join(chunks)
    head = _head(chunks, _ERROR_HEAD)
    # The error's traceback keeps this frame alive (often in a reference cycle, until the
    # next garbage collection): it must not keep the 10 MiB read so far alive with it.
    chunks.clear()
    if not 200 <= resp.status < 300:
        return head
    raise WebsimResponseError(
        f"the body exceeds the {_size(_wire.MAX_BODY_BYTES)} cap and was not read past it",
        endpoint=endpoint.name,
        url=url,
        status_code=resp.status,
        content_type=resp.headers.get("content-type", ""),
        body=_wire.excerpt(head[:2048]),
    )


def _head(chunks: list[bytes], n: int) -> bytes:
    # Joining the whole over-cap body just to quote its start would hold it twice.
    head = bytearray()
    for chunk in chunks:
        head += chunk[: n - len(head)]
        if len(head) >= n:
            break
    return bytes(head)


def _size(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n % mib == 0 else f"{n} bytes"


def status_error(
    endpoint: _wire.Endpoint,
    url: str,
    answer: HttpAnswer,
    attempts: int,
    retry_after: float | None,
) -> WebsimAPIError:
    """The error for a non-2xx answer to an API call: blocked, rate limited, redirected (API
    calls do not follow redirects) or plain HTTP."""
    status = answer.status
    if 300 <= status < 400:
        location = answer.headers.get("location", "?")
        problem = (
            f"redirected to {_wire.excerpt(location, 200)}; redirects are not followed "
            f"for API calls: set base_url (or {_wire.BASE_URL_ENV}) to "
            f"{_moved_to(url, location)}"
        )
    else:
        # The status itself is in the message's "(HTTP ...)": the words say what it means.
        problem = _status_words(status)
    return answer_error(
        endpoint.name, url, answer, problem, attempts=attempts, retry_after=retry_after
    )


def answer_error(
    endpoint: str,
    url: str,
    answer: HttpAnswer,
    problem: str,
    *,
    attempts: int = 1,
    retry_after: float | None = None,
    quote_body: bool = True,
) -> WebsimAPIError:
    """The typed error for a non-2xx answer, API call or download: a challenge page is
    ``WebsimBlockedError``, a 429 ``WebsimRateLimitError``, anything else ``problem``."""
    status, content_type, headers, body = answer
    common: dict[str, Any] = {
        "status_code": status,
        "url": url,
        "endpoint": endpoint,
        "content_type": content_type,
        "body": _wire.excerpt(body) if quote_body else "",
        "attempts": attempts,
    }
    if status in (403, 503) and _wire.looks_like_challenge(content_type, body, headers):
        return WebsimBlockedError(
            "blocked by a bot-protection challenge page (the request did not reach "
            "its destination; try again later, from another network, or through `proxy`)",
            **common,
        )
    if status == 429:
        hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        return WebsimRateLimitError(f"rate limited{hint}", retry_after=retry_after, **common)
    return WebsimAPIError(problem, **common)


def _status_words(status: int) -> str:
    if status in (404, 410):
        return "not found: nothing answers at this URL; check base_url"
    if 400 <= status < 500:
        return "the service refused the request"
    if status >= 500:
        return "the service failed to answer"
    return "the service gave an answer that is neither a success nor an error"


def _moved_to(url: str, location: str) -> str:
    """The service root a redirect points at, to suggest as the base URL (the service moved
    its site once already, from websim.ai to websim.com)."""
    try:
        parts = urlsplit(urljoin(url, location))
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 bracket)
        netloc = ""
    # Only scheme, host and port: never credentials a Location header may carry.
    target = f"{parts.scheme}://{netloc}" if netloc else ""
    if location == "?" or not _wire.is_absolute_http_url(target) or url.startswith(target + "/"):
        return "the service's real host"
    return _wire.excerpt(target, 200)


def connection_error(
    endpoint: _wire.Endpoint,
    url: str,
    exc: BaseException,
    attempts: int,
    *,
    timeout: float,
    proxy: str | None,
) -> WebsimConnectionError:
    """The error for an API call's attempt that got no HTTP answer at all."""
    return failure_error(endpoint.name, url, exc, attempts=attempts, timeout=timeout, proxy=proxy)


def failure_error(
    endpoint: str,
    url: str,
    exc: BaseException,
    *,
    attempts: int = 1,
    timeout: float,
    proxy: str | None,
    failed: str = "connection failed",
) -> WebsimConnectionError:
    """The error for an exchange (API call or download) that got no HTTP answer, in words.

    aiohttp's own text ("Cannot connect to host ... ssl:default [...]") stays reachable as
    ``__cause__``; the message says what failed and where, so a log line or an agent's tool
    message is enough to act on.
    """
    if isinstance(exc, asyncio.TimeoutError):
        err: WebsimConnectionError = WebsimTimeoutError(
            f"no complete answer within {timeout:g} s",
            timeout=timeout,
            url=url,
            endpoint=endpoint,
            attempts=attempts,
            reason="timeout",
        )
    else:
        failure = describe_failure(exc, url, proxy)
        err = WebsimConnectionError(
            f"{failed}: {failure.words}",
            url=url,
            endpoint=endpoint,
            attempts=attempts,
            reason=failure.reason,
        )
    err.__cause__ = exc
    return err


class Failure(NamedTuple):
    """A failed connection: a short ``reason`` (refused, dns, tls, ...) and it in words."""

    reason: str
    words: str


def describe_failure(exc: BaseException, url: str, proxy: str | None) -> Failure:
    """Why a connection failed: refused, dns, tls, reset, ..."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    detail = redact_text(str(exc) or type(exc).__name__, proxy)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        why = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        return Failure("tls", f"the TLS certificate of {where} could not be verified ({why})")
    if isinstance(exc, aiohttp.ClientSSLError):
        return Failure("tls", f"the TLS handshake with {where} failed ({detail})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Failure(
            "dns", f"the host name {parts.hostname!r} could not be resolved (DNS lookup failed)"
        )
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return Failure("proxy", f"the proxy {redact_url(proxy)} could not be reached")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return Failure(
                "refused", f"{where} refused the connection (nothing accepts connections there)"
            )
        return Failure("unreachable", f"{where} could not be reached ({exc.strerror or detail})")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Failure("disconnected", f"{where} closed the connection before answering")
    if isinstance(exc, (ConnectionResetError, aiohttp.ClientConnectionResetError)) or (
        isinstance(exc, OSError) and exc.errno == errno.ECONNRESET
    ):
        return Failure("reset", f"the connection to {where} was reset")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Failure("incomplete", f"the answer from {where} was cut off ({detail})")
    return Failure("failed", f"the connection to {where} failed ({type(exc).__name__}: {detail})")


# ---------------------------------------------------------------------- proxy credentials


def validate_proxy(proxy: str | None) -> str | None:
    if proxy is None:
        return None
    if not isinstance(proxy, str):
        raise TypeError(f"proxy must be a URL string, got {type(proxy).__name__}")
    try:
        parts = urlsplit(proxy)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a port that is not a number in range raises here
    except ValueError:
        valid = False
    if not valid:
        raise ValueError(f"proxy must be an http:// or https:// URL, got {redact_url(proxy)!r}")
    return proxy


def redact_url(url: str | None) -> str | None:
    """``http://user:secret@host`` -> ``http://***@host``: credentials never reach logs."""
    if not isinstance(url, str):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
    if not parts.netloc and "@" in url:
        # Without "//" (``user:secret@host:3128``) urlsplit sees no user info at all.
        return "***@" + url.rpartition("@")[2]
    return url


def redact_text(text: str, proxy: str | None) -> str:
    if proxy:
        parts = urlsplit(proxy)
        for secret in (proxy, parts.password, parts.username):
            if secret:
                text = text.replace(secret, "***")
    return text
