"""The line of calls waiting for a send slot (``_pacing.SlotQueue``).

The queue has no public surface of its own (``WebsimClient`` drives it), so it is tested
here directly, with the rate controller on a frozen clock: no slot ever comes due by time,
and only what the test does (a success, a cancelled call) can move the line.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from langchain_websim import _wire
from langchain_websim._pacing import Call, SlotQueues, await_slot
from langchain_websim._rate import Phase, RateController, RateTuning
from langchain_websim.errors import WebsimRateLimitError

FROZEN = 1000.0


@pytest.fixture
def ctl() -> RateController:
    # A first window of two; the clock never moves, so the budget grows with successes only.
    return RateController(clock=lambda: FROZEN, tuning=RateTuning(initial_window=2))


def a_call(ctl: RateController) -> Call:
    return Call(_wire.CHAT, "http://127.0.0.1/chat", time.perf_counter(), ctl)


async def waiting_calls(
    ctl: RateController, queues: SlotQueues, count: int
) -> list[asyncio.Task[None]]:
    """``count`` calls that found the first window taken, each in line for a slot."""
    tasks = [asyncio.create_task(await_slot(a_call(ctl), queues, 60.0, 60.0)) for _ in range(count)]
    await settle()
    return tasks


async def settle() -> None:
    """Let every ready task run until it waits again (a few loop turns, no time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


def take_first_window(ctl: RateController) -> None:
    assert ctl.try_acquire("chat") == 0.0
    assert ctl.try_acquire("chat") == 0.0
    assert ctl.try_acquire("chat") > 0.0  # the window is full: later calls wait


async def test_the_last_answer_of_a_round_lets_the_waiting_calls_go_together(
    ctl: RateController,
) -> None:
    take_first_window(ctl)
    queues = SlotQueues()
    tasks = await waiting_calls(ctl, queues, 3)

    # One of the two sends is still out: its success makes room, but nobody goes yet.
    assert ctl.on_success("chat") is False
    await settle()
    assert not any(task.done() for task in tasks)

    # The round is over: both free slots go out in the same loop turn, oldest calls first,
    # without waiting for the budget's timer (the clock is frozen).
    assert ctl.on_success("chat") is True
    queues.wake("chat")
    await asyncio.sleep(0)
    assert [task.done() for task in tasks] == [True, True, False]
    tasks[2].cancel()


async def test_a_round_ends_with_a_429_too(ctl: RateController) -> None:
    take_first_window(ctl)
    ctl.on_rate_limited("chat", None)  # a lone 429: weak, the slow start goes on
    assert ctl.state()["chat"].phase is Phase.SLOW_START
    assert ctl.on_success("chat") is True  # the other send answered: the round is over


async def test_a_call_given_up_while_waiting_takes_no_slot(ctl: RateController) -> None:
    take_first_window(ctl)
    queues = SlotQueues()
    gone, kept = await waiting_calls(ctl, queues, 2)
    gone.cancel()
    await settle()
    assert ctl.on_success("chat") is False
    assert ctl.on_success("chat") is True
    queues.wake("chat")
    await asyncio.wait_for(kept, timeout=5)  # the one slot went to the call still waiting
    assert gone.cancelled()


async def test_without_waiting_calls_a_wake_changes_nothing(ctl: RateController) -> None:
    queues = SlotQueues()
    queues.wake("chat")  # nobody waits on this loop: no error, no slot taken
    assert ctl.try_acquire("chat") == 0.0
    assert ctl.try_acquire("chat") == 0.0
    assert ctl.try_acquire("chat") > 0.0


async def test_a_call_whose_deadline_comes_before_the_next_slot_fails_at_once() -> None:
    # Paced at 1/s after two 429s with nothing accepted: the next slot is 1 s away.
    clock = [FROZEN]
    ctl = RateController(clock=lambda: clock[0], tuning=RateTuning(initial_window=2))
    for _ in range(2):
        ctl.try_acquire("chat")
        ctl.on_rate_limited("chat", None)
    assert ctl.try_acquire("chat") == pytest.approx(1.0)
    # A deadline 0.5 s away is refused when the call joins the line, not after sitting
    # there until then: a wait would end in the outer timeout instead.
    with pytest.raises(WebsimRateLimitError, match="no send slot within rate_limit_deadline"):
        async with asyncio.timeout(0.25):
            await await_slot(a_call(ctl), SlotQueues(), 0.5, 60.0)
