"""The adaptive rate control against the emulator's rate limit, over loopback.

No wall-clock speed is asserted: what is checked is what the emulator saw (how many
requests, when) and what the client's controller says it learned.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

import pytest

from langchain_websim import ChatWebsim, WebsimAPIError, WebsimClient, WebsimRateLimitError
from langchain_websim.testing import WebsimEmulator

pytestmark = pytest.mark.slow  # tens of seconds in all: a parallel run starts this file first


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"call {i}"}]


async def test_a_batch_of_100_at_20_per_second_loses_no_call() -> None:
    async with WebsimEmulator(rate_limit=20, burst=20) as emu:
        llm = ChatWebsim(base_url=emu.base_url, max_retries=2)
        answers = await llm.abatch([f"call {i}" for i in range(100)], {"max_concurrency": 50})
        assert [a.content for a in answers] == [f"Echo: call {i}" for i in range(100)]
        requests = emu.requests_for("chat")
        assert len(requests) == 100 + emu.rate_limited_count
        # Without the control, ~1/3 of these calls fail and the limiter sees 300+ requests.
        # With it, the burst (20, more than the 16 answers that end a slow start against an
        # instant server) is met unpaced: one storm of 429s, at most one per call in flight
        # (50), ends at the first cut.  From half a second after it, the pace holds.
        first = next(r.time for r in requests if r.rate_limited)
        assert emu.rate_limited_count <= 50 + 15
        paced = [r for r in requests if r.time > first + 0.5]
        assert len(paced) >= 40
        assert sum(r.rate_limited for r in paced) <= 0.15 * len(paced)
        waited = [a.response_metadata["rate_wait"] for a in answers]
        assert all(w >= 0 for w in waited) and sum(waited) > 0  # the wait is reported
        assert sum(a.response_metadata["attempts"] for a in answers) == len(requests)
        await llm._websim_client().aclose()


async def test_retry_after_pauses_every_caller_of_the_endpoint() -> None:
    pause = 0.5
    async with WebsimEmulator(rate_limit=10, burst=5, retry_after=pause) as emu:
        async with WebsimClient(emu.base_url, max_retries=2) as client:
            answers = await asyncio.gather(*(client.achat(_messages(i)) for i in range(30)))
        assert len(answers) == 30
        log = emu.requests_for("chat")
        refused = [r for r in log if r.rate_limited]
        assert refused, "the limit was never reached"
        # A request sent before its client heard of the pause may still arrive just after the
        # 429; after that, nobody sends until the pause has passed.
        grace = 0.05
        for r in refused:
            inside = [o for o in log if r.time + grace < o.time < r.time + pause - grace]
            assert inside == [], f"{len(inside)} requests inside the pause after {r.time:.3f}"


async def test_the_controller_recovers_after_the_limit_is_lifted() -> None:
    async with WebsimEmulator(rate_limit=5, burst=2) as emu:
        async with WebsimClient(emu.base_url, max_retries=2) as client:
            await asyncio.gather(*(client.achat(_messages(i)) for i in range(15)))
            learned = client.rate_state()["chat"].rate
            assert learned is not None and learned < 10  # it found the 5/s limit
            emu.set_rate_limit(None)
            before = emu.rate_limited_count
            await asyncio.gather(*(client.achat(_messages(i)) for i in range(150)))
            recovered = client.rate_state()["chat"].rate
            assert emu.rate_limited_count == before  # nothing refused once lifted
            assert recovered is not None and recovered > 2 * learned  # it probed back up


async def test_the_per_call_deadline_ends_a_call_that_never_gets_through() -> None:
    # The service shapes (some calls succeed) but 30 callers share 2/s: with a 1 s deadline,
    # the calls at the back of the queue end with a rate-limit error instead of waiting.
    async with WebsimEmulator(rate_limit=2, burst=1) as emu:
        async with WebsimClient(emu.base_url, max_retries=2, rate_limit_deadline=1.0) as client:
            results = await asyncio.gather(
                *(client.achat(_messages(i)) for i in range(30)), return_exceptions=True
            )
    answered = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert answered and failed
    assert all(isinstance(err, WebsimRateLimitError) for err in failed), failed
    assert all("rate_limit_deadline" in str(err) for err in failed)


async def test_turning_the_control_off_sends_at_once_and_fails_as_before() -> None:
    async with WebsimEmulator(rate_limit=5, burst=5) as emu:
        async with WebsimClient(emu.base_url, max_retries=0, adaptive_rate=False) as client:
            results = await asyncio.gather(
                *(client.achat(_messages(i)) for i in range(20)), return_exceptions=True
            )
            assert client.rate_state() == {}
    failed = [r for r in results if isinstance(r, WebsimRateLimitError)]
    assert len(failed) == 20 - 5  # the burst passes, every other call fails at once
    assert len(emu.requests_for("chat")) == 20  # one request per call, nothing paced


async def test_limiting_is_announced_once_at_warning_and_changes_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="langchain_websim")
    async with WebsimEmulator(rate_limit=20, burst=2) as emu:
        async with WebsimClient(emu.base_url, max_retries=2) as client:
            await asyncio.gather(*(client.achat(_messages(i)) for i in range(10)))
    ours = [r for r in caplog.records if r.name == "langchain_websim"]
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    # One limiting episode: one WARNING, saying the pace and that calls wait, not fail.
    assert len(warnings) == 1, [r.message for r in warnings]
    assert "Websim chat: the service is limiting our rate" in warnings[0].message
    assert "/s" in warnings[0].message and "calls wait for a send slot" in warnings[0].message
    assert all(r.levelno == logging.INFO for r in ours if r not in warnings)
    assert all("call " not in r.message for r in caplog.records)  # never the prompt


async def test_a_call_held_by_an_earlier_answers_pause_says_it_was_not_sent(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator
) -> None:
    # One answer asks to wait "forever": it is kept for rate_limit_deadline at most, and a
    # later call that the pause holds says so, with the times, instead of "the service
    # asked to wait ..." as if it had been answered itself.
    emulator.enqueue("chat", status=429, headers={"Retry-After": "1e308"})
    client = make_client(max_retries=0, retry_max_delay=0.1, rate_limit_deadline=60.0)
    with pytest.raises(WebsimRateLimitError):
        await client.achat(_messages(0))
    with pytest.raises(WebsimRateLimitError) as caught:
        await client.achat(_messages(1))
    err = caught.value
    text = str(err)
    assert "rate limited: not sent: an answer on this endpoint at " in text
    assert "asked to wait 1e+308 s (Retry-After)" in text
    assert re.search(r"paused until \d\d:\d\d:\d\d\.\d{3} UTC \((59|60)\.\d{3} s from now", text)
    assert "at most rate_limit_deadline, 60 s" in text
    assert err.attempts == 0
    assert err.retry_after is not None and 59.0 < err.retry_after <= 60.0  # the ceiling
    assert len(emulator.requests) == 1  # the second call was never sent


async def test_a_call_past_its_deadline_during_a_pause_keeps_retry_after(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator
) -> None:
    emulator.enqueue("chat", status=200, json={"content": "ok"})
    emulator.enqueue("chat", status=429, headers={"Retry-After": "5"})
    # The pause is kept for rate_limit_deadline at most (1 s here), so the call, which
    # started just before the 429, cannot get a slot within its own deadline.
    client = make_client(max_retries=2, rate_limit_deadline=1.0)
    assert (await client.achat(_messages(0))).text == "ok"
    with pytest.raises(WebsimRateLimitError, match="rate_limit_deadline") as caught:
        await client.achat(_messages(1))
    # When to come back, not None (a scheduler following the docs would guess 60 s).
    assert caught.value.retry_after is not None and 0.5 < caught.value.retry_after <= 1.0
    assert len(emulator.requests) == 2


async def test_retries_are_logged_at_info_and_the_final_failure_is_raised(
    make_client: Callable[..., WebsimClient],
    emulator: WebsimEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="langchain_websim")
    for _ in range(2):
        emulator.enqueue("chat", status=503, body="busy")
    client = make_client(max_retries=1, adaptive_rate=False)
    with pytest.raises(WebsimAPIError) as caught:
        await client.achat(_messages(0))
    assert caught.value.status_code == 503 and caught.value.attempts == 2
    retries = [r for r in caplog.records if "retrying in" in r.message]
    assert len(retries) == 1 and retries[0].levelno == logging.INFO
    assert "Websim chat: HTTP 503; retrying in" in retries[0].message
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
