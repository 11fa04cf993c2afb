"""``WebsimClient``: the one HTTP client behind ``ChatWebsim`` and ``WebsimImageTool``.

Chat and image calls share a single send path (``asend``) with one retry loop, one pooled
``aiohttp`` session per event loop, and one background loop for the synchronous twins.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, Unpack, cast, overload

import aiohttp

from langchain_websim import _download, _transport, _wire
from langchain_websim._image_options import ImageOptions
from langchain_websim._loops import BackgroundLoop, CallerLoops, LoopSessions, running_loop
from langchain_websim._pacing import Call, SlotQueues, await_slot, is_shaping
from langchain_websim._rate import EndpointRateState, RateController
from langchain_websim._rate_tuning import DEFAULT_TUNING
from langchain_websim._requests import ChatRequest, ImageRequest
from langchain_websim._responses import WebsimChatResponse, WebsimImageResponse
from langchain_websim._retry import (
    Outcome,
    RetryPolicy,
    parse_retry_after_header,
    retry_delay,
    should_retry_exception,
    should_retry_status,
)
from langchain_websim._settings import WebsimSettings, load_ca_bundle
from langchain_websim._transport import redact_url
from langchain_websim.errors import (
    WebsimBlockedError,
    WebsimResponseError,
)

logger = logging.getLogger("langchain_websim")

T = TypeVar("T")

__all__ = ["SEND_GUARD", "WebsimChatResponse", "WebsimClient", "WebsimImageResponse"]

SEND_GUARD: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "websim_send_guard", default=None
)
"""Called in the caller's context right before each attempt goes out (after any wait for a
rate slot); an exception it raises ends the call unsent.  ``websim batch`` sets it so that
after Ctrl-C, calls still waiting for a slot are not sent."""


class WebsimClient:
    """Async-first HTTP client for the Websim inference API, with sync twins.

    Args:
        base_url: service root; default ``$WEBSIM_BASE_URL``, else the public Websim host.
        **settings: the other connection settings, by keyword: the fields of
            ``ConnectionSettings`` (``langchain_websim._settings``), where each is defined
            once with its default and meaning, shared with ``ChatWebsim`` and
            ``WebsimImageTool``.  A wrong type raises ``TypeError``, a wrong value
            ``ValueError``.

    Nothing touches the network until the first call.  Use one client for many models and
    tools (``WebsimClient.shared(...)`` returns the process-wide one for a configuration).
    """

    def __init__(self, base_url: str | None = None, **settings: Any) -> None:
        self._configure(WebsimSettings.build(base_url=base_url, **settings))

    @classmethod
    def from_settings(cls, settings: WebsimSettings) -> WebsimClient:
        client = cls.__new__(cls)
        client._configure(settings)
        return client

    def _configure(self, settings: WebsimSettings) -> None:
        self.settings = settings
        self.retry = RetryPolicy(
            settings.max_retries, settings.retry_base_delay, settings.retry_max_delay
        )
        # One context per client: a CA bundle is parsed once, not per session.
        self._ssl = (
            load_ca_bundle(settings.ca_bundle) if settings.ca_bundle else settings.ssl_context
        )
        extra = settings.headers or {}
        self._request_headers = {
            name: _wire.build_headers(settings.base_url, ep, extra)
            for name, ep in _wire.ENDPOINTS.items()
        }
        self._urls = {name: settings.base_url + ep.path for name, ep in _wire.ENDPOINTS.items()}
        # Settings are checked at construction, but a headers dict edited in place before
        # this client was made from it is not: checked here once, not on every send.
        self._header_problems = {
            name: _wire.header_problem(headers) for name, headers in self._request_headers.items()
        }
        # One controller for every model and tool on this client, across loops and threads.
        self._rate = (
            RateController(
                tuning=settings.rate_tuning or DEFAULT_TUNING,
                max_pause=settings.rate_limit_deadline,
            )
            if settings.adaptive_rate
            else None
        )
        self._queues = SlotQueues()
        self._sessions = LoopSessions(self._session_factory())
        self._callers = CallerLoops()
        self._background = BackgroundLoop()
        # A client dropped without close() must not leave its loops (and their sessions) or
        # its loop thread behind; the callback holds those, not the client, so the client
        # can still be collected.
        self._finalizer = weakref.finalize(self, _stop_loops, self._callers, self._background)
        self._closed = False
        _LIVE_CLIENTS.add(self)

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    @property
    def max_retries(self) -> int:
        return self.settings.max_retries

    @property
    def proxy(self) -> str | None:
        return self.settings.proxy

    @property
    def closed(self) -> bool:
        return self._closed

    def rate_state(self) -> dict[str, EndpointRateState]:
        """What the adaptive rate control knows, per endpoint used so far: the rate it paces
        to (``None`` until a 429 taught it one), 429s seen, seconds spent waiting."""
        return {} if self._rate is None else self._rate.state()

    # ------------------------------------------------------------------ public API

    async def achat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        project_id: str | None = None,
        json_mode: bool = False,
    ) -> WebsimChatResponse:
        """Send ``{"role", "content"}`` messages; return the stripped answer text."""
        return await self.asend(ChatRequest(messages, project_id, json_mode))

    async def agenerate_image(
        self,
        prompt: str,
        *,
        aspect_ratio: str = _wire.DEFAULT_ASPECT_RATIO,
        project_id: str | None = None,
        **options: Unpack[ImageOptions],
    ) -> WebsimImageResponse:
        """Generate one image with ``flux``; return its URL (``.save(path)`` downloads it).

        ``options``: the image options by name, each sent only when given (documented by
        Websim's app runtime, unconfirmed on its HTTP API), declared with their values and
        meaning once in ``IMAGE_OPTIONS`` (``langchain_websim._image_options``).  Bad values
        raise ``TypeError``/``ValueError`` before anything is sent.
        """
        return await self.asend(ImageRequest(prompt, aspect_ratio, project_id, **options))

    async def adownload(self, url: str) -> bytes:
        """GET ``url`` (an image, typically) through this client's pool; return the bytes.

        http(s) only; redirects followed; one attempt (no retries); at most 20 MiB, read in
        chunks.  Failures raise the typed ``Websim*`` errors with ``endpoint="download"``.
        """
        checked = _download.check_url(url)
        if self._closed:
            raise RuntimeError("this WebsimClient is closed; create a new one")
        session = await self._sessions.get()
        return await _download.fetch(
            session, checked, proxy=self.proxy, session_timeout=self.timeout
        )

    @overload
    async def asend(self, request: ChatRequest) -> WebsimChatResponse: ...
    @overload
    async def asend(self, request: ImageRequest) -> WebsimImageResponse: ...

    async def asend(
        self, request: ChatRequest | ImageRequest
    ) -> WebsimChatResponse | WebsimImageResponse:
        """Send a request built (and validated) beforehand, with retries and rate control;
        used by the model and the tool.

        Each turn: wait for a send slot (when paced), one attempt -> an ``Outcome``; then a
        success is parsed into the response, a 429 the service shapes waits for the next
        slot without spending a retry, and any other failure is retried after a backoff or
        raised.
        """
        if self._closed:
            raise RuntimeError("this WebsimClient is closed; create a new one")
        endpoint = request.endpoint
        body = request.body()
        project_id = cast(str, request.project_id)  # drawn or checked on construction
        image = request if isinstance(request, ImageRequest) else None  # its answer echoes it
        # A chat request is not held while it is out: in a batch of concurrent calls, the
        # objects each call holds then decide how often the garbage collector runs.
        del request
        session = await self._sessions.get()
        call = Call(endpoint, self._urls[endpoint.name], time.perf_counter(), self._rate)
        while True:
            rate = call.rate
            if rate is not None and call.paced and not rate.unpaced(endpoint.name):
                await await_slot(
                    call, self._queues, self.settings.rate_limit_deadline, self.retry.max_delay
                )
            guard = SEND_GUARD.get()
            if guard is not None:
                guard()  # the caller may no longer want it sent (a stopped batch job)
            headers = self._sending(call)
            # Read at once, not kept: a failed exchange's traceback holds its frames (and a
            # large body's copy) through the backoff otherwise.
            outcome = self._outcome(
                call,
                await _transport.post(
                    session, endpoint, call.url, headers, body, self.proxy, call.attempts
                ),
            )
            if outcome.ok:
                return self._respond(call, outcome, project_id, image)
            if self._on_rate_limited(call, outcome):
                continue
            await self._on_failure(call, outcome)

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
        **options: Unpack[ImageOptions],
    ) -> WebsimImageResponse:
        """Blocking twin of :meth:`agenerate_image`."""
        # Built here, so bad input fails in the caller's thread with nothing sent.
        request = ImageRequest(prompt, aspect_ratio, project_id, **options)
        return self.run_sync(self.asend(request))

    def download(self, url: str) -> bytes:
        """Blocking twin of :meth:`adownload`."""
        return self.run_sync(self.adownload(url))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of this client on its background loop and wait for the result."""
        if self._closed:
            coro.close()
            raise RuntimeError("this WebsimClient is closed; create a new one")
        if running_loop() is None:
            return self._callers.run(coro)  # the common case: on this thread's own loop
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
        _stop_loops(self._callers, self._background)
        self._sessions.close_all(defer=self._callers.loops())
        _forget_shared(self)

    def _after_fork_in_child(self) -> None:
        # The parent's loop thread does not exist here and its sockets are the parent's:
        # closing them would send TLS close_notify on its connections, letting them be
        # collected would warn.  Keep them alive, unreachable, and start over (what the
        # rate control learned starts fresh too).
        _FORK_ORPHANS.append((self._background, self._sessions, self._callers))
        if self._rate is not None:
            self._rate.reset()
        self._queues = SlotQueues()
        self._background = BackgroundLoop()
        self._callers = CallerLoops()
        self._sessions = LoopSessions(self._session_factory())
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _stop_loops, self._callers, self._background)

    async def __aenter__(self) -> WebsimClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> WebsimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # A client is a pool and a thread: a pickled one arrives as the receiving process's
        # shared client for the same settings (an SSLContext cannot travel: ca_bundle can).
        self.settings.check_picklable("this WebsimClient")
        return (_unpickle, (self.settings.model_dump(exclude={"ssl_context"}),))

    def __repr__(self) -> str:
        return (
            f"WebsimClient(base_url={self.base_url!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, proxy={redact_url(self.proxy)!r})"
        )

    @classmethod
    def shared(cls, base_url: str | None = None, **settings: Any) -> WebsimClient:
        """The process-wide client for these settings, so instances share one pool."""
        return cls.shared_for(WebsimSettings.build(base_url=base_url, **settings))

    @classmethod
    def close_shared(cls, base_url: str | None = None) -> None:
        """Close the process-wide clients ``shared`` handed out (those for ``base_url``
        only, when given); the next ``shared`` call makes a new one.  For tests and for
        shutting down before the interpreter does it at exit."""
        with _SHARED_LOCK:
            clients = [c for c in _SHARED.values() if base_url in (None, c.base_url)]
        for client in clients:
            client.close()

    @classmethod
    def shared_for(cls, settings: WebsimSettings) -> WebsimClient:
        key = settings.shared_key()
        client = _SHARED.get(key)
        if client is not None and not client._closed:
            return client
        with _SHARED_LOCK:
            client = _SHARED.get(key)
            if client is None or client._closed:
                client = _SHARED[key] = cls.from_settings(settings)
            return client

    # ------------------------------------------------------------------ the send path

    def _session_factory(self) -> Callable[[], aiohttp.ClientSession]:
        # Not a bound method: sessions that held the client would make a cycle, and a client
        # dropped without close() would then keep its loops and pools open until the next
        # garbage collection instead of closing them as it goes.
        settings = self.settings
        return partial(
            _transport.new_session, settings.timeout, settings.max_connections, self._ssl
        )

    def _sending(self, call: Call) -> Mapping[str, str]:
        """Count one more attempt and stamp its send time; the headers to send it with.
        A header the service would refuse fails the call here, unsent."""
        endpoint = call.endpoint
        problem = self._header_problems[endpoint.name]
        if problem is not None:
            raise _transport.unsendable(endpoint, call.url, problem)
        call.attempts += 1
        if call.rate is not None:
            # A model answers seconds after a limiter would refuse: the controller measures
            # what the service accepted by when requests were sent, not when answers came.
            call.sent_at = call.rate.now()
        return self._request_headers[endpoint.name]

    def _outcome(
        self, call: Call, answer: _transport.HttpAnswer | _transport.Unanswered
    ) -> Outcome:
        """What one attempt came to: a success, a status to decide on, or no answer."""
        endpoint = call.endpoint
        url = call.url
        if not isinstance(answer, _transport.HttpAnswer):
            failure = _transport.connection_error(
                endpoint, url, answer, call.attempts, timeout=self.timeout, proxy=self.proxy
            )
            return Outcome(
                error=failure, retryable=should_retry_exception(answer), reason=failure.problem
            )
        status = answer.status
        if 200 <= status < 300:
            return Outcome(status=status, content_type=answer.content_type, body=answer.body)
        retry_after = parse_retry_after_header(answer.headers)
        error = _transport.status_error(endpoint, url, answer, call.attempts, retry_after)
        blocked = isinstance(error, WebsimBlockedError)
        return Outcome(
            status=status,
            error=error,
            retryable=should_retry_status(status, blocked=blocked),
            reason=f"HTTP {status}",
            retry_after=retry_after,
        )

    def _respond(
        self, call: Call, outcome: Outcome, project_id: str, image: ImageRequest | None
    ) -> WebsimChatResponse | WebsimImageResponse:
        """Tell the rate control, then parse the success into the response for the request
        (``image``: the image request it answers; ``None``: a chat request); an unusable
        2xx says how many attempts it took."""
        if call.rate is not None and call.rate.on_success(call.endpoint.name, call.sent_at):
            self._queues.wake(call.endpoint.name)  # a slow-start round ended: the next goes
        assert outcome.status is not None
        parse = _wire.parse_chat_response if image is None else _wire.parse_image_response
        try:
            parsed = parse(outcome.status, call.url, outcome.content_type, outcome.body)
        except WebsimResponseError as exc:
            exc.attempts = call.attempts
            raise
        timing = call.timing()
        if image is not None:
            return WebsimImageResponse.for_request(image, parsed, timing, self)
        return WebsimChatResponse(
            parsed, project_id, timing.attempts, timing.elapsed, timing.rate_wait
        )

    def _on_rate_limited(self, call: Call, outcome: Outcome) -> bool:
        """A 429 under rate control: True when the service is shaping ("slow down"), so the
        request waits for its next slot instead of spending a retry."""
        if not outcome.rate_limited or call.rate is None:
            return False
        if not is_shaping(call, outcome.retry_after):
            return False
        call.shaped += 1
        call.paced = True
        return True

    async def _on_failure(self, call: Call, outcome: Outcome) -> None:
        """Back off before the next attempt, or raise when the policy says to give up."""
        delay = retry_delay(
            self.retry, call.counted, outcome.retry_after, retryable=outcome.retryable
        )
        assert outcome.error is not None
        if delay is None:
            raise outcome.error
        # INFO, as openai-python does: the final failure is raised anyway, and an app that
        # configured no logging should not print a line per retry.
        logger.info(
            "Websim %s: %s; retrying in %.2f s (attempt %d of %d)",
            call.endpoint.name,
            outcome.reason,
            delay,
            call.counted + 1,
            self.retry.max_attempts,
        )
        call.paced = False  # a counted retry waits its backoff, exactly as without control
        await asyncio.sleep(delay)


# ---------------------------------------------------------------------- helpers


def _stop_loops(callers: CallerLoops, background: BackgroundLoop) -> None:
    """Stop a client's loops: on close, and as the finalizer of a client dropped unclosed
    (it holds these, not the client)."""
    callers.close()
    background.stop()


def _unpickle(settings: dict[str, Any]) -> WebsimClient:
    return WebsimClient.shared(**settings)


_SHARED: dict[tuple[Any, ...], WebsimClient] = {}
_SHARED_LOCK = threading.Lock()
_FORK_ORPHANS: list[tuple[BackgroundLoop, LoopSessions, CallerLoops]] = []
_LIVE_CLIENTS: weakref.WeakSet[WebsimClient] = weakref.WeakSet()


def _forget_shared(client: WebsimClient) -> None:
    with _SHARED_LOCK:
        for key in [k for k, c in _SHARED.items() if c is client]:
            del _SHARED[key]


def _after_fork_in_child() -> None:
    global _SHARED_LOCK
    # Another parent thread may have held the lock at the fork; nobody will release it here.
    _SHARED_LOCK = threading.Lock()
    for client in list(_LIVE_CLIENTS):
        client._after_fork_in_child()


# A forked child (multiprocessing's default start method on Linux before Python 3.14,
# gunicorn and celery prefork workers) inherits clients whose loop thread did not survive the
# fork: without this, its first sync call would wait forever for that thread.
os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_all_clients() -> None:
    # Scripts rarely close what they open; closing here keeps interpreter exit silent.
    for client in list(_LIVE_CLIENTS):
        try:
            client.close()
        except Exception:  # pragma: no cover - best effort at exit
            logger.debug("error while closing %r at exit", client, exc_info=True)
