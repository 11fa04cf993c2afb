"""A non-2xx answer whose body is over the size cap: the status decides retry and error class,
the cap only limits what is read (``WebsimResponseError`` is for 2xx answers only)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from langchain_websim import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimClient,
    WebsimResponseError,
)
from langchain_websim.testing import WebsimEmulator

MiB = 1024 * 1024
OVER_CAP = 11 * MiB  # the API body cap is 10 MiB
USER = [{"role": "user", "content": "ping"}]


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("adaptive_rate", [True, False])
async def test_a_transient_status_with_an_oversized_body_is_retried(
    make_client: Callable[..., WebsimClient],
    emulator: WebsimEmulator,
    status: int,
    adaptive_rate: bool,
) -> None:
    client = make_client(adaptive_rate=adaptive_rate)
    emulator.enqueue("chat", status=status, body_size=OVER_CAP)  # streamed, no length
    answer = await client.achat(USER)
    assert answer.text == "Echo: ping"
    assert [r.status for r in emulator.requests] == [status, 200]
    if adaptive_rate and status == 429:
        # The rate controller heard of the 429, as for a 429 with a short body.
        assert client.rate_state()["chat"].rate_limited == 1


async def test_an_oversized_429_every_time_is_a_rate_limit_error(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator
) -> None:
    client = make_client(max_retries=1, adaptive_rate=False)
    emulator.enqueue("image", status=429, body=b"z" * OVER_CAP, times=2)  # Content-Length
    with pytest.raises(WebsimAPIError) as info:
        await client.agenerate_image("a fox")
    assert info.value.status_code == 429
    assert type(info.value).__name__ == "WebsimRateLimitError"
    assert info.value.attempts == 2
    assert len(emulator.requests) == 2


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_400_with_an_oversized_body_is_an_api_error(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator, declared: bool
) -> None:
    client = make_client(max_retries=3)
    if declared:
        emulator.enqueue("chat", status=400, body=b"bad request " * (OVER_CAP // 12))
    else:
        emulator.enqueue("chat", status=400, body_size=OVER_CAP)
    with pytest.raises(WebsimAPIError) as info:
        await client.achat(USER)
    err = info.value
    assert type(err) is WebsimAPIError
    assert not isinstance(err, WebsimResponseError)
    assert err.status_code == 400
    assert len(err.body) <= 500  # an excerpt of the head that was read
    assert err.body.startswith("bad request" if declared else "xxxx")
    assert len(emulator.requests) == 1
    # The same client answers next (the cut connection was not reused).
    assert (await client.achat(USER)).text == "Echo: ping"


async def test_an_oversized_challenge_page_is_still_recognised(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator
) -> None:
    client = make_client(max_retries=2)
    page = b"<!DOCTYPE html><html><title>Just a moment...</title>" + b" " * OVER_CAP
    emulator.enqueue("chat", status=403, body=page, content_type="text/html")
    with pytest.raises(WebsimBlockedError):
        await client.achat(USER)
    assert len(emulator.requests) == 1


async def test_a_2xx_over_the_cap_is_still_unusable(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator
) -> None:
    client = make_client(max_retries=3)
    emulator.enqueue("chat", status=200, body_size=OVER_CAP)
    with pytest.raises(WebsimResponseError, match="exceeds the 10 MiB cap"):
        await client.achat(USER)
    assert len(emulator.requests) == 1


async def test_an_empty_404_names_its_status_once(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator
) -> None:
    client = make_client()
    emulator.enqueue("chat", status=404, body=b"")
    with pytest.raises(WebsimAPIError) as info:
        await client.achat(USER)
    text = str(info.value)
    assert text.count("404") == 1, text
    assert "not found" in text
