"""The adaptive rate control against the emulator's rate limit, over loopback.

No wall-clock speed is asserted: what is checked is what the emulator saw (how many
requests, when) and what the client's controller says it learned.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from langchain_websim import ChatWebsim, WebsimClient, WebsimRateLimitError
from langchain_websim.testing import WebsimEmulator


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"call {i}"}]


async def test_a_batch_of_100_at_20_per_second_loses_no_call() -> None:
    async with WebsimEmulator(rate_limit=20, burst=20) as emu:
        llm = ChatWebsim(base_url=emu.base_url, max_retries=2)
        answers = await llm.abatch([f"call {i}" for i in range(100)], {"max_concurrency": 50})
        assert [a.content for a in answers] == [f"Echo: call {i}" for i in range(100)]
        requests = emu.requests_for("chat")
        # Without the control, ~1/3 of these calls fail and the limiter sees 300+ requests.
        assert len(requests) < 150
        assert len(requests) == 100 + emu.rate_limited_count
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


async def test_a_rate_change_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="langchain_websim")
    async with WebsimEmulator(rate_limit=5, burst=2) as emu:
        async with WebsimClient(emu.base_url, max_retries=2) as client:
            await asyncio.gather(*(client.achat(_messages(i)) for i in range(10)))
    changes = [r for r in caplog.records if r.levelno == logging.INFO and "rate" in r.message]
    assert changes and all("Websim chat: rate" in r.message for r in changes)
    assert all("call " not in r.message for r in caplog.records)  # never the prompt
