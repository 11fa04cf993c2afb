"""The fault matrix through the public classes: ``ChatWebsim`` (chat, and ``flux`` image
generation) and ``WebsimImageTool``, against the emulator over real sockets.

The same rows as ``test_fault_matrix.py`` (which drives ``WebsimClient``), one test per row,
each run on every surface the row applies to, counting the requests the emulator received.
``ChatWebsim`` raises the typed error itself; the tool turns it into a message for the model
(``handle_tool_error=True``, the default), so for the tool every failing row is run twice:
once for the message, once with ``handle_tool_error=False`` for the chained typed error.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.tools import ToolException

from langchain_websim import ChatWebsim, WebsimImageTool, _wire
from langchain_websim._wire import EndpointName
from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimError,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.conftest import run_script_in_dev_mode

CHAT, FLUX, TOOL = "ChatWebsim", "ChatWebsim(flux)", "WebsimImageTool"
SURFACES = [CHAT, FLUX, TOOL]
IMAGE_SURFACES = [FLUX, TOOL]
ENDPOINT: dict[str, EndpointName] = {CHAT: "chat", FLUX: "image", TOOL: "image"}
CHALLENGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><div id='cf-chl-widget'></div></body></html>"
)
MiB = 1024 * 1024


@dataclass
class Failure:
    error: WebsimError
    message: str | None  # what the tool handed the model; None for ChatWebsim
    requests: int  # requests the emulator received for one call
    elapsed: float  # seconds the (slowest) call took


class Public:
    """Builds the public objects against one emulator and drives them the same way."""

    def __init__(self, emulator: WebsimEmulator) -> None:
        self.emulator = emulator
        self._made: list[ChatWebsim | WebsimImageTool] = []

    def make(self, surface: str, **settings: Any) -> Any:
        settings.setdefault("base_url", self.emulator.base_url)
        settings.setdefault("retry_base_delay", 0.01)
        obj: ChatWebsim | WebsimImageTool
        if surface == TOOL:
            obj = WebsimImageTool(**settings)
        else:
            obj = ChatWebsim(model="flux" if surface == FLUX else "gemini-1.5-pro", **settings)
        self._made.append(obj)
        return obj

    async def answer(self, surface: str, text: str = "hello there", **settings: Any) -> str:
        """One successful ``ainvoke``; checks and returns the answer text or image URL."""
        return self.check(
            surface, await self.make(surface, **settings).ainvoke(self.arg(surface, text)), text
        )

    @staticmethod
    def arg(surface: str, text: str) -> Any:
        return {"prompt": text} if surface == TOOL else text

    def check(self, surface: str, result: Any, text: str) -> str:
        if surface == CHAT:
            assert isinstance(result, BaseMessage)
            assert result.content == f"Echo: {text}"
            return result.content
        url = result if surface == TOOL else result.response_metadata["image_url"]
        assert isinstance(url, str), result
        assert url.startswith(self.emulator.base_url + "/images/")
        return url

    async def failure(self, surface: str, script: Callable[[], None], **settings: Any) -> Failure:
        """Script the fault, make one call, and return what the caller got."""
        requests = self.emulator.requests
        if surface != TOOL:
            script()
            started = time.perf_counter()
            with pytest.raises(WebsimError) as info:
                await self.make(surface, **settings).ainvoke("hello there")
            elapsed = time.perf_counter() - started
            return Failure(info.value, None, len(self.emulator.requests) - len(requests), elapsed)
        script()
        started = time.perf_counter()
        message = await self.make(TOOL, **settings).ainvoke({"prompt": "hello there"})
        handled_elapsed = time.perf_counter() - started
        handled = len(self.emulator.requests) - len(requests)
        assert isinstance(message, str) and message.startswith("Image generation failed: ")
        script()
        started = time.perf_counter()
        with pytest.raises(ToolException) as raised:
            await self.make(TOOL, handle_tool_error=False, **settings).ainvoke(
                {"prompt": "hello there"}
            )
        elapsed = max(handled_elapsed, time.perf_counter() - started)
        assert str(raised.value) == message
        assert len(self.emulator.requests) - len(requests) == 2 * handled
        cause = raised.value.__cause__
        assert isinstance(cause, WebsimError)
        return Failure(cause, message, handled, elapsed)

    def close(self) -> None:
        for obj in self._made:
            client = obj._shared_client
            if client is not None:
                client.close()


@pytest.fixture
def public(emulator: WebsimEmulator) -> Iterator[Public]:
    driver = Public(emulator)
    yield driver
    driver.close()


def statuses(emulator: WebsimEmulator, surface: str) -> list[int | None]:
    return [r.status for r in emulator.requests_for(ENDPOINT[surface])]


def measured(row: str, **values: object) -> None:
    print(f"\nMEASURED {row}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("surface", SURFACES)
async def test_429_429_then_200_is_answered_in_3_requests(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    emulator.enqueue(ENDPOINT[surface], status=429, json={"error": "slow down"}, times=2)
    await public.answer(surface, max_retries=2)
    assert statuses(emulator, surface) == [429, 429, 200]
    measured("429,429,200", surface=surface, requests=3)


@pytest.mark.parametrize("surface", SURFACES)
async def test_429_every_time_is_a_rate_limit_error_after_exactly_3_requests(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    def script() -> None:
        emulator.enqueue(ENDPOINT[surface], status=429, json={"error": "slow down"}, times=3)

    failure = await public.failure(surface, script, max_retries=2)
    assert isinstance(failure.error, WebsimRateLimitError)
    assert failure.error.status_code == 429
    assert failure.error.attempts == 3
    assert failure.requests == 3
    if surface == TOOL:
        assert failure.message == (
            "Image generation failed: rate limited after 3 attempts; wait a minute before retrying."
        )
    measured("429 always", surface=surface, requests=failure.requests)


@pytest.mark.parametrize("surface", SURFACES)
async def test_retry_after_1_is_waited_for_before_the_second_request(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    emulator.enqueue(ENDPOINT[surface], status=429, headers={"Retry-After": "1"})
    await public.answer(surface, retry_base_delay=0.01)
    first, second = emulator.requests
    gap = second.time - first.time
    assert gap >= 1.0
    measured("Retry-After: 1", surface=surface, requests=2, gap_s=f"{gap:.3f}")


@pytest.mark.parametrize("surface", SURFACES)
async def test_retry_after_past_the_cap_fails_at_once_with_retry_after(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    def script() -> None:
        emulator.enqueue(ENDPOINT[surface], status=429, headers={"Retry-After": "3600"})

    failure = await public.failure(surface, script, max_retries=5, retry_max_delay=30)
    assert isinstance(failure.error, WebsimRateLimitError)
    assert failure.error.retry_after == 3600
    assert failure.requests == 1
    if surface == TOOL:
        assert failure.message == "Image generation failed: rate limited; retry after 3600 s."
    measured("Retry-After: 3600", surface=surface, requests=1, elapsed_s=f"{failure.elapsed:.3f}")


# --------------------------------------------------------------------------- other statuses


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("surface", SURFACES)
async def test_5xx_then_200_is_answered(
    public: Public, emulator: WebsimEmulator, surface: str, status: int
) -> None:
    emulator.enqueue(ENDPOINT[surface], status=status)
    await public.answer(surface)
    assert statuses(emulator, surface) == [status, 200]
    measured(f"{status},200", surface=surface, requests=2)


@pytest.mark.parametrize("status", [400, 404, 422])
@pytest.mark.parametrize("surface", SURFACES)
async def test_4xx_is_an_api_error_with_status_and_body_after_1_request(
    public: Public, emulator: WebsimEmulator, surface: str, status: int
) -> None:
    detail = f"request refused ({status}): unknown field"

    def script() -> None:
        emulator.enqueue(ENDPOINT[surface], status=status, json={"error": detail})

    failure = await public.failure(surface, script, max_retries=3)
    assert type(failure.error) is WebsimAPIError
    assert failure.error.status_code == status
    assert detail in failure.error.body
    assert failure.requests == 1
    if surface == TOOL:
        assert failure.message is not None
        assert f"rejected the request with HTTP {status}: " in failure.message
        assert detail in failure.message
    measured(f"{status}", surface=surface, requests=1)


@pytest.mark.parametrize("surface", SURFACES)
async def test_403_challenge_page_is_blocked_after_1_request(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    def script() -> None:
        emulator.enqueue(ENDPOINT[surface], status=403, body=CHALLENGE, content_type="text/html")

    failure = await public.failure(surface, script, max_retries=3)
    assert isinstance(failure.error, WebsimBlockedError)
    assert failure.error.status_code == 403
    assert failure.requests == 1
    if surface == TOOL:
        assert failure.message is not None
        assert "blocked by a challenge page (HTTP 403)" in failure.message
    measured("403 challenge", surface=surface, requests=1)


# --------------------------------------------------------------------------- unusable 200s

_UNUSABLE: dict[str, tuple[dict[str, Any], str]] = {
    "text/html page": (
        {"body": "<html><body>maintenance</body></html>", "content_type": "text/html"},
        "HTML page",
    ),
    "invalid JSON": ({"body": '{"url": "ht', "content_type": "application/json"}, "not valid JSON"),
    "JSON array": ({"json": [{"content": "hi"}]}, "got an array"),
    "content null": ({"json": {"content": None}}, "'content' is null"),
    "content a number": ({"json": {"content": 42}}, "'content' is a number"),
    "content white space": ({"json": {"content": " \n "}}, "'content' is empty"),
    "image without url": ({"json": {"image": "https://cdn.example/x.png"}}, "no 'url' field"),
    "url relative": ({"json": {"url": "/images/x.png"}}, "not an absolute http(s) URL"),
    "url javascript:": ({"json": {"url": "javascript:alert(1)"}}, "not an absolute http(s) URL"),
    "url data:": ({"json": {"url": "data:image/png;base64,AAAA"}}, "not an absolute http(s) URL"),
}
_ANY_ENDPOINT = ("text/html page", "invalid JSON", "JSON array")
_CHAT_ONLY = ("content null", "content a number", "content white space")
_IMAGE_ONLY = ("image without url", "url relative", "url javascript:", "url data:")


@pytest.mark.parametrize(
    ("surface", "case"),
    [(s, c) for s in SURFACES for c in _ANY_ENDPOINT]
    + [(CHAT, c) for c in _CHAT_ONLY]
    + [(s, c) for s in IMAGE_SURFACES for c in _IMAGE_ONLY],
)
async def test_unusable_200_is_a_response_error(
    public: Public, emulator: WebsimEmulator, surface: str, case: str
) -> None:
    script_args, problem = _UNUSABLE[case]

    def script() -> None:
        emulator.enqueue(ENDPOINT[surface], **script_args)

    failure = await public.failure(surface, script, max_retries=3)
    assert isinstance(failure.error, WebsimResponseError)
    assert problem in str(failure.error)
    assert failure.requests == 1
    if surface == TOOL:
        assert failure.message is not None
        assert "the image service sent an unusable answer (" in failure.message
        assert problem in failure.message
    measured(f"200 {case}", surface=surface, requests=1)


# --------------------------------------------------------------------------- no answer


@pytest.mark.parametrize("surface", SURFACES)
async def test_dropped_connection_then_200_is_answered(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    emulator.enqueue(ENDPOINT[surface], drop=True)
    await public.answer(surface)
    assert statuses(emulator, surface) == [None, 200]
    measured("dropped,200", surface=surface, requests=2)


@pytest.mark.parametrize("surface", SURFACES)
async def test_slower_than_timeout_every_time_is_a_timeout_error_in_bounded_time(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    def script() -> None:
        emulator.enqueue(ENDPOINT[surface], delay=30, times=3)

    failure = await public.failure(surface, script, timeout=0.3, max_retries=2)
    # attempts x timeout + the longest backoff (0.02 s + 0.04 s) + 1 s
    bound = 3 * 0.3 + 0.06 + 1.0
    assert isinstance(failure.error, WebsimTimeoutError)
    assert failure.error.attempts == 3
    assert failure.requests == 3
    assert failure.elapsed <= bound
    if surface == TOOL:
        assert failure.message == (
            "Image generation failed: timed out after 3 attempts of 0.3 s each; try again later."
        )
    measured(
        "slower than timeout",
        surface=surface,
        requests=failure.requests,
        elapsed_s=f"{failure.elapsed:.3f}",
        bound_s=f"{bound:.2f}",
    )


@pytest.mark.parametrize("surface", SURFACES)
async def test_nothing_listening_is_a_connection_error(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    failure = await public.failure(surface, lambda: None, base_url=url, max_retries=2)
    assert type(failure.error) is WebsimConnectionError
    assert failure.error.attempts == 3
    assert emulator.requests == []
    if surface == TOOL:
        assert failure.message == (
            "Image generation failed: could not reach the image service after 3 attempts; "
            "try again later."
        )
    measured("nothing listening", surface=surface, attempts=3, elapsed_s=f"{failure.elapsed:.3f}")


# --------------------------------------------------------------------------- huge body


@pytest.mark.parametrize("surface", SURFACES)
async def test_body_over_the_cap_is_refused_without_holding_it(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    await public.answer(surface)  # pool and session exist already

    def script() -> None:
        emulator.enqueue(ENDPOINT[surface], body_size=50 * MiB)

    tracemalloc.start()
    try:
        failure = await public.failure(surface, script)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(failure.error, WebsimResponseError)
    assert "exceeds the 10 MiB cap" in str(failure.error)
    assert failure.requests == 1
    assert peak < 1.5 * _wire.MAX_BODY_BYTES
    if surface == TOOL:
        assert failure.message is not None and "exceeds the 10 MiB cap" in failure.message
    measured("body 50 MiB", surface=surface, requests=1, peak_MiB=f"{peak / MiB:.1f}")


# --------------------------------------------------------------------------- the caller's side


@pytest.mark.parametrize("surface", SURFACES)
async def test_ainvoke_cancelled_mid_request_propagates_and_the_instance_still_works(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    runnable = public.make(surface)
    emulator.enqueue(ENDPOINT[surface], delay=30)
    task = asyncio.create_task(runnable.ainvoke(public.arg(surface, "held")))
    await emulator.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    public.check(surface, await runnable.ainvoke(public.arg(surface, "next")), "next")
    assert statuses(emulator, surface) == [200, 200]
    measured("cancelled", surface=surface, requests=2)


@pytest.mark.parametrize("surface", SURFACES)
async def test_200_concurrent_calls_with_30_percent_429_are_all_answered(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    calls = 200
    emulator.set_fault_rate(ENDPOINT[surface], 0.3, status=429, seed=2024)
    runnable = public.make(surface, max_retries=30, retry_base_delay=0.005, retry_max_delay=0.05)
    texts = [f"call {i}" for i in range(calls)]
    results = await asyncio.gather(*(runnable.ainvoke(public.arg(surface, t)) for t in texts))
    for text, result in zip(texts, results, strict=True):
        public.check(surface, result, text)
    seen = statuses(emulator, surface)
    rate_limited = seen.count(429)
    assert seen.count(200) == calls
    assert rate_limited > 0
    assert len(seen) == calls + rate_limited
    measured("200 concurrent", surface=surface, requests=len(seen), answered_429=rate_limited)


@pytest.mark.parametrize("surface", SURFACES)
async def test_sync_invoke_from_8_threads_while_the_main_loop_runs(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    runnable = public.make(surface)
    barrier = threading.Barrier(8)
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = runnable.invoke(public.arg(surface, f"thread {i}"))
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    # The main thread's loop stays live meanwhile: it makes a call of its own.
    public.check(surface, await runnable.ainvoke(public.arg(surface, "main")), "main")
    for thread in threads:
        await asyncio.to_thread(thread.join)
    for i in range(8):
        assert not isinstance(results[i], BaseException), results[i]
        public.check(surface, results[i], f"thread {i}")
    assert statuses(emulator, surface) == [200] * 9
    measured("8 threads + loop", surface=surface, requests=9)


@pytest.mark.parametrize("surface", SURFACES)
def test_one_instance_in_two_asyncio_runs(
    public: Public, emulator: WebsimEmulator, surface: str
) -> None:
    runnable = public.make(surface)
    first = asyncio.run(runnable.ainvoke(public.arg(surface, "first run")))
    second = asyncio.run(runnable.ainvoke(public.arg(surface, "second run")))
    public.check(surface, first, "first run")
    public.check(surface, second, "second run")
    assert statuses(emulator, surface) == [200, 200]
    gc.collect()  # an unclosed session of the first loop would warn here (an error in pytest)
    measured("two asyncio.run", surface=surface, requests=2)


_SCRIPT = """
import asyncio
from langchain_websim import ChatWebsim, WebsimImageTool

chat = ChatWebsim(retry_base_delay=0.01)
print(chat.invoke("sync").content)
print(asyncio.run(chat.ainvoke("async")).content)
flux = ChatWebsim(model="flux")
print(flux.invoke("a cat").response_metadata["image_url"])
tool = WebsimImageTool()
print(tool.invoke({"prompt": "a dog"}))
print(asyncio.run(tool.ainvoke({"prompt": "a fox"})))
"""


def test_a_script_that_never_closes_exits_cleanly(emulator: WebsimEmulator) -> None:
    proc = run_script_in_dev_mode(_SCRIPT, base_url=emulator.base_url)
    assert proc.stderr == ""
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["Echo: sync", "Echo: async"]
    assert len(lines) == 5
    assert all(url.startswith(emulator.base_url + "/images/") for url in lines[2:])
    assert [r.endpoint for r in emulator.requests] == ["chat", "chat", "image", "image", "image"]
    measured("script without close", exit=proc.returncode, stderr=repr(proc.stderr), requests=5)
