"""``WebsimClient``: the one HTTP client behind ``ChatWebsim`` and ``WebsimImageTool``.

Chat and image calls share a single send path (``_send``) with one retry loop, one pooled
``aiohttp`` session per event loop, and one background loop for the synchronous twins.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import math
import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from langchain_websim import _transport, _wire
from langchain_websim._loops import BackgroundLoop, LoopSessions
from langchain_websim._retry import (
    RetryPolicy,
    _calculate_retry_timeout,
    _parse_retry_after_header,
    _should_retry_status,
)
from langchain_websim._transport import redact_text, redact_url
from langchain_websim._transport import validate_proxy as _validate_proxy
from langchain_websim.errors import WebsimBlockedError, WebsimError, WebsimResponseError

logger = logging.getLogger("langchain_websim")

T = TypeVar("T")

__all__ = [
    "WebsimChatResponse",
    "WebsimClient",
    "WebsimImageResponse",
    "_validate_proxy",
    "redact_text",
    "redact_url",
    "resolve_base_url",
]


@dataclass(frozen=True, slots=True)
class WebsimChatResponse:
    """A chat answer: ``text`` is the stripped ``content`` the service returned."""

    text: str
    project_id: str
    attempts: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class WebsimImageResponse:
    """A generated image: ``url`` is the absolute http(s) URL the service returned."""

    url: str
    prompt: str
    aspect_ratio: str
    project_id: str
    attempts: int
    elapsed: float


class WebsimClient:
    """Async-first HTTP client for the Websim inference API, with sync twins.

    Args:
        base_url: service root; default ``$WEBSIM_BASE_URL``, else ``https://websim.ai``.
        timeout: seconds allowed for each attempt (connect, send and read the whole answer).
        max_retries: retries after the first attempt, for 408/409/429/5xx, connection errors
            and timeouts.
        retry_base_delay: backoff before retry n is ``min(retry_max_delay, base * 2**n)``,
            less up to 25 % jitter; a ``Retry-After`` header replaces it.
        retry_max_delay: cap on any wait; a ``Retry-After`` above it is not waited for, the
            call fails at once with ``WebsimRateLimitError.retry_after`` set.
        proxy: ``http://[user:pass@]host:port`` proxy for every request.
        headers: extra headers, added to (and overriding) the browser-like defaults.
        max_connections: size of the connection pool of each event loop.
        ssl_context: the ``ssl.SSLContext`` that verifies HTTPS servers, e.g. one that also
            trusts a private CA (``ssl.create_default_context(cafile=...)``).  ``None`` (the
            default) verifies against the system's trust store.

    Nothing touches the network until the first call.  Use one client for many models and
    tools (``WebsimClient.shared(...)`` returns the process-wide one for a configuration).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 2,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = _wire.normalize_base_url(resolve_base_url(base_url))
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError(f"max_connections must be a whole number, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections!r}")
        self.timeout = float(timeout)
        self.retry = RetryPolicy(max_retries, retry_base_delay, retry_max_delay)
        self.proxy = _validate_proxy(proxy)
        self.headers = _wire.validate_headers(headers)
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(
                f"ssl_context must be an ssl.SSLContext or None, got {type(ssl_context).__name__}"
            )
        self.max_connections = max_connections
        self.ssl_context = ssl_context
        self._request_headers = {
            name: _wire.build_headers(self.base_url, ep, self.headers)
            for name, ep in _wire.ENDPOINTS.items()
        }
        self._urls = {name: self.base_url + ep.path for name, ep in _wire.ENDPOINTS.items()}
        self._sessions = LoopSessions(self._new_session)
        self._background = BackgroundLoop()
        # A client dropped without close() must not leave its loop thread running; the
        # callback holds the loop, not the client, so the client can still be collected.
        self._finalizer = weakref.finalize(self, self._background.stop)
        self._closed = False
        _LIVE_CLIENTS.add(self)

    # ------------------------------------------------------------------ public API

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries

    @property
    def closed(self) -> bool:
        return self._closed

    async def achat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        project_id: str | None = None,
        json_mode: bool = False,
    ) -> WebsimChatResponse:
        """Send ``{"role", "content"}`` messages; return the stripped answer text."""
        wire_messages = _wire.validate_wire_messages(messages)
        pid = self._project_id(_wire.CHAT, project_id)
        body = _wire.chat_body(wire_messages, pid, json_mode)
        text, attempts, elapsed = await self._send(_wire.CHAT, body, _wire.parse_chat_response)
        return WebsimChatResponse(text, pid, attempts, elapsed)

    async def agenerate_image(
        self,
        prompt: str,
        *,
        aspect_ratio: str = _wire.DEFAULT_ASPECT_RATIO,
        project_id: str | None = None,
    ) -> WebsimImageResponse:
        """Generate one image with ``flux``; return its URL."""
        clean_prompt = _wire.validate_prompt(prompt)
        ratio = _wire.validate_aspect_ratio(aspect_ratio)
        pid = self._project_id(_wire.IMAGE, project_id)
        body = _wire.image_body(clean_prompt, ratio, pid)
        url, attempts, elapsed = await self._send(_wire.IMAGE, body, _wire.parse_image_response)
        return WebsimImageResponse(url, clean_prompt, ratio, pid, attempts, elapsed)

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        project_id: str | None = None,
        json_mode: bool = False,
    ) -> WebsimChatResponse:
        """Blocking twin of :meth:`achat`; safe inside a running loop and from any thread."""
        return self.run_sync(self.achat(messages, project_id=project_id, json_mode=json_mode))

    def generate_image(
        self,
        prompt: str,
        *,
        aspect_ratio: str = _wire.DEFAULT_ASPECT_RATIO,
        project_id: str | None = None,
    ) -> WebsimImageResponse:
        """Blocking twin of :meth:`agenerate_image`."""
        return self.run_sync(
            self.agenerate_image(prompt, aspect_ratio=aspect_ratio, project_id=project_id)
        )

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of this client on its background loop and wait for the result."""
        if self._closed:
            coro.close()
            raise RuntimeError("this WebsimClient is closed; create a new one")
        return self._background.run(coro)

    async def aclose(self) -> None:
        """Close every pooled session and stop the background loop."""
        self._closed = True
        await self._sessions.aclose_current()
        self._shutdown()

    def close(self) -> None:
        """Synchronous :meth:`aclose`, for scripts and ``with`` blocks."""
        self._closed = True
        self._shutdown()

    def _shutdown(self) -> None:
        self._background.stop()
        self._sessions.close_all()
        _forget_shared(self)

    async def __aenter__(self) -> WebsimClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> WebsimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"WebsimClient(base_url={self.base_url!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, proxy={redact_url(self.proxy)!r})"
        )

    # ------------------------------------------------------------------ process-wide default

    @classmethod
    def shared(
        cls,
        base_url: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 2,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebsimClient:
        """The process-wide client for this configuration, so instances share one pool."""
        resolved = _wire.normalize_base_url(resolve_base_url(base_url))
        # 1 == 1.0 as dict keys, so timeout=120 and timeout=120.0 share a client.
        key = (
            resolved,
            timeout,
            max_retries,
            retry_base_delay,
            retry_max_delay,
            proxy,
            tuple(sorted(_wire.validate_headers(headers).items())),
            max_connections,
            ssl_context,  # by identity: the same context object shares a client
        )
        client = _SHARED.get(key)
        if client is not None and not client._closed:
            return client
        with _SHARED_LOCK:
            client = _SHARED.get(key)
            if client is None or client._closed:
                client = cls(
                    resolved,
                    timeout=timeout,
                    max_retries=max_retries,
                    retry_base_delay=retry_base_delay,
                    retry_max_delay=retry_max_delay,
                    proxy=proxy,
                    headers=headers,
                    max_connections=max_connections,
                    ssl_context=ssl_context,
                )
                _SHARED[key] = client
            return client

    # ------------------------------------------------------------------ the send path

    def _new_session(self) -> aiohttp.ClientSession:
        return _transport.new_session(self.timeout, self.max_connections, self.ssl_context)

    @staticmethod
    def _project_id(endpoint: _wire.Endpoint, project_id: str | None) -> str:
        if project_id is None:
            return _wire.new_project_id(endpoint)
        return _wire.validate_project_id(project_id)

    async def _send(
        self,
        endpoint: _wire.Endpoint,
        body: bytes,
        parse: Callable[[int, str, str, bytes], T],
    ) -> tuple[T, int, float]:
        """POST ``body`` with retries; return (parsed answer, attempts, elapsed seconds)."""
        if self._closed:
            raise RuntimeError("this WebsimClient is closed; create a new one")
        session = await self._sessions.get()
        url, headers = self._urls[endpoint.name], self._request_headers[endpoint.name]
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                answer = await _transport.post(session, endpoint, url, headers, body, self.proxy)
            except WebsimResponseError as exc:  # body over the cap
                exc.attempts = attempt
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error: WebsimError = _transport.connection_error(
                    endpoint, url, exc, attempt, timeout=self.timeout, proxy=self.proxy
                )
                retryable = _transport.is_transient(exc)
                reason = type(exc).__name__
            else:
                status, content_type, resp_headers, raw = answer
                if 200 <= status < 300:
                    try:
                        return parse(status, url, content_type, raw), attempt, _since(started)
                    except WebsimResponseError as exc:
                        exc.attempts = attempt
                        raise
                retry_after = _parse_retry_after_header(resp_headers)
                error = _transport.status_error(endpoint, url, answer, attempt, retry_after)
                retryable = _should_retry_status(status) and not isinstance(
                    error, WebsimBlockedError
                )
                reason = f"HTTP {status}"
            delay = self._retry_delay(attempt, retry_after, retryable=retryable)
            if delay is None:
                raise error
            logger.warning(
                "Websim %s: %s; retrying in %.2f s (attempt %d of %d)",
                endpoint.name,
                reason,
                delay,
                attempt + 1,
                self.retry.max_attempts,
            )
            await asyncio.sleep(delay)

    def _retry_delay(
        self, attempt: int, retry_after: float | None, *, retryable: bool
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not retryable or attempt >= self.retry.max_attempts:
            return None
        if retry_after is not None:
            # Retrying before the server's time is wasted budget; waiting past our cap is
            # not what the caller configured: fail now and let them decide.
            return retry_after if retry_after <= self.retry.max_delay else None
        return _calculate_retry_timeout(self.retry, attempt)


# ---------------------------------------------------------------------- helpers


def resolve_base_url(base_url: str | None) -> str:
    # An explicit empty string is a mistake to report, not a request for the default.
    if base_url is not None:
        return base_url
    return os.environ.get(_wire.BASE_URL_ENV) or _wire.DEFAULT_BASE_URL


def _since(started: float) -> float:
    return time.perf_counter() - started


_SHARED: dict[tuple[Any, ...], WebsimClient] = {}
_SHARED_LOCK = threading.Lock()
_LIVE_CLIENTS: weakref.WeakSet[WebsimClient] = weakref.WeakSet()


def _forget_shared(client: WebsimClient) -> None:
    with _SHARED_LOCK:
        for key in [k for k, c in _SHARED.items() if c is client]:
            del _SHARED[key]


@atexit.register
def _close_all_clients() -> None:
    # Scripts rarely close what they open; closing here keeps interpreter exit silent.
    for client in list(_LIVE_CLIENTS):
        try:
            client.close()
        except Exception:  # pragma: no cover - best effort at exit
            logger.debug("error while closing %r at exit", client, exc_info=True)
