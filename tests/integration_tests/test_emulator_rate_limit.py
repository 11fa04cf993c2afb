"""The emulator's rate limit (a token bucket per endpoint), over loopback.

Raw answers are read with plain aiohttp, or with ``WebsimClient(max_retries=0,
adaptive_rate=False)``, so no retry or pacing hides a 429. Rates are chosen so that a burst
sent back to back finishes long before a token could refill; the only waits are for a refill
or a ``Retry-After``, which is the behaviour under test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient
from langchain_websim.errors import WebsimRateLimitError
from langchain_websim.testing import RateLimit, RecordedRequest, WebsimEmulator
from tests.integration_tests.emulator_http import USER, chat_request, image_request, post

RATE_LIMITED = {"error": "Rate limit exceeded", "status": 429}


async def statuses(http: aiohttp.ClientSession, emu: WebsimEmulator, n: int) -> list[int]:
    """Statuses of ``n`` chat requests sent one after the other."""
    return [(await post(http, chat_request(emu)))[0] for _ in range(n)]


def bucket_replay(records: Sequence[RecordedRequest], limit: RateLimit) -> list[int]:
    """What a token bucket with ``limit`` answers requests arriving at the recorded times.

    The limiter decides with the same clock reading the log records, so the log alone says
    which requests had to be refused.
    """
    tokens, last = float(limit.burst), None
    answers = []
    for record in records:
        if last is not None:
            tokens = min(limit.burst, tokens + (record.time - last) * limit.rate)
        last = record.time
        if tokens >= 1 - 1e-9:
            tokens -= 1
            answers.append(200)
        else:
            answers.append(429)
    return answers


async def test_a_burst_passes_then_429_rate_limit_exceeded(http: aiohttp.ClientSession) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=3) as emu:
        answers = [await post(http, chat_request(emu)) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    _, headers, raw = answers[-1]
    assert json.loads(raw) == RATE_LIMITED
    assert headers["Content-Type"].startswith("application/json")
    assert "Retry-After" not in headers
    assert [(r.status, r.rate_limited) for r in emu.requests] == [
        (200, False),
        (200, False),
        (200, False),
        (429, True),
    ]
    assert emu.rate_limited_count == 1


async def test_concurrent_requests_get_exactly_burst_tokens(http: aiohttp.ClientSession) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=4) as emu:
        answers = await asyncio.gather(*(post(http, chat_request(emu)) for _ in range(10)))
    assert sorted(status for status, _, _ in answers) == [200] * 4 + [429] * 6
    assert emu.rate_limited_count == 6


async def test_each_endpoint_has_its_own_bucket(http: aiohttp.ClientSession) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=1) as emu:
        chat = [(await post(http, chat_request(emu)))[0] for _ in range(2)]
        image = [(await post(http, image_request(emu)))[0] for _ in range(2)]
    assert chat == image == [200, 429]
    assert [r.rate_limited for r in emu.requests_for("image")] == [False, True]
    assert emu.rate_limited_count == 2


async def test_the_bucket_refills_at_the_rate(http: aiohttp.ClientSession) -> None:
    rate = 2.0
    async with WebsimEmulator(rate_limit=rate, burst=2) as emu:
        assert await statuses(http, emu, 3) == [200, 200, 429]
        # Waiting one token's worth of time is the behaviour under test, not a guess.
        await asyncio.sleep(1 / rate)
        assert await statuses(http, emu, 2) == [200, 429]
    records = emu.requests
    assert records[3].time - records[2].time >= 1 / rate
    limit = emu.rate_limit
    assert limit is not None
    assert bucket_replay(records, limit) == [r.status for r in records]


@pytest.mark.parametrize(("retry_after", "header"), [(2, "2"), (0.25, "0.25"), (0, "0")])
async def test_retry_after_header_when_configured(
    http: aiohttp.ClientSession, retry_after: float, header: str
) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=1, retry_after=retry_after) as emu:
        first = await post(http, chat_request(emu))
        status, headers, raw = await post(http, chat_request(emu))
    assert "Retry-After" not in first[1]
    assert (status, headers["Retry-After"], json.loads(raw)) == (429, header, RATE_LIMITED)


async def test_the_client_sees_a_rate_limit_error_with_retry_after() -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=1, retry_after=7) as emu:
        async with WebsimClient(
            base_url=emu.base_url, max_retries=0, adaptive_rate=False
        ) as client:
            assert (await client.achat(USER)).text == "Echo: hello"
            with pytest.raises(WebsimRateLimitError) as caught:
                await client.achat(USER)
    assert (caught.value.status_code, caught.value.retry_after) == (429, 7)
    assert "Rate limit exceeded" in str(caught.value.body)


async def test_a_retrying_client_waits_out_every_retry_after() -> None:
    pause = 0.2
    async with WebsimEmulator(rate_limit=1 / pause, burst=2, retry_after=pause) as emu:
        async with WebsimClient(base_url=emu.base_url, max_retries=5) as client:
            for i in range(5):
                assert (
                    await client.achat([{"role": "user", "content": f"{i}"}])
                ).text == f"Echo: {i}"
    records = emu.requests_for("chat")
    assert emu.rate_limited_count >= 1
    assert [r.status for r in records if not r.rate_limited] == [200] * 5
    for refused, following in itertools.pairwise(records):
        if refused.rate_limited:
            assert following.time - refused.time >= pause


async def test_set_rate_limit_while_serving_and_none_lifts_it(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    assert emulator.rate_limit is None
    assert await statuses(http, emulator, 5) == [200] * 5
    emulator.set_rate_limit(0.5, burst=1, retry_after=3)
    assert emulator.rate_limit == RateLimit(rate=0.5, burst=1, retry_after=3.0)
    assert await statuses(http, emulator, 2) == [200, 429]
    assert emulator.requests[-1].status == 429
    # A new limit starts with full buckets, and without a Retry-After unless given one.
    emulator.set_rate_limit(0.5, burst=2)
    answers = [await post(http, chat_request(emulator)) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 429]
    assert "Retry-After" not in answers[-1][1]
    emulator.set_rate_limit(None)
    assert emulator.rate_limit is None
    assert await statuses(http, emulator, 5) == [200] * 5
    assert emulator.rate_limited_count == 2


async def test_set_rate_limit_from_another_thread_while_requests_arrive(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    stop = threading.Event()
    flips = 0

    def flip() -> None:
        nonlocal flips
        while not stop.is_set():
            emulator.set_rate_limit(0.5, burst=1, retry_after=1)
            emulator.set_rate_limit(None)
            flips += 1

    worker = threading.Thread(target=flip)
    worker.start()
    try:
        answers = await asyncio.gather(*(post(http, chat_request(emulator)) for _ in range(40)))
    finally:
        stop.set()
        worker.join()
    got = [status for status, _, _ in answers]
    # Every request saw one whole limit or none: no 500 from a half-made change.
    assert set(got) <= {200, 429}
    assert flips > 0
    assert got.count(429) == emulator.rate_limited_count
    assert sorted(r.status or 0 for r in emulator.requests) == sorted(got)


async def test_contract_first_then_rate_limit_then_scripts(http: aiohttp.ClientSession) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=1) as emu:
        url, headers, body = chat_request(emu)
        headers["content-type"] = "application/json"
        # The emulator's own contract check comes first and takes no token.
        assert (await post(http, (url, headers, body)))[0] == 400
        emu.enqueue("chat", status=429, json={"error": "scripted"})
        emu.enqueue("chat", json={"content": "second script"})
        # The first script plays (and uses the token); the limiter then refuses the next
        # request without using up the second script.
        first = await post(http, chat_request(emu))
        refused = await post(http, chat_request(emu))
        emu.set_rate_limit(None)
        played = await post(http, chat_request(emu))
    assert (first[0], json.loads(first[2])) == (429, {"error": "scripted"})
    assert (refused[0], json.loads(refused[2])) == (429, RATE_LIMITED)
    assert (played[0], json.loads(played[2])) == (200, {"content": "second script"})
    assert [(r.status, r.rate_limited) for r in emu.requests] == [
        (400, False),
        (429, False),
        (429, True),
        (200, False),
    ]
    # Only the limiter's own 429s are counted.
    assert emu.rate_limited_count == 1


async def test_rate_limit_comes_before_injected_faults(http: aiohttp.ClientSession) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=1) as emu:
        emu.set_fault_rate("chat", 1.0, status=503)
        assert await statuses(http, emu, 2) == [503, 429]
    assert [r.rate_limited for r in emu.requests] == [False, True]


async def test_clear_keeps_the_limit_and_refills_the_buckets(http: aiohttp.ClientSession) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=1, retry_after=1) as emu:
        assert await statuses(http, emu, 2) == [200, 429]
        emu.clear()
        assert (emu.requests, emu.rate_limited_count) == ([], 0)
        assert emu.rate_limit == RateLimit(rate=0.5, burst=1, retry_after=1.0)
        assert await statuses(http, emu, 2) == [200, 429]


async def test_wait_for_requests_counts_rate_limited_ones(http: aiohttp.ClientSession) -> None:
    async with WebsimEmulator(rate_limit=0.5, burst=1) as emu:
        await statuses(http, emu, 2)
        got = await emu.wait_for_requests(2, endpoint="chat")
    assert [r.rate_limited for r in got] == [False, True]


@pytest.mark.parametrize(("rate", "burst"), [(0.2, 1), (1, 1), (2.5, 3), (10, 10)])
def test_default_burst_is_one_seconds_worth_rounded_up(rate: float, burst: int) -> None:
    assert WebsimEmulator(rate_limit=rate).rate_limit == RateLimit(float(rate), burst, None)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rate_limit": 0}, ValueError, "rate_limit must be a finite number .* > 0"),
        ({"rate_limit": -1.5}, ValueError, "rate_limit must be a finite number .* > 0"),
        ({"rate_limit": float("nan")}, ValueError, "rate_limit must be a finite number"),
        ({"rate_limit": float("inf")}, ValueError, "rate_limit must be a finite number"),
        ({"rate_limit": "2"}, TypeError, "rate_limit must be a number of requests per second"),
        ({"rate_limit": True}, TypeError, "rate_limit must be a number of requests per second"),
        ({"rate_limit": 1, "burst": 0}, ValueError, "burst must be >= 1 request"),
        ({"rate_limit": 1, "burst": 1.5}, TypeError, "burst must be a whole number"),
        ({"rate_limit": 1, "burst": True}, TypeError, "burst must be a whole number"),
        ({"rate_limit": 1, "retry_after": -1}, ValueError, "retry_after must be a finite"),
        ({"rate_limit": 1, "retry_after": float("inf")}, ValueError, "retry_after must be a fin"),
        ({"rate_limit": 1, "retry_after": "1"}, TypeError, "retry_after must be a number"),
        ({"burst": 2}, ValueError, "burst needs a rate_limit"),
        ({"retry_after": 0}, ValueError, "retry_after needs a rate_limit"),
    ],
)
def test_rate_limit_arguments_are_checked(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        WebsimEmulator(**kwargs)
    emu = WebsimEmulator(rate_limit=3)
    rate_limit = kwargs.pop("rate_limit", None)
    with pytest.raises(error, match=match):
        emu.set_rate_limit(rate_limit, **kwargs)
    # A rejected change leaves the limit in force as it was.
    assert emu.rate_limit == RateLimit(3.0, 3, None)
