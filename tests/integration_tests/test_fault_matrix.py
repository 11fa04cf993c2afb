"""The fault matrix of ``docs/reliability.md``, against the emulator over real sockets.

Each row (a scripted emulator fault and what the caller must get) is written once, in
``ANSWERED`` or ``REFUSED`` or as one test below, and run on every surface it applies to:
``client`` (``WebsimClient``, chat and image), ``chat`` and ``chat_flux`` (``ChatWebsim``)
and ``tool`` (``WebsimImageTool``; see ``_faults.py``).  Every row counts the requests the
emulator received.  Each test prints one ``MEASURED`` line with what it observed;
``pytest -s`` shows them, and the table's "measured" column is copied from them.

To run the whole matrix under other settings, parametrize the ``surface_settings``
fixture: every surface of every row is built with them.
"""

from __future__ import annotations

import asyncio
import gc
import re
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import WebsimClient
from langchain_websim.errors import WebsimResponseError
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests._faults import (
    SURFACES,
    Surface,
    SurfaceFactory,
    closed_port,
    measured,
    shared_client_of,
    surfaces_on,
)
from tests.integration_tests._faults_rows import ANSWERED, REFUSED, Answered, Refused
from tests.integration_tests.conftest import run_script_in_dev_mode

pytestmark = pytest.mark.slow  # tens of seconds in all: a parallel run starts this file first

MiB = 1024 * 1024
BODY_CAP = 10 * MiB  # the documented cap on a response body
EXCERPT_CHARS = 500  # errors quote at most this much of a body (langchain_websim.errors)
by_surface = pytest.mark.parametrize("surface", SURFACES, ids=str)


@pytest.fixture(
    params=[{"adaptive_rate": True}, {"adaptive_rate": False}], ids=["rate-on", "rate-off"]
)
def surface_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings every surface of every row is built with; a row's own settings win.

    The whole matrix runs with the adaptive rate control on (the default) and off: on, a
    429 on an endpoint with no recent success still counts against ``max_retries``, so
    every row holds as it did before the control existed.
    """
    return dict(request.param)


@pytest.fixture
async def make(
    emulator: WebsimEmulator,
    make_client: Callable[..., WebsimClient],
    surface_settings: dict[str, Any],
) -> AsyncIterator[SurfaceFactory]:
    factory = SurfaceFactory(emulator, make_client, surface_settings)
    yield factory
    await factory.aclose()


# --------------------------------------------------------------------------- the rows


@by_surface
@pytest.mark.parametrize("row", ANSWERED, ids=lambda row: row.id)
async def test_fault_is_answered(
    make: SurfaceFactory, emulator: WebsimEmulator, row: Answered, surface: Surface
) -> None:
    caller = make(surface, **row.settings)
    emulator.enqueue(surface.endpoint, **row.script)
    answer = await caller.ask()
    assert caller.statuses() == row.statuses
    assert len(emulator.requests) == len(row.statuses)
    # Every surface but the tool reports how many attempts the answer took.
    assert answer.attempts == (None if surface.name == "tool" else len(row.statuses))
    first, second = emulator.requests[:2]
    gap = second.time - first.time
    assert gap >= row.min_gap
    measured(row.id, surface=surface, requests=len(row.statuses), gap_s=f"{gap:.3f}")


@pytest.mark.parametrize(
    ("row", "surface"),
    [(row, s) for row in REFUSED for s in surfaces_on(*row.endpoints)],
    ids=lambda value: value.id if isinstance(value, Refused) else str(value),
)
async def test_fault_is_a_typed_error(
    make: SurfaceFactory, emulator: WebsimEmulator, row: Refused, surface: Surface
) -> None:
    settings = dict(row.settings)
    port = closed_port()
    if row.script is None:
        settings["base_url"] = f"http://127.0.0.1:{port}"
    caller = make(surface, **settings)
    script = row.script
    failure = await caller.fail(
        lambda: None if script is None else emulator.enqueue(surface.endpoint, **script)
    )
    err = failure.error
    assert type(err) is row.error, err
    assert err.endpoint == surface.endpoint
    assert {name: getattr(err, name) for name in row.fields} == row.fields
    assert all(text.format(port=port) in str(err) for text in row.says), str(err)
    assert all(text in getattr(err, "body", "") for text in row.body), err
    assert failure.statuses == row.statuses
    if row.script is None:
        assert emulator.requests == []
    if row.within is not None:
        assert failure.elapsed <= row.within
    if surface.name == "tool":
        assert failure.message is not None
        if row.tool_message is not None:
            assert failure.message == row.tool_message.format(port=port)
        assert all(text in failure.message for text in row.tool_says), failure.message
    measured(
        row.id, surface=surface, requests=len(failure.statuses), elapsed_s=f"{failure.elapsed:.3f}"
    )


# --------------------------------------------------------------------------- huge body


@by_surface
async def test_body_over_the_cap_is_refused_without_holding_it(
    make: SurfaceFactory, emulator: WebsimEmulator, surface: Surface
) -> None:
    caller = make(surface)
    await caller.ask()  # the pool and the session exist already
    tracemalloc.start()
    try:
        failure = await caller.fail(lambda: emulator.enqueue(surface.endpoint, body_size=50 * MiB))
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The cap itself may be held while reading; the 50 MiB body never is, and the error
    # (alive here, with its traceback) does not keep what was read.
    assert peak < 1.5 * BODY_CAP
    assert held < 2 * MiB
    assert type(failure.error) is WebsimResponseError
    assert "exceeds the 10 MiB cap" in str(failure.error)
    assert failure.error.attempts == 1
    assert len(failure.error.body) <= EXCERPT_CHARS
    assert failure.statuses == [200]
    if surface.name == "tool":
        assert failure.message is not None and "exceeds the 10 MiB cap" in failure.message
    await caller.ask("after")  # the same instance still answers
    measured(
        "body-50MiB",
        surface=surface,
        requests=1,
        peak_MiB=f"{peak / MiB:.1f}",
        held_after_MiB=f"{held / MiB:.2f}",
    )


# --------------------------------------------------------------------------- the caller's side


@by_surface
async def test_cancelled_mid_request_propagates_and_the_instance_still_works(
    make: SurfaceFactory, emulator: WebsimEmulator, surface: Surface
) -> None:
    caller = make(surface)
    emulator.enqueue(surface.endpoint, delay=30)
    task = asyncio.create_task(caller.acall("held"))
    await emulator.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await caller.ask("next")
    assert caller.statuses() == [200, 200]
    assert len(emulator.requests) == 2
    measured("cancelled", surface=surface, requests=2)


@by_surface
async def test_200_concurrent_calls_with_30_percent_429_are_all_answered(
    make: SurfaceFactory, emulator: WebsimEmulator, surface: Surface
) -> None:
    calls = 200
    emulator.set_fault_rate(surface.endpoint, 0.3, status=429, seed=2024)
    # 429s at random, whatever the pace, look like a rate limit shared with other clients:
    # the adaptive control would slow 200 calls down to a crawl (see the next test), so this
    # row is about the retry policy alone.
    caller = make(
        surface,
        max_retries=30,
        retry_base_delay=0.005,
        retry_max_delay=0.05,
        adaptive_rate=False,
    )
    texts = [f"call {i}" for i in range(calls)]
    results = await asyncio.gather(*(caller.acall(text) for text in texts))
    answers = [caller.answer(result, text) for result, text in zip(results, texts, strict=True)]
    seen = caller.statuses()
    rate_limited = seen.count(429)
    assert seen.count(200) == calls
    assert rate_limited > 0
    assert len(seen) == calls + rate_limited == len(emulator.requests)
    if surface.name != "tool":  # the tool does not report attempts
        assert sum(a.attempts or 0 for a in answers) == len(seen)
    measured("200-concurrent", surface=surface, requests=len(seen), answered_429=rate_limited)


async def test_random_429s_with_rate_control_on_are_answered_by_slowing_down(
    make_client: Callable[..., WebsimClient], emulator: WebsimEmulator
) -> None:
    # From one client's view, 429s unrelated to its pace cannot be told from a limit other
    # clients share, so the control slows down: every call is still answered, none fails.
    calls = 10
    emulator.set_fault_rate("chat", 0.3, status=429, seed=2024)
    client = make_client(max_retries=5)  # for 429s before the first success (refusal)
    answers = await asyncio.gather(
        *(client.achat([{"role": "user", "content": f"call {i}"}]) for i in range(calls))
    )
    assert [a.text for a in answers] == [f"Echo: call {i}" for i in range(calls)]
    statuses = [r.status for r in emulator.requests]
    assert statuses.count(200) == calls
    assert client.rate_state()["chat"].rate_limited == statuses.count(429) > 0
    assert sum(a.attempts for a in answers) == len(statuses)


@by_surface
async def test_sync_calls_from_8_threads_while_the_main_loop_runs(
    make: SurfaceFactory, emulator: WebsimEmulator, surface: Surface
) -> None:
    caller = make(surface)
    barrier = threading.Barrier(8)
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = caller.call(f"thread {i}")
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    # The main thread's loop stays live meanwhile: it makes a call of its own.
    await caller.ask("main loop")
    for thread in threads:
        await asyncio.to_thread(thread.join)
    for i in range(8):
        assert not isinstance(results[i], BaseException), results[i]
        caller.answer(results[i], f"thread {i}")
    assert caller.statuses() == [200] * 9
    assert len(emulator.requests) == 9
    measured("8-threads-and-loop", surface=surface, requests=9)


@by_surface
def test_one_instance_in_two_asyncio_runs(
    make: SurfaceFactory, emulator: WebsimEmulator, surface: Surface
) -> None:
    caller = make(surface)
    first = asyncio.run(caller.acall("first run"))
    second = asyncio.run(caller.acall("second run"))
    caller.answer(first, "first run")
    caller.answer(second, "second run")
    assert caller.statuses() == [200, 200]
    assert len(emulator.requests) == 2
    gc.collect()  # an unclosed session of the first loop would warn here (an error in pytest)
    measured("two-asyncio-runs", surface=surface, requests=2)


_SCRIPT = """
import asyncio
from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool

client = WebsimClient(retry_base_delay=0.01)
print(client.chat([{"role": "user", "content": "sync"}]).text)
print(asyncio.run(client.achat([{"role": "user", "content": "async"}])).text)
print(client.generate_image("a cat").url)
other = WebsimClient(retry_base_delay=0.01)
print(asyncio.run(other.agenerate_image("a dog")).url)
print(other.chat([{"role": "user", "content": "after asyncio.run"}]).text)
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
    assert len(lines) == 10
    client_texts, model_texts = lines[:2] + lines[4:5], lines[5:7]
    assert client_texts == ["Echo: sync", "Echo: async", "Echo: after asyncio.run"]
    assert model_texts == ["Echo: sync", "Echo: async"]
    urls = lines[2:4] + lines[7:]
    assert all(url.startswith(emulator.base_url + "/images/") for url in urls), urls
    endpoints = [r.endpoint for r in emulator.requests]
    assert (
        endpoints == ["chat", "chat", "image", "image", "chat"] + ["chat", "chat"] + ["image"] * 3
    )
    measured("script-without-close", exit=proc.returncode, stderr=repr(proc.stderr), requests=10)


# --------------------------------------------------------------------------- the docs page

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def test_docs_table_names_every_row_and_its_code_runs(
    emulator: WebsimEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## The fault matrix", 1)[1].split("### Running the matrix", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert (
        len(rows) == 1 + 19
    )  # the header, the 18 rows of the first matrix, random 429s with control on
    named = set(re.findall(r"`(test_\w+)(?:\[([\w-]+)\])?`", table))
    tests = {name for name in vars(sys.modules[__name__]) if name.startswith("test_")}
    # Every test is named on the page, each table-driven one with every row it runs...
    assert {name for name, _ in named} == tests - {
        "test_docs_table_names_every_row_and_its_code_runs"
    }
    assert {(name, row) for name, row in named if row} == {
        *(("test_fault_is_answered", row.id) for row in ANSWERED),
        *(("test_fault_is_a_typed_error", row.id) for row in REFUSED),
    }  # ...and the page names nothing else
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 3  # the per-client tuning (no call), then the two below
    monkeypatch.setenv("WEBSIM_BASE_URL", emulator.base_url)
    emulator.enqueue("chat", status=200)  # the second block's answer
    emulator.enqueue("chat", status=429, headers={"Retry-After": "3600"})  # the third's
    namespace: dict[str, Any] = {"__name__": "reliability_docs"}
    try:
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"{DOC.name} python block {number}", "exec"), namespace)
    finally:
        llm = namespace.get("llm")
        if llm is not None:  # the third block's model, on the process-wide client
            shared_client_of(llm).close()
    out = capsys.readouterr().out.splitlines()
    assert out == ["Echo: Say hello", "rate limited after 1 attempt(s); next try in 3600 s"]
