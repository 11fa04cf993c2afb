"""Retry policy: which failures are retried, how long we wait, what is raised and logged.

HTTP is mocked with aioresponses; ``asyncio.sleep`` is replaced by a recorder so the delays
the client asks for can be checked without waiting for them.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from yarl import URL

from langchain_websim import WebsimClient, _client, _retry
from langchain_websim._retry import (
    RetryPolicy,
    calculate_retry_timeout,
    parse_retry_after_header,
    should_retry_status,
)
from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimRateLimitError,
    WebsimTimeoutError,
)

BASE = "https://websim.test"
CHAT_URL = BASE + "/api/v1/inference/run_chat_completion"
IMAGE_URL = BASE + "/api/v1/inference/run_image_generation"
OK_CHAT: dict[str, Any] = {"payload": {"content": "fine"}}
PROMPT = "SECRET-PROMPT-TEXT-4711"
MESSAGES = [{"role": "user", "content": PROMPT}]
CHALLENGE = "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every delay the client sleeps for; the sleep itself only yields to the loop."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def record(delay: float, *args: Any, **kwargs: Any) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(_client.asyncio, "sleep", record)
    return delays


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., WebsimClient]]:
    clients: list[WebsimClient] = []

    def make(**kwargs: Any) -> WebsimClient:
        kwargs.setdefault("retry_base_delay", 0.01)
        client = WebsimClient(BASE, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def sent(http: aioresponses, url: str = CHAT_URL) -> int:
    return len(http.requests.get(("POST", URL(url)), []))


def _conn_key() -> ConnectionKey:
    return ConnectionKey("websim.test", 443, True, True, None, None, None)


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient], status: int
) -> None:
    http.post(CHAT_URL, status=status, payload={"error": "later"})
    http.post(CHAT_URL, **OK_CHAT)
    answer = await make_client().achat(MESSAGES)
    assert answer.text == "fine"
    assert answer.attempts == 2
    assert sent(http) == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_caller_errors_are_not_retried(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient], status: int
) -> None:
    http.post(CHAT_URL, status=status, payload={"error": "no"})
    http.post(CHAT_URL, **OK_CHAT)  # would be used by a wrong retry
    with pytest.raises(WebsimAPIError) as info:
        await make_client().achat(MESSAGES)
    err = info.value
    assert type(err) is WebsimAPIError
    assert (err.status_code, err.attempts, err.endpoint, err.url) == (status, 1, "chat", CHAT_URL)
    assert err.body == '{"error": "no"}'
    assert sent(http) == 1
    assert sleeps == []


def test_status_table() -> None:
    retried = {s for s in range(100, 600) if should_retry_status(s)}
    assert retried == {408, 409, 429, *range(500, 600)}


async def test_attempts_are_one_plus_max_retries(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=500, body="boom", repeat=True)
    with pytest.raises(WebsimAPIError) as info:
        await make_client(max_retries=4).achat(MESSAGES)
    assert info.value.attempts == 5
    assert info.value.status_code == 500
    assert "after 5 attempts" in str(info.value)
    assert sent(http) == 5
    assert len(sleeps) == 4


async def test_max_retries_zero_means_one_attempt(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=503, body="down", repeat=True)
    with pytest.raises(WebsimAPIError) as info:
        await make_client(max_retries=0).achat(MESSAGES)
    assert info.value.attempts == 1
    assert sent(http) == 1
    assert sleeps == []


async def test_rate_limit_error_after_the_budget(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(
        CHAT_URL, status=429, payload={"error": "slow"}, headers={"Retry-After": "0"}, repeat=True
    )
    with pytest.raises(WebsimRateLimitError) as info:
        await make_client(max_retries=2).achat(MESSAGES)
    assert info.value.attempts == 3
    assert info.value.retry_after == 0.0
    assert info.value.status_code == 429
    assert sleeps == [0.0, 0.0]
    assert sent(http) == 3


async def test_rate_limit_without_retry_after(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=429, body="slow", repeat=True)
    with pytest.raises(WebsimRateLimitError) as info:
        await make_client(max_retries=1).achat(MESSAGES)
    assert info.value.retry_after is None
    assert info.value.attempts == 2


@pytest.mark.parametrize("status", [403, 503])
async def test_challenge_pages_are_blocked_and_not_retried(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient], status: int
) -> None:
    http.post(CHAT_URL, status=status, body=CHALLENGE, content_type="text/html")
    http.post(CHAT_URL, **OK_CHAT)
    with pytest.raises(WebsimBlockedError) as info:
        await make_client().achat(MESSAGES)
    err = info.value
    assert (err.status_code, err.attempts, err.content_type) == (status, 1, "text/html")
    assert "Just a moment" in err.body
    assert "bot-protection" in str(err)
    assert sent(http) == 1
    assert sleeps == []


async def test_plain_403_is_not_a_block(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=403, body="<html>Forbidden</html>", content_type="text/html")
    with pytest.raises(WebsimAPIError) as info:
        await make_client().achat(MESSAGES)
    assert not isinstance(info.value, WebsimBlockedError)


async def test_redirects_are_not_followed_or_retried(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=301, headers={"Location": "https://elsewhere.test/"})
    with pytest.raises(WebsimAPIError, match=r"redirected to https://elsewhere\.test/") as info:
        await make_client().achat(MESSAGES)
    assert info.value.status_code == 301
    assert sent(http) == 1


@pytest.mark.parametrize(
    ("location", "advice"),
    [
        # The service moved its site once: the error names the new host to configure.
        ("https://api.websim.com/api/v1/inference/run_chat_completion", "https://api.websim.com"),
        ("https://user:secret@websim.com:8443/x", "https://websim.com:8443"),
        ("/api/v2/chat", "the service's real host"),  # same host: not a base_url problem
        ("javascript:alert(1)", "the service's real host"),
    ],
)
async def test_a_redirect_names_where_to_point_base_url(
    http: aioresponses, make_client: Callable[..., WebsimClient], location: str, advice: str
) -> None:
    http.post(CHAT_URL, status=308, headers={"Location": location})
    with pytest.raises(WebsimAPIError) as info:
        await make_client().achat(MESSAGES)
    message = str(info.value)
    assert f"redirected to {location}" in message
    assert f"set base_url (or WEBSIM_BASE_URL) to {advice}" in message
    assert "secret" not in message.split("set base_url")[1]  # the advice carries no credentials
    assert sent(http) == 1


async def test_image_requests_are_retried_too(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(IMAGE_URL, status=502, body="bad gateway")
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.test/a.png"})
    image = await make_client().agenerate_image("a lighthouse")
    assert image.url == "https://cdn.websim.test/a.png"
    assert image.attempts == 2
    assert sent(http, IMAGE_URL) == 2


# --------------------------------------------------------------------------- no answer at all


CONNECTION_FAILURES: list[Callable[[], BaseException]] = [
    lambda: aiohttp.ClientConnectorError(_conn_key(), ConnectionRefusedError(111, "refused")),
    lambda: ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    lambda: aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
    lambda: ConnectionResetError(errno.ECONNRESET, "reset"),
    lambda: aiohttp.ServerDisconnectedError(),
    lambda: aiohttp.ClientPayloadError("Response payload is not completed"),
]


@pytest.mark.parametrize("failure", CONNECTION_FAILURES)
async def test_connection_errors_are_retried(
    http: aioresponses,
    sleeps: list[float],
    make_client: Callable[..., WebsimClient],
    failure: Callable[[], BaseException],
) -> None:
    http.post(CHAT_URL, exception=failure())
    http.post(CHAT_URL, **OK_CHAT)
    answer = await make_client().achat(MESSAGES)
    assert answer.attempts == 2
    assert sent(http) == 2


@pytest.mark.parametrize("failure", CONNECTION_FAILURES)
async def test_connection_errors_after_the_budget(
    http: aioresponses,
    sleeps: list[float],
    make_client: Callable[..., WebsimClient],
    failure: Callable[[], BaseException],
) -> None:
    http.post(CHAT_URL, exception=failure(), repeat=True)
    with pytest.raises(WebsimConnectionError) as info:
        await make_client(max_retries=2).achat(MESSAGES)
    err = info.value
    assert type(err) is WebsimConnectionError
    assert (err.attempts, err.endpoint, err.url) == (3, "chat", CHAT_URL)
    assert isinstance(err.__cause__, OSError | aiohttp.ClientError)
    assert "connection failed" in str(err)
    assert sent(http) == 3


@pytest.mark.parametrize(
    "failure",
    [
        lambda: TimeoutError(),
        lambda: aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        lambda: aiohttp.ConnectionTimeoutError("Connection timeout"),
    ],
)
async def test_timeouts_are_retried_then_typed(
    http: aioresponses,
    sleeps: list[float],
    make_client: Callable[..., WebsimClient],
    failure: Callable[[], BaseException],
) -> None:
    http.post(CHAT_URL, exception=failure(), repeat=True)
    with pytest.raises(WebsimTimeoutError) as info:
        await make_client(max_retries=3, timeout=7.5).achat(MESSAGES)
    err = info.value
    assert err.attempts == 4
    assert err.timeout == 7.5
    assert "within 7.5 s" in str(err)
    assert sent(http) == 4


async def test_timeout_then_answer(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, timeout=True)  # aioresponses raises asyncio.TimeoutError
    http.post(CHAT_URL, **OK_CHAT)
    assert (await make_client().achat(MESSAGES)).attempts == 2


async def test_certificate_errors_are_not_retried(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, exception=aiohttp.ClientSSLError(_conn_key(), OSError(1, "bad cert")))
    with pytest.raises(WebsimConnectionError) as info:
        await make_client().achat(MESSAGES)
    assert info.value.attempts == 1
    assert sent(http) == 1
    assert sleeps == []


async def test_cancellation_is_not_swallowed(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, exception=asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await make_client().achat(MESSAGES)
    assert sent(http) == 1


# --------------------------------------------------------------------------- logging


async def test_each_retry_is_logged_without_the_prompt(
    http: aioresponses,
    sleeps: list[float],
    make_client: Callable[..., WebsimClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    http.post(CHAT_URL, status=500, body=f"echo of {PROMPT}")
    http.post(CHAT_URL, exception=aiohttp.ServerDisconnectedError())
    http.post(CHAT_URL, **OK_CHAT)
    http.post(IMAGE_URL, status=429, headers={"Retry-After": "0.25"})
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.test/a.png"})
    client = make_client(max_retries=3)
    await client.achat(MESSAGES)
    await client.agenerate_image(PROMPT)

    # WARNING: the retries; the rate control logs its rate changes at INFO.
    retries = [
        r for r in caplog.records if r.name == "langchain_websim" and r.levelno >= logging.WARNING
    ]
    assert [r.levelno for r in retries] == [logging.WARNING] * 3
    first, second, third = (r.getMessage() for r in retries)
    assert first.startswith("Websim chat: HTTP 500; retrying in ")
    assert f"retrying in {sleeps[0]:.2f} s" in first
    assert "(attempt 2 of 4)" in first
    assert second.startswith(
        "Websim chat: connection failed: websim.test:443 closed the connection before "
        "answering; retrying in "
    )
    assert "(attempt 3 of 4)" in second
    assert third == "Websim image: HTTP 429; retrying in 0.25 s (attempt 2 of 4)"
    for record in caplog.records:
        assert PROMPT not in record.getMessage()
        assert PROMPT not in str(record.args)


# --------------------------------------------------------------------------- Retry-After


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": email.utils.formatdate(NOW + 12, usegmt=True)}, 12.0),
        ({"retry-after": email.utils.formatdate(NOW - 60, usegmt=True)}, 0.0),
        ({"retry-after": email.utils.formatdate(NOW + 5)}, 5.0),  # "-0000": naive, still GMT
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "-5", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "inf", "retry-after": "9"}, 9.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "1e999"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = parse_retry_after_header(headers, now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parse_retry_after_date_uses_the_clock_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_retry.time, "time", lambda: NOW)
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert parse_retry_after_header({"retry-after": date}) == pytest.approx(30.0)


async def test_retry_after_replaces_the_backoff(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=429, headers={"Retry-After": "2"})
    http.post(CHAT_URL, status=503, headers={"retry-after-ms": "1500"})
    http.post(CHAT_URL, **OK_CHAT)
    answer = await make_client(retry_base_delay=100, retry_max_delay=5).achat(MESSAGES)
    assert answer.attempts == 3
    assert sleeps == [2.0, 1.5]


async def test_garbage_retry_after_falls_back_to_backoff(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=429, headers={"Retry-After": "whenever"})
    http.post(CHAT_URL, **OK_CHAT)
    await make_client(retry_base_delay=1.0, retry_max_delay=30).achat(MESSAGES)
    assert len(sleeps) == 1
    assert 1.5 <= sleeps[0] <= 2.0  # 0.75..1.0 x min(30, 1 * 2**1)


async def test_retry_after_above_the_cap_fails_at_once(
    http: aioresponses, sleeps: list[float], make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=429, payload={"error": "tomorrow"}, headers={"Retry-After": "120"})
    http.post(CHAT_URL, **OK_CHAT)
    with pytest.raises(WebsimRateLimitError) as info:
        await make_client(max_retries=5, retry_max_delay=30).achat(MESSAGES)
    assert info.value.retry_after == 120.0
    assert info.value.attempts == 1
    assert "retry after 120 s" in str(info.value)
    assert sent(http) == 1
    assert sleeps == []


# --------------------------------------------------------------------------- backoff


@pytest.mark.parametrize(("base", "cap"), [(1.0, 30.0), (0.01, 0.05), (0.5, 1000.0), (0.0, 5.0)])
def test_backoff_bounds_over_many_draws(base: float, cap: float) -> None:
    policy = RetryPolicy(max_retries=8, base_delay=base, max_delay=cap)
    for n in range(1, 9):
        nominal = min(cap, base * 2**n)
        draws = [calculate_retry_timeout(policy, n) for _ in range(300)]
        assert all(0.75 * nominal <= d <= nominal for d in draws)
        if nominal:
            assert max(draws) - min(draws) > 0.1 * nominal  # there is jitter


def test_backoff_ends_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=30.0)
    monkeypatch.setattr(_retry.random, "random", lambda: 0.0)
    assert [calculate_retry_timeout(policy, n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 16, 30]
    monkeypatch.setattr(_retry.random, "random", lambda: 0.999999)
    lows = [calculate_retry_timeout(policy, n) for n in (1, 2, 3, 4, 5)]
    assert lows == pytest.approx([1.5, 3.0, 6.0, 12.0, 22.5], rel=1e-5)


def test_backoff_survives_a_huge_retry_number() -> None:
    policy = RetryPolicy(max_retries=5000, base_delay=1.0, max_delay=30.0)
    assert 22.5 <= calculate_retry_timeout(policy, 4000) <= 30.0


async def test_client_sleeps_within_the_backoff_bounds(
    http: aioresponses,
    sleeps: list[float],
    make_client: Callable[..., WebsimClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http.post(CHAT_URL, status=500, repeat=True)
    with pytest.raises(WebsimAPIError):
        await make_client(max_retries=4, retry_base_delay=0.5, retry_max_delay=3).achat(MESSAGES)
    assert len(sleeps) == 4
    for n, delay in enumerate(sleeps, start=1):
        nominal = min(3, 0.5 * 2**n)
        assert 0.75 * nominal <= delay <= nominal


async def test_client_uses_the_exact_backoff_ends(
    http: aioresponses,
    sleeps: list[float],
    make_client: Callable[..., WebsimClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http.post(CHAT_URL, status=500, repeat=True)
    monkeypatch.setattr(_retry.random, "random", lambda: 0.0)
    client = make_client(max_retries=3, retry_base_delay=0.25, retry_max_delay=1.5)
    with pytest.raises(WebsimAPIError):
        await client.achat(MESSAGES)
    assert sleeps == [0.5, 1.0, 1.5]


# --------------------------------------------------------------------------- policy values


def test_policy_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_delay, policy.max_delay) == (2, 1.0, 30.0)
    assert policy.max_attempts == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": 1.5}, TypeError, "max_retries"),
        ({"max_retries": True}, TypeError, "max_retries"),
        ({"retry_base_delay": -0.1}, ValueError, "retry_base_delay"),
        ({"retry_base_delay": float("nan")}, ValueError, "retry_base_delay"),
        ({"retry_max_delay": float("inf")}, ValueError, "retry_max_delay"),
        ({"retry_max_delay": -1}, ValueError, "retry_max_delay"),
        ({"retry_max_delay": "30"}, TypeError, "retry_max_delay"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    # The policy's values are client settings, checked where every setting is checked.
    with pytest.raises(error, match=match):
        WebsimClient("http://websim.test", **kwargs)
