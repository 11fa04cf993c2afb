"""Typed errors raised by the Websim client, the chat model and the image tool.

::

    WebsimError
    ├── WebsimAPIError            status_code, url, body excerpt (≤ 500 chars), attempts
    │   ├── WebsimRateLimitError  retry_after (seconds or None)
    │   └── WebsimBlockedError    403/503 carrying an HTML/Cloudflare challenge page
    ├── WebsimConnectionError     reason: refused, dns, tls, reset, disconnected, ...
    │   └── WebsimTimeoutError    timeout
    └── WebsimResponseError       2xx but unusable: not JSON, HTML, not an object, `content`
                                  missing/null/not a string, `url` missing or not absolute
                                  http(s), body over the size cap

Every message names the endpoint, the status and the content type, and quotes a short
excerpt of what arrived, so a log line alone tells what the service did.  Bad input from the
caller is not a service failure: it raises ``ValueError``/``TypeError`` before any request.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "WebsimAPIError",
    "WebsimBlockedError",
    "WebsimConnectionError",
    "WebsimError",
    "WebsimRateLimitError",
    "WebsimResponseError",
    "WebsimTimeoutError",
]


class WebsimError(Exception):
    """Base class of every error this package raises for a failed Websim call."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint: str | None = fields.pop("endpoint", None)
        self.url: str | None = fields.pop("url", None)
        self.attempts: int = fields.pop("attempts", 1)
        for name, value in fields.items():
            setattr(self, name, value)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by the default exception pickling; errors cross
        # process boundaries in batch jobs, so keep them -- including the ones set after
        # construction (``attempts`` is filled in by the retry loop).
        return (_rebuild, (type(self), self.message), dict(self.__dict__))


def _rebuild(cls: type[WebsimError], message: str) -> WebsimError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    return err


def _described(problem: str, fields: dict[str, Any]) -> str:
    """``Websim <endpoint>: <problem> (HTTP <status>, <type>, after N attempts); body: ...``"""
    where = f"Websim {fields.get('endpoint') or 'request'}"
    bits = []
    if fields.get("status_code") is not None:
        bits.append(f"HTTP {fields['status_code']}")
    if fields.get("content_type"):
        bits.append(str(fields["content_type"]))
    if fields.get("attempts", 1) > 1:
        bits.append(f"after {fields['attempts']} attempts")
    head = f"{where}: {problem}" + (f" ({', '.join(bits)})" if bits else "")
    body = fields.get("body")
    return f"{head}; body: {body!r}" if body else head


class WebsimAPIError(WebsimError):
    """The service answered with a non-2xx status that was not (or no longer) retried."""

    status_code: int
    content_type: str | None
    body: str
    problem: str

    def __init__(
        self,
        problem: str,
        *,
        status_code: int,
        url: str,
        endpoint: str | None = None,
        content_type: str | None = None,
        body: str = "",
        attempts: int = 1,
        **extra: Any,
    ) -> None:
        fields = dict(
            status_code=status_code,
            url=url,
            endpoint=endpoint,
            content_type=content_type,
            body=body,
            attempts=attempts,
            **extra,
        )
        super().__init__(_described(problem, fields), problem=problem, **fields)


class WebsimRateLimitError(WebsimAPIError):
    """HTTP 429 after the retry budget, or with a ``Retry-After`` past ``retry_max_delay``."""

    def __init__(self, problem: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(problem, retry_after=retry_after, **kw)
        self.retry_after = retry_after


class WebsimBlockedError(WebsimAPIError):
    """A bot-protection (e.g. Cloudflare) challenge page answered instead of the API."""


class WebsimConnectionError(WebsimError):
    """The request never got an HTTP answer: refused, reset, dropped, DNS, TLS.

    ``reason`` names what failed, in one word: ``refused``, ``dns``, ``tls``, ``reset``,
    ``disconnected``, ``unreachable``, ``proxy``, ``incomplete``, ``timeout`` or ``failed``;
    the underlying aiohttp/OS exception is ``__cause__``.  ``headers``: a header value that
    cannot be sent (edited after the construction check), so nothing was sent.
    """

    problem: str
    reason: str

    def __init__(
        self,
        problem: str,
        *,
        url: str,
        endpoint: str | None = None,
        attempts: int = 1,
        reason: str = "failed",
        **extra: Any,
    ) -> None:
        fields = dict(url=url, endpoint=endpoint, attempts=attempts, reason=reason, **extra)
        super().__init__(_described(problem, fields), problem=problem, **fields)


class WebsimTimeoutError(WebsimConnectionError):
    """No complete answer within ``timeout`` seconds, on every attempt."""

    def __init__(self, problem: str, *, timeout: float | None = None, **kw: Any) -> None:
        super().__init__(problem, timeout=timeout, **kw)
        self.timeout = timeout


class WebsimResponseError(WebsimError):
    """A 2xx answer that cannot be used: not JSON, HTML, wrong shape, too large.

    Carries ``problem``, ``status_code``, ``content_type`` and ``body`` (an excerpt) like
    ``WebsimAPIError``.
    """

    status_code: int | None
    content_type: str | None
    body: str
    problem: str

    def __init__(self, problem: str, *, url: str, **fields: Any) -> None:
        fields = {"status_code": None, "content_type": None, "body": "", **fields, "url": url}
        super().__init__(_described(problem, fields), problem=problem, **fields)
