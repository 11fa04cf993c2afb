"""The fault matrix through ``WebsimClient``, against the emulator over real sockets.

One test per row of the table in ``docs/reliability.md`` (the same rows through
``ChatWebsim`` and ``WebsimImageTool`` are in ``test_fault_matrix_public.py``).  Every row
counts the requests the emulator received.  Each test prints one ``MEASURED`` line with
what it observed; ``pytest -s -k fault_matrix`` shows them, and the table's "measured"
column is copied from them.
"""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import WebsimChatResponse, WebsimClient, WebsimImageResponse, _wire
from langchain_websim._wire import EndpointName
from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.conftest import run_script_in_dev_mode

ENDPOINTS: list[EndpointName] = ["chat", "image"]
CHALLENGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><div id='cf-chl-widget'></div></body></html>"
)
MiB = 1024 * 1024

Answer = WebsimChatResponse | WebsimImageResponse
ClientFactory = Callable[..., WebsimClient]


def call(
    client: WebsimClient, endpoint: EndpointName, text: str = "hello there"
) -> Coroutine[Any, Any, Answer]:
    if endpoint == "chat":
        return client.achat([{"role": "user", "content": text}])
    return client.agenerate_image(text)


def check_answer(answer: Answer, emulator: WebsimEmulator, text: str = "hello there") -> None:
    if isinstance(answer, WebsimChatResponse):
        assert answer.text == f"Echo: {text}"
    else:
        assert answer.url.startswith(emulator.base_url + "/images/")
        assert answer.prompt == text


def statuses(emulator: WebsimEmulator, endpoint: EndpointName) -> list[int | None]:
    return [r.status for r in emulator.requests_for(endpoint)]


def measured(row: str, **values: object) -> None:
    print(f"\nMEASURED {row}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def max_backoff(client: WebsimClient) -> float:
    """The longest the retry loop may sleep in total (jitter only shortens the waits)."""
    policy = client.retry
    return sum(
        min(policy.max_delay, policy.base_delay * 2.0**n) for n in range(1, policy.max_attempts)
    )


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_429_429_then_200_is_answered_in_3_requests(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    emulator.enqueue(endpoint, status=429, json={"error": "slow down"}, times=2)
    answer = await call(make_client(max_retries=2), endpoint)
    check_answer(answer, emulator)
    assert answer.attempts == 3
    assert statuses(emulator, endpoint) == [429, 429, 200]
    measured("429,429,200", endpoint=endpoint, requests=len(emulator.requests))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_429_every_time_is_a_rate_limit_error_after_exactly_3_requests(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    emulator.enqueue(endpoint, status=429, json={"error": "slow down"}, times=None)
    with pytest.raises(WebsimRateLimitError) as info:
        await call(make_client(max_retries=2), endpoint)
    assert info.value.status_code == 429
    assert info.value.attempts == 3
    assert "slow down" in info.value.body
    assert statuses(emulator, endpoint) == [429, 429, 429]
    measured("429 always", endpoint=endpoint, requests=len(emulator.requests))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_retry_after_1_is_waited_for_before_the_second_request(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    emulator.enqueue(endpoint, status=429, headers={"Retry-After": "1"})
    # Backoff alone would retry after ~0.02 s: only the header can explain a 1 s gap.
    answer = await call(make_client(retry_base_delay=0.01), endpoint)
    check_answer(answer, emulator)
    first, second = emulator.requests_for(endpoint)
    gap = second.time - first.time
    assert gap >= 1.0
    measured("Retry-After: 1", endpoint=endpoint, requests=2, gap_s=f"{gap:.3f}")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_retry_after_past_the_cap_fails_at_once_with_retry_after(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    emulator.enqueue(endpoint, status=429, headers={"Retry-After": "3600"}, times=None)
    started = time.perf_counter()
    with pytest.raises(WebsimRateLimitError) as info:
        await call(make_client(max_retries=5, retry_max_delay=30), endpoint)
    elapsed = time.perf_counter() - started
    assert info.value.retry_after == 3600
    assert info.value.attempts == 1
    assert "retry after 3600 s" in str(info.value)
    assert len(emulator.requests) == 1
    measured("Retry-After: 3600", endpoint=endpoint, requests=1, elapsed_s=f"{elapsed:.3f}")


# --------------------------------------------------------------------------- other statuses


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_5xx_then_200_is_answered(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName, status: int
) -> None:
    emulator.enqueue(endpoint, status=status)
    answer = await call(make_client(), endpoint)
    check_answer(answer, emulator)
    assert answer.attempts == 2
    assert statuses(emulator, endpoint) == [status, 200]
    measured(f"{status},200", endpoint=endpoint, requests=2)


@pytest.mark.parametrize("status", [400, 404, 422])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_4xx_is_an_api_error_with_status_and_body_after_1_request(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName, status: int
) -> None:
    detail = f"request refused ({status}): unknown field"
    emulator.enqueue(endpoint, status=status, json={"error": detail})
    with pytest.raises(WebsimAPIError) as info:
        await call(make_client(max_retries=3), endpoint)
    err = info.value
    assert type(err) is WebsimAPIError
    assert err.status_code == status
    assert detail in err.body
    assert f"HTTP {status}" in str(err) and detail in str(err)
    assert len(emulator.requests) == 1
    measured(f"{status}", endpoint=endpoint, requests=1)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_403_challenge_page_is_blocked_after_1_request(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    emulator.enqueue(endpoint, status=403, body=CHALLENGE, content_type="text/html")
    with pytest.raises(WebsimBlockedError) as info:
        await call(make_client(max_retries=3), endpoint)
    assert info.value.status_code == 403
    assert "Just a moment" in info.value.body
    assert "bot-protection challenge" in str(info.value)
    assert len(emulator.requests) == 1
    measured("403 challenge", endpoint=endpoint, requests=1)


# --------------------------------------------------------------------------- unusable 200s

_UNUSABLE_BODIES = {
    "text/html page": (
        {"body": "<html><body>maintenance</body></html>", "content_type": "text/html"},
        "HTML page",
    ),
    "invalid JSON": (
        {"body": '{"content": "cut', "content_type": "application/json"},
        "not valid JSON",
    ),
    "JSON array": ({"json": [{"content": "hi"}]}, "expected a JSON object, got an array"),
}
_UNUSABLE_CHAT = {
    "content null": ({"json": {"content": None}}, "'content' is null"),
    "content a number": ({"json": {"content": 42}}, "'content' is a number"),
    "content white space": ({"json": {"content": " \n "}}, "'content' is empty"),
}


@pytest.mark.parametrize(
    ("endpoint", "case"),
    [(e, c) for e in ENDPOINTS for c in _UNUSABLE_BODIES] + [("chat", c) for c in _UNUSABLE_CHAT],
)
async def test_unusable_200_is_a_response_error(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName, case: str
) -> None:
    script, problem = {**_UNUSABLE_BODIES, **_UNUSABLE_CHAT}[case]
    emulator.enqueue(endpoint, **script)
    with pytest.raises(WebsimResponseError) as info:
        await call(make_client(max_retries=3), endpoint)
    assert problem in str(info.value)
    assert info.value.status_code == 200
    assert info.value.attempts == 1
    assert len(emulator.requests) == 1  # an answer that arrived is not asked for again
    measured(f"200 {case}", endpoint=endpoint, requests=1)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"image": "https://cdn.example/x.png"}, "no 'url' field"),
        ({"url": "/images/relative.png"}, "not an absolute http(s) URL"),
        ({"url": "javascript:alert(document.cookie)"}, "not an absolute http(s) URL"),
        ({"url": "data:image/png;base64,iVBORw0KGgo="}, "not an absolute http(s) URL"),
    ],
)
async def test_image_200_without_a_usable_url_is_a_response_error(
    emulator: WebsimEmulator, make_client: ClientFactory, payload: dict[str, str], problem: str
) -> None:
    emulator.enqueue("image", json=payload)
    with pytest.raises(WebsimResponseError) as info:
        await make_client(max_retries=3).agenerate_image("a cat")
    assert problem in str(info.value)
    assert info.value.endpoint == "image"
    assert len(emulator.requests) == 1
    measured(f"image {payload}", requests=1)


# --------------------------------------------------------------------------- no answer


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_dropped_connection_then_200_is_answered(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    emulator.enqueue(endpoint, drop=True)
    answer = await call(make_client(), endpoint)
    check_answer(answer, emulator)
    assert answer.attempts == 2
    assert statuses(emulator, endpoint) == [None, 200]
    measured("dropped,200", endpoint=endpoint, requests=2)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_slower_than_timeout_every_time_is_a_timeout_error_in_bounded_time(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    emulator.enqueue(endpoint, delay=30, times=None)
    client = make_client(timeout=0.3, max_retries=2, retry_base_delay=0.01)
    started = time.perf_counter()
    with pytest.raises(WebsimTimeoutError) as info:
        await call(client, endpoint)
    elapsed = time.perf_counter() - started
    attempts = 1 + client.max_retries
    bound = attempts * client.timeout + max_backoff(client) + 1.0
    assert info.value.attempts == attempts
    assert info.value.timeout == 0.3
    assert elapsed <= bound
    assert len(await emulator.wait_for_requests(attempts)) == attempts
    measured(
        "slower than timeout",
        endpoint=endpoint,
        requests=len(emulator.requests),
        elapsed_s=f"{elapsed:.3f}",
        bound_s=f"{bound:.2f}",
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_nothing_listening_is_a_connection_error(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{closed_port()}", max_retries=2)
    started = time.perf_counter()
    with pytest.raises(WebsimConnectionError) as info:
        await call(client, endpoint)
    elapsed = time.perf_counter() - started
    assert type(info.value) is WebsimConnectionError
    assert info.value.attempts == 3
    assert "connection failed" in str(info.value)
    assert emulator.requests == []
    measured("nothing listening", endpoint=endpoint, attempts=3, elapsed_s=f"{elapsed:.3f}")


# --------------------------------------------------------------------------- huge body


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_body_over_the_cap_is_refused_without_holding_it(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    client = make_client()
    check_answer(await call(client, endpoint), emulator)  # pool and session exist already
    body_size = 50 * MiB
    emulator.enqueue(endpoint, body_size=body_size)
    tracemalloc.start()
    try:
        with pytest.raises(WebsimResponseError, match="exceeds the 10 MiB cap") as info:
            await call(client, endpoint)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The cap itself may be held while reading; the 50 MiB body never is, and the error
    # (alive here, with its traceback) does not keep what was read.
    assert peak < 1.5 * _wire.MAX_BODY_BYTES
    assert held < 2 * MiB
    assert info.value.attempts == 1
    assert len(info.value.body) <= _wire.EXCERPT_CHARS
    assert len(emulator.requests) == 2
    check_answer(await call(client, endpoint), emulator)
    measured(
        "body 50 MiB",
        endpoint=endpoint,
        requests=1,
        peak_MiB=f"{peak / MiB:.1f}",
        held_after_MiB=f"{held / MiB:.2f}",
    )


# --------------------------------------------------------------------------- the caller's side


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_cancelled_mid_request_propagates_and_the_client_still_works(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    client = make_client()
    emulator.enqueue(endpoint, delay=30)
    task = asyncio.create_task(call(client, endpoint, "held"))
    await emulator.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    check_answer(await call(client, endpoint, "next"), emulator, "next")
    assert statuses(emulator, endpoint) == [200, 200]
    measured("cancelled", endpoint=endpoint, requests=len(emulator.requests))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_200_concurrent_calls_with_30_percent_429_are_all_answered(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    calls = 200
    emulator.set_fault_rate(endpoint, 0.3, status=429, seed=2024)
    client = make_client(max_retries=30, retry_base_delay=0.005, retry_max_delay=0.05)
    answers = await asyncio.gather(*(call(client, endpoint, f"call {i}") for i in range(calls)))
    for i, answer in enumerate(answers):
        check_answer(answer, emulator, f"call {i}")
    seen = statuses(emulator, endpoint)
    rate_limited = seen.count(429)
    assert seen.count(200) == calls
    assert rate_limited > 0
    assert len(seen) == calls + rate_limited
    assert sum(a.attempts for a in answers) == len(seen)
    measured("200 concurrent", endpoint=endpoint, requests=len(seen), answered_429=rate_limited)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_sync_calls_from_8_threads_while_the_main_loop_runs(
    emulator: WebsimEmulator, make_client: ClientFactory, endpoint: EndpointName
) -> None:
    client = make_client()
    barrier = threading.Barrier(8)
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        barrier.wait()
        try:
            if endpoint == "chat":
                results[i] = client.chat([{"role": "user", "content": f"thread {i}"}])
            else:
                results[i] = client.generate_image(f"thread {i}")
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    # The main thread's loop stays live meanwhile: it makes a call of its own.
    check_answer(await call(client, endpoint, "main loop"), emulator, "main loop")
    for thread in threads:
        await asyncio.to_thread(thread.join)
    for i in range(8):
        answer = results[i]
        assert isinstance(answer, WebsimChatResponse | WebsimImageResponse), answer
        check_answer(answer, emulator, f"thread {i}")
    assert len(emulator.requests) == 9
    measured("8 threads + loop", endpoint=endpoint, requests=9)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_one_client_in_two_asyncio_runs(emulator: WebsimEmulator, endpoint: EndpointName) -> None:
    client = WebsimClient(emulator.base_url, retry_base_delay=0.01)
    try:
        first = asyncio.run(call(client, endpoint, "first run"))
        second = asyncio.run(call(client, endpoint, "second run"))
    finally:
        client.close()
    check_answer(first, emulator, "first run")
    check_answer(second, emulator, "second run")
    assert statuses(emulator, endpoint) == [200, 200]
    gc.collect()  # an unclosed session of the first loop would warn here (an error in pytest)
    measured("two asyncio.run", endpoint=endpoint, requests=2)


_SCRIPT = """
import asyncio
from langchain_websim import WebsimClient

client = WebsimClient(retry_base_delay=0.01)
print(client.chat([{"role": "user", "content": "sync"}]).text)
print(asyncio.run(client.achat([{"role": "user", "content": "async"}])).text)
print(client.generate_image("a cat").url)
other = WebsimClient(retry_base_delay=0.01)
print(asyncio.run(other.agenerate_image("a dog")).url)
print(other.chat([{"role": "user", "content": "after asyncio.run"}]).text)
"""


def test_a_script_that_never_closes_exits_cleanly(emulator: WebsimEmulator) -> None:
    proc = run_script_in_dev_mode(_SCRIPT, base_url=emulator.base_url)
    assert proc.stderr == ""
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "Echo: sync" and lines[1] == "Echo: async"
    assert lines[4] == "Echo: after asyncio.run"
    assert all(url.startswith(emulator.base_url + "/images/") for url in (lines[2], lines[3]))
    assert len(emulator.requests) == 5
    measured("script without close", exit=proc.returncode, stderr=repr(proc.stderr), requests=5)


# --------------------------------------------------------------------------- the docs page

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def test_docs_table_names_every_row_test_and_its_code_runs(
    emulator: WebsimEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration_tests import test_fault_matrix_public as public

    text = DOC.read_text(encoding="utf-8")
    table = text.split("## The fault matrix", 1)[1].split("### Running the matrix", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 18  # the header and the 18 rows
    named = set(re.findall(r"`(test_\w+)`", table))
    defined = {
        name
        for module in (sys.modules[__name__], public)
        for name in vars(module)
        if name.startswith("test_")
    }
    assert named <= defined  # every test the page names exists...
    assert defined - named == {
        "test_docs_table_names_every_row_test_and_its_code_runs"
    }  # ...and vice versa
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 2
    monkeypatch.setenv("WEBSIM_BASE_URL", emulator.base_url)
    emulator.enqueue("chat", status=200)  # the first block's answer
    emulator.enqueue("chat", status=429, headers={"Retry-After": "3600"})  # the second's
    namespace: dict[str, Any] = {"__name__": "reliability_docs"}
    try:
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"{DOC.name} python block {number}", "exec"), namespace)
    finally:
        llm = namespace.get("llm")
        if llm is not None and llm._shared_client is not None:
            llm._shared_client.close()
    out = capsys.readouterr().out.splitlines()
    assert out == ["Echo: Say hello", "rate limited after 1 attempt(s); next try in 3600 s"]
