"""``WebsimClient`` against the local emulator over real loopback sockets: the contract as
a server sees it, retries counted on the server's request log, timeouts, dropped
connections, refused connections and oversized bodies."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from langchain_websim import WebsimClient
from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)
from langchain_websim.testing import WebsimEmulator

USER = [{"role": "user", "content": "hello there"}]
CHALLENGE = "<html><head><title>Just a moment...</title></head><body>cf-chl</body></html>"


def statuses(emulator: WebsimEmulator, endpoint: str = "chat") -> list[int | None]:
    return [r.status for r in emulator.requests_for(endpoint)]  # type: ignore[arg-type]


async def test_the_emulator_accepts_what_the_client_sends(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    client = make_client()
    chat = await client.achat([{"role": "system", "content": "be brief"}, *USER], json_mode=False)
    image = await client.agenerate_image("a lighthouse at dusk", aspect_ratio="16:9")
    assert chat.text == "Echo: hello there"
    assert image.url.startswith(emulator.base_url + "/images/")
    chat_req, image_req = emulator.requests
    assert chat_req.violations == [] and image_req.violations == []
    assert chat_req.headers["websim-flags"] == ""
    assert chat_req.headers["content-type"] == "text/plain;charset=UTF-8"
    assert chat_req.headers["origin"] == emulator.base_url
    assert chat_req.headers["referer"].endswith("/zelos-ai-assistant")
    assert image_req.headers["referer"].endswith("/ai-image-prompt-generator")
    assert chat_req.body == {"project_id": chat.project_id, "messages": chat_req.body["messages"]}
    assert image_req.body == {
        "project_id": image.project_id,
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
    }


def test_sync_calls_reach_the_emulator(emulator: WebsimEmulator) -> None:
    with WebsimClient(emulator.base_url) as client:
        assert client.chat(USER).text == "Echo: hello there"
        assert client.generate_image("a cat").url.startswith(emulator.base_url)
    assert [r.endpoint for r in emulator.requests] == ["chat", "image"]


async def test_json_mode_reaches_the_server(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.set_chat_responder(lambda messages, body: f"json={body.get('json')}")
    answer = await make_client().achat(USER, json_mode=True)
    assert answer.text == "json=True"
    assert emulator.requests[0].body["json"] is True


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_status_then_answer(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], status: int
) -> None:
    emulator.enqueue("chat", status=status, json={"error": "later"})
    answer = await make_client().achat(USER)
    assert answer.text == "Echo: hello there"
    assert answer.attempts == 2
    assert statuses(emulator) == [status, 200]


async def test_image_retry_then_answer(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("image", status=500)
    emulator.enqueue("image", status=429, headers={"Retry-After": "0"})
    image = await make_client(max_retries=2).agenerate_image("a lighthouse")
    assert image.attempts == 3
    assert statuses(emulator, "image") == [500, 429, 200]


async def test_a_retry_resends_the_same_request(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", status=500)
    answer = await make_client().achat(USER)
    first, second = emulator.requests_for("chat")
    # A retry re-sends the same request: same id, same bytes.
    assert first.raw == second.raw
    assert first.body["project_id"] == answer.project_id


async def test_retries_run_out(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", status=429, json={"error": "slow down"}, times=None)
    with pytest.raises(WebsimRateLimitError) as info:
        await make_client(max_retries=3).achat(USER)
    assert info.value.attempts == 4
    assert statuses(emulator) == [429] * 4


async def test_retry_after_above_the_cap_is_one_request(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(WebsimRateLimitError) as info:
        await make_client(retry_max_delay=1).achat(USER)
    assert info.value.retry_after == 3600
    assert len(emulator.requests) == 1


async def test_short_retry_after_is_waited_for(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", status=429, headers={"Retry-After": "0.3"})
    await make_client(retry_base_delay=0).achat(USER)
    first, second = emulator.requests_for("chat")
    assert second.time - first.time >= 0.25  # lower bound only: the server asked for 0.3 s


async def test_challenge_page_is_blocked_not_retried(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", status=403, body=CHALLENGE, content_type="text/html")
    with pytest.raises(WebsimBlockedError) as info:
        await make_client().achat(USER)
    assert info.value.status_code == 403
    assert "Just a moment" in info.value.body
    assert len(emulator.requests) == 1


async def test_client_error_is_not_retried(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", status=422, json={"error": "bad messages"})
    with pytest.raises(WebsimAPIError) as info:
        await make_client().achat(USER)
    assert info.value.status_code == 422
    assert "bad messages" in info.value.body
    assert len(emulator.requests) == 1


async def test_random_faults_are_absorbed(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.set_fault_rate("chat", 0.3, status=429, seed=7)
    client = make_client(max_retries=10, retry_base_delay=0.001)
    # Few calls: each 429 slows the adaptive rate control down, so every further call waits
    # longer (15 calls took 14 s); with this seed 4 of these 6 calls meet a 429.
    calls = 6
    answers = [await client.achat([{"role": "user", "content": f"n{i}"}]) for i in range(calls)]
    assert [a.text for a in answers] == [f"Echo: n{i}" for i in range(calls)]
    seen = statuses(emulator)
    assert seen.count(200) == calls
    assert 429 in seen  # the faults did happen
    assert sum(a.attempts for a in answers) == len(seen)


# --------------------------------------------------------------------------- no answer


async def test_timeouts_use_every_attempt(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", delay=2.0, times=None)
    with pytest.raises(WebsimTimeoutError) as info:
        await make_client(timeout=0.2, max_retries=2).achat(USER)
    assert info.value.attempts == 3
    assert info.value.timeout == 0.2
    assert len(await emulator.wait_for_requests(3)) == 3


async def test_slow_answer_then_fast_one(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("image", delay=30.0)
    # Generous for the fast attempt on a loaded machine; the slow one is cut off at 1 s.
    image = await make_client(timeout=1.0).agenerate_image("a cat")
    assert image.attempts == 2


async def test_dropped_connection_then_answer(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", drop=True)
    answer = await make_client().achat(USER)
    assert answer.text == "Echo: hello there"
    assert answer.attempts == 2
    assert statuses(emulator) == [None, 200]


async def test_dropped_every_time(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", drop=True, times=None)
    with pytest.raises(WebsimConnectionError) as info:
        await make_client(max_retries=1).achat(USER)
    assert type(info.value) is WebsimConnectionError
    assert info.value.attempts == 2
    assert len(emulator.requests) == 2


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_nothing_listening(make_client: Callable[..., WebsimClient]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(WebsimConnectionError) as info:
        await make_client(base_url=url, max_retries=2).achat(USER)
    err = info.value
    assert type(err) is WebsimConnectionError
    assert err.attempts == 3
    assert err.url == url + "/api/v1/inference/run_chat_completion"
    assert "connection failed" in str(err)


def test_nothing_listening_sync() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with WebsimClient(url, max_retries=0) as client:
        with pytest.raises(WebsimConnectionError) as info:
            client.generate_image("a cat")
    assert info.value.attempts == 1
    assert info.value.endpoint == "image"


# --------------------------------------------------------------------------- bad answers


async def test_body_over_the_cap(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient]
) -> None:
    emulator.enqueue("chat", status=200, body_size=11 * 1024 * 1024)
    with pytest.raises(WebsimResponseError, match="exceeds the 10 MiB cap") as info:
        await make_client().achat(USER)
    assert info.value.attempts == 1
    assert len(info.value.body) <= 500
    assert len(emulator.requests) == 1
    # The connection was given up, not the client: the next call works.
    assert (await make_client().achat(USER)).text == "Echo: hello there"


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ({"body": "<html>hi</html>", "content_type": "text/html"}, "HTML page"),
        ({"json": {"content": None}}, "'content' is null"),
        ({"json": ["x"]}, "got an array"),
        ({"body": "{", "content_type": "application/json"}, "not valid JSON"),
    ],
)
async def test_unusable_chat_answers(
    emulator: WebsimEmulator,
    make_client: Callable[..., WebsimClient],
    script: dict[str, Any],
    problem: str,
) -> None:
    emulator.enqueue("chat", **script)
    with pytest.raises(WebsimResponseError, match=problem.replace("(", r"\(")):
        await make_client().achat(USER)
    assert len(emulator.requests) == 1


@pytest.mark.parametrize(
    "url", ["/relative.png", "javascript:alert(1)", "data:image/png;base64,AAAA", None]
)
async def test_unusable_image_urls(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], url: str | None
) -> None:
    emulator.enqueue("image", json={} if url is None else {"url": url})
    with pytest.raises(WebsimResponseError) as info:
        await make_client().agenerate_image("a cat")
    assert info.value.endpoint == "image"
    assert info.value.status_code == 200
