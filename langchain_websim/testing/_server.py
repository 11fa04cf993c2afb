"""The emulator's HTTP side: routing, contract checks, scripted and default answers.

A low-level ``aiohttp.web.Server`` (no ``Application``) is used so that requests aiohttp's
own HTTP parser refuses -- such as the original client's ``websim-flags;`` header name --
can be answered with the same JSON error body as every other contract violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from langchain_websim import _wire
from langchain_websim.testing._answers import echo_answer, json_answer
from langchain_websim.testing._contract import check_body, check_headers, parse_body
from langchain_websim.testing._images import image_path, parse_image_path, picture
from langchain_websim.testing._ratelimit import RATE_LIMIT_ERROR, RateLimiter
from langchain_websim.testing._records import RecordedRequest, RequestLog
from langchain_websim.testing._script import Script, ScriptBook

logger = logging.getLogger("langchain_websim.testing")

ChatResponder = Callable[[list[dict[str, Any]], dict[str, Any]], "str | dict[str, Any]"]

_FILLER_CHUNK = b"x" * (64 * 1024)
_PATHS = {_wire.CHAT.path: _wire.CHAT, _wire.IMAGE.path: _wire.IMAGE}
_SHUTDOWN_TIMEOUT = 2.0


@dataclass(slots=True)
class Settings:
    strict: bool
    require_project_id_format: bool
    chat_responder: ChatResponder | None


@dataclass(frozen=True, slots=True)
class _Answer:
    """The answer decided for a request; ``response`` is None for a ``drop`` or ``body_size``
    script, which is answered later."""

    response: web.StreamResponse | None
    script: Script | None = None
    rate_limited: bool = False

    @property
    def status(self) -> int | None:
        if self.response is not None:
            return self.response.status
        assert self.script is not None
        return None if self.script.drop else self.script.status


class EmulatorServer:
    """Runs on the emulator's own event loop; everything here is called on that loop."""

    def __init__(
        self, settings: Settings, log: RequestLog, scripts: ScriptBook, limiter: RateLimiter
    ) -> None:
        self.settings = settings
        self._log = log
        self._scripts = scripts
        self._limiter = limiter
        self._runner: web.ServerRunner | None = None
        self._closing: asyncio.Event | None = None
        self.base_url = ""

    async def open(self, host: str, port: int) -> str:
        self._closing = asyncio.Event()
        # The request log replaces aiohttp's access log.
        server = _JsonErrorServer(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown}:{bound_port}"
        return self.base_url

    async def close(self) -> None:
        if self._closing is not None:
            # Wakes delayed and streaming answers so they end now instead of at their timers.
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----------------------------------------------------------------------- routing

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        endpoint = _PATHS.get(request.path)
        if endpoint is not None:
            if request.method != "POST":
                return _json(405, {"error": f"{request.path} takes POST"}, {"Allow": "POST"})
            return await self._api(endpoint, request)
        image = parse_image_path(request.path)
        if image is not None:
            if request.method not in ("GET", "HEAD"):
                return _json(405, {"error": "images take GET"}, {"Allow": "GET, HEAD"})
            # Drawn off the loop: a 2048x2048 picture takes a moment, other requests do not wait.
            png = await asyncio.to_thread(
                picture, image.name, image.width, image.height, image.alpha
            )
            return web.Response(body=png, content_type="image/png")
        return _json(404, {"error": f"no such path: {request.path}"})

    async def _api(self, endpoint: _wire.Endpoint, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.content.read()
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        headers: dict[str, str] = {}
        for name, value in raw_headers:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body, violations = parse_body(raw)
        origins = [self.base_url]
        if request.host:
            origins.append(f"http://{request.host}")
        violations = check_headers(raw_headers, origins) + violations
        if isinstance(body, dict):
            violations += check_body(endpoint, body, self.settings.require_project_id_format)

        # One clock reading for the rate limit and the log, so tests can check one with the other.
        now = time.monotonic()
        answer = self._decide(endpoint, body, violations, now)
        self._log.append(
            RecordedRequest(
                endpoint=endpoint.name,
                method=request.method,
                path=request.path,
                headers=headers,
                body=body,
                raw=raw,
                time=now,
                status=answer.status,
                violations=violations,
                rate_limited=answer.rate_limited,
            )
        )
        script = answer.script
        if script is not None and script.delay and not await self._pause(script.delay):
            return _abort(request)
        if script is not None and script.drop:
            return _abort(request)
        if script is not None and script.body_size is not None:
            return await self._stream(request, script)
        assert answer.response is not None
        return answer.response

    def _decide(
        self, endpoint: _wire.Endpoint, body: Any, violations: list[str], now: float
    ) -> _Answer:
        """What a request gets, in order: 400 for a contract violation (strict mode), 429 from
        the rate limit, the next script or injected fault, the usual answer.

        The contract check is the emulator's own, so a 400 takes no token; the rate limit
        stands in for Websim's front door, so a 429 uses up no script.
        """
        if violations and self.settings.strict:
            broken = {"error": "the request breaks the Websim contract", "violations": violations}
            return _Answer(_json(400, broken))
        refused = self._limiter.take(endpoint.name, now)
        if refused is not None:
            # The same shape as an injected fault's body, with the text Websim is quoted with.
            error = {"error": RATE_LIMIT_ERROR, "status": 429}
            return _Answer(_json(429, error, refused.retry_after_header), rate_limited=True)
        script = self._scripts.next(endpoint.name)
        if script is None:
            return _Answer(self._default(endpoint, body))
        # None for drop and body_size scripts: those are answered after the script's delay.
        return _Answer(self._scripted(endpoint, script, body), script)

    # ----------------------------------------------------------------------- answers

    def _scripted(
        self, endpoint: _wire.Endpoint, script: Script, body: Any
    ) -> web.StreamResponse | None:
        if script.drop or script.body_size is not None:
            return None
        if script.body is None:
            if 200 <= script.status < 300:
                answer = self._default(endpoint, body)
                answer.set_status(script.status)
                answer.headers.update(script.headers)
                return answer
            return _json(script.status, {"error": f"scripted {script.status}"}, script.headers)
        # The header is set verbatim: scripts test how clients cope with odd content types.
        headers = CIMultiDict(script.headers)
        headers["Content-Type"] = script.content_type or "application/json"
        return web.Response(status=script.status, body=script.body, headers=headers)

    def _default(self, endpoint: _wire.Endpoint, body: Any) -> web.Response:
        data = body if isinstance(body, dict) else {}
        if endpoint is _wire.IMAGE:
            return _json(200, {"url": self.base_url + image_path(data)})
        messages = data.get("messages")
        responder = self.settings.chat_responder
        if responder is None:
            json_mode = data.get("json") is True
            return _json(200, {"content": (json_answer if json_mode else echo_answer)(messages)})
        try:
            answer = responder(messages if isinstance(messages, list) else [], data)
        except Exception as exc:
            logger.exception("the emulator's chat responder raised")
            return _json(500, {"error": f"chat responder raised {type(exc).__name__}: {exc}"})
        if isinstance(answer, str):
            return _json(200, {"content": answer})
        if isinstance(answer, dict):
            return _json(200, answer)
        return _json(
            500, {"error": f"chat responder returned {type(answer).__name__}, expected str or dict"}
        )

    async def _pause(self, delay: float) -> bool:
        """Sleep without blocking other requests; False if the emulator stops meanwhile."""
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._closing.wait()
                return False
        return True

    async def _stream(self, request: web.BaseRequest, script: Script) -> web.StreamResponse:
        assert self._closing is not None and script.body_size is not None
        headers = CIMultiDict(script.headers)
        headers["Content-Type"] = script.content_type or "application/octet-stream"
        resp = web.StreamResponse(status=script.status, headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        left = script.body_size
        try:
            while left > 0 and not self._closing.is_set():
                piece = _FILLER_CHUNK if left >= len(_FILLER_CHUNK) else _FILLER_CHUNK[:left]
                await resp.write(piece)
                left -= len(piece)
            if left:
                return _abort(request)
            await resp.write_eof()
        except ConnectionError:
            # The client stopped reading (a size cap, a timeout): nothing left to answer.
            return _abort(request)
        return resp


class _JsonErrorHandler(RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 400 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # A malformed request is an expected test input here, not a server fault: answer it
        # like any other contract violation, without an error-level traceback.
        self.logger.debug("malformed request refused by the HTTP parser", exc_info=exc)
        problem = " ".join(str(message or exc).split())
        resp = _json(400, {"error": "malformed HTTP request", "violations": [problem]})
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


def _abort(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection without (finishing) an answer; the client sees a disconnect."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Never sent: writing it to the aborted transport fails, which aiohttp treats as the
    # client having gone away (logged at debug level only).
    return web.Response(status=499)
