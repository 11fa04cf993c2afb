"""Event loops, threads and closing: the client must work from any calling context and leave
nothing open behind it (the pytest config turns ResourceWarning into errors)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import threading
import weakref
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from langchain_websim import WebsimClient, _loops
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.conftest import run_script_in_dev_mode

USER = [{"role": "user", "content": "ping"}]


class SessionLog:
    """Wraps a client's session factory to keep every session it made."""

    def __init__(self, client: WebsimClient) -> None:
        self.sessions: list[aiohttp.ClientSession] = []
        factory = client._sessions._factory

        def counting() -> aiohttp.ClientSession:
            session = factory()
            self.sessions.append(session)
            return session

        client._sessions._factory = counting

    @property
    def all_closed(self) -> bool:
        return all(s.closed for s in self.sessions)


@pytest.fixture
def client(emulator: WebsimEmulator) -> Iterator[WebsimClient]:
    with WebsimClient(emulator.base_url, retry_base_delay=0.01, timeout=10) as made:
        yield made


# --------------------------------------------------------------------------- calling contexts


async def test_sync_call_inside_a_running_loop(client: WebsimClient) -> None:
    asyncio.get_running_loop()  # we are inside the test's loop
    assert client.chat(USER).text == "Echo: ping"
    assert client.generate_image("a cat").url
    # The sync calls ran on the client's own loop, and the async path still works here.
    assert (await client.achat(USER)).text == "Echo: ping"


def test_one_client_in_two_asyncio_runs(client: WebsimClient) -> None:
    log = SessionLog(client)

    async def use() -> str:
        a = await client.achat(USER)
        b = await client.agenerate_image("a cat")
        return a.text + " " + b.url

    first = asyncio.run(use())
    second = asyncio.run(use())  # a new loop: no "Event loop is closed", no stale session
    assert first == second
    assert first.startswith("Echo: ping http://")
    assert len(log.sessions) == 2  # one per loop...
    assert log.all_closed  # ...each closed when its loop shut down
    assert len(client._sessions) == 0


def test_asyncio_run_then_sync_then_asyncio_run(client: WebsimClient) -> None:
    assert asyncio.run(client.achat(USER)).text == "Echo: ping"
    assert client.chat(USER).text == "Echo: ping"
    assert asyncio.run(client.achat(USER)).text == "Echo: ping"


def test_four_threads_at_once(client: WebsimClient, emulator: WebsimEmulator) -> None:
    barrier = threading.Barrier(4)
    done = threading.Barrier(4)
    answers: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(5)
            answers[i] = client.chat([{"role": "user", "content": f"thread {i}"}]).text
            done.wait(5)  # no thread ends (leaving its loop to the next) before all called
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert answers == {i: f"Echo: thread {i}" for i in range(4)}
    assert len(emulator.requests) == 4
    # Each thread ran its call on a loop of its own, not through a shared loop thread.
    assert len(client._sessions) == 4
    assert not client._background.running


async def test_many_concurrent_calls_share_one_session(
    client: WebsimClient, emulator: WebsimEmulator
) -> None:
    log = SessionLog(client)
    n = 40
    answers = await asyncio.gather(
        *(client.achat([{"role": "user", "content": f"n{i}"}]) for i in range(n))
    )
    assert [a.text for a in answers] == [f"Echo: n{i}" for i in range(n)]
    assert len(log.sessions) == 1
    assert len(client._sessions) == 1
    assert len(emulator.requests) == n
    # A later call on the same loop reuses it too.
    await client.agenerate_image("a cat")
    assert len(log.sessions) == 1


def test_a_sync_call_runs_on_the_calling_thread(client: WebsimClient) -> None:
    before = set(threading.enumerate())
    assert client.chat(USER).text == "Echo: ping"
    assert client.generate_image("a cat").url
    assert set(threading.enumerate()) == before  # no loop thread was started for them


def test_a_new_thread_takes_over_the_loop_of_a_thread_that_ended(
    emulator: WebsimEmulator,
) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    for _ in range(3):  # as LangChain's sync batch does: new worker threads every time
        worker = threading.Thread(target=client.chat, args=(USER,))
        worker.start()
        worker.join(10)
    assert len(emulator.requests) == 3
    assert len(log.sessions) == 1  # one loop and one warm pool, taken over each time
    assert not log.all_closed
    client.close()
    assert log.all_closed


def test_loops_left_by_a_burst_of_threads_are_closed_beyond_a_few(
    emulator: WebsimEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_loops, "_IDLE_RUNNERS", 2)
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    barrier = threading.Barrier(5)
    done = threading.Barrier(5)

    def call() -> None:
        barrier.wait(10)
        client.chat(USER)
        done.wait(10)  # none ends before all have called: five threads, five loops

    burst = [threading.Thread(target=call) for _ in range(5)]
    for worker in burst:
        worker.start()
    for worker in burst:
        worker.join(10)
    assert len(log.sessions) == 5 and not any(s.closed for s in log.sessions)
    late = threading.Thread(target=client.chat, args=(USER,))
    late.start()
    late.join(10)
    # The late thread took one over, two stay for the next threads, two were closed.
    assert len(log.sessions) == 5
    assert sum(s.closed for s in log.sessions) == 2
    client.close()
    assert log.all_closed


class HangingUpServer:
    """A server on its own thread that can hang up the connections it kept open, the way a
    service's keep-alive timeout does between two of a script's calls."""

    def __init__(self) -> None:
        self.transports: list[asyncio.BaseTransport] = []
        self._loop = asyncio.new_event_loop()
        self._runner = self._loop.run_until_complete(self._start())
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _start(self) -> web.ServerRunner:
        runner = web.ServerRunner(web.Server(self._answer))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    async def _answer(self, request: web.BaseRequest) -> web.Response:
        await request.read()
        assert request.transport is not None
        self.transports.append(request.transport)
        return web.json_response({"content": "ok"})

    def hang_up(self) -> None:
        async def close_all() -> None:
            for transport in self.transports:
                transport.close()
            await asyncio.sleep(0)  # the sockets close in the next turn: FIN sent
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def test_a_connection_hung_up_between_sync_calls_is_not_picked() -> None:
    # A thread's loop does not run between its sync calls: the hang-up waits in the socket.
    # The call takes one loop turn first, so it sees the hang-up and opens a new connection,
    # rather than sending on the dead one and retrying after a backoff.
    server = HangingUpServer()
    try:
        with WebsimClient(server.base_url, retry_base_delay=0.01) as client:
            for _ in range(3):
                server.hang_up()
                answer = client.chat(USER)
                assert (answer.text, answer.attempts) == ("ok", 1)
    finally:
        server.stop()
    assert len(server.transports) == 3  # three calls, three connections


CTRL_C = """
import os
import signal
import threading

from langchain_websim import WebsimClient
from langchain_websim.testing import WebsimEmulator

with WebsimEmulator() as emu:
    emu.enqueue("chat", delay=30)
    client = WebsimClient(emu.base_url, max_retries=0)

    def interrupt():
        emu.wait_for_requests_sync(1, timeout=30)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        client.chat([{"role": "user", "content": "slow"}])
    except KeyboardInterrupt:
        print("interrupted")
    print(client.chat([{"role": "user", "content": "again"}]).text)
    client.close()
"""


def test_ctrl_c_stops_a_sync_call_and_the_client_goes_on() -> None:
    # In the main thread the call runs on that thread's own loop: Ctrl-C cancels the call
    # (as asyncio.run does), it does not tear the loop or the pool down mid-step.
    proc = run_script_in_dev_mode(CTRL_C)
    assert proc.stderr == ""
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["interrupted", "Echo: again"]


async def test_sync_call_from_the_clients_own_loop_is_refused(client: WebsimClient) -> None:
    async def nested() -> str:
        return client.chat(USER).text

    # Called where a loop runs, run_sync uses the background loop: a sync call made on that
    # loop would wait for itself.
    with pytest.raises(RuntimeError, match="use the async method"):
        client.run_sync(nested())


def test_sync_call_inside_a_sync_call_is_served(client: WebsimClient) -> None:
    async def nested() -> str:
        return client.chat(USER).text

    # The outer call runs on this thread's own loop; the inner one, made where that loop
    # runs, goes to the background loop: no deadlock, and the answer comes back.
    assert client.run_sync(nested()) == "Echo: ping"


# --------------------------------------------------------------------------- closing


async def test_aclose_closes_everything(emulator: WebsimEmulator) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    await client.achat(USER)  # session on this loop
    client.chat(USER)  # a sync call where a loop runs: session on the background loop
    await asyncio.to_thread(client.chat, USER)  # session on the worker thread's own loop
    thread = client._background._thread
    assert thread is not None and thread.is_alive()
    assert len(log.sessions) == 3
    await client.aclose()
    assert client.closed
    assert log.all_closed
    assert len(client._sessions) == 0
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        await client.achat(USER)


def test_close_closes_everything(emulator: WebsimEmulator) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    client.chat(USER)  # session on this thread's own loop
    # A session on a loop that is still running in another thread, and one on the
    # background loop (a sync call made on that loop).
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        asyncio.run_coroutine_threadsafe(client.achat(USER), loop).result(10)
        loop.call_soon_threadsafe(client.chat, USER)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(10)
        thread = client._background._thread
        assert len(log.sessions) == 3
        client.close()
        assert log.all_closed
        assert thread is not None and not thread.is_alive()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.chat(USER)


def test_with_block_closes(emulator: WebsimEmulator) -> None:
    with WebsimClient(emulator.base_url) as client:
        log = SessionLog(client)
        client.generate_image("a cat")
        assert not log.all_closed
    assert client.closed
    assert log.all_closed


async def test_async_with_block_closes(emulator: WebsimEmulator) -> None:
    async with WebsimClient(emulator.base_url) as client:
        log = SessionLog(client)
        await client.agenerate_image("a cat")
        assert not log.all_closed
    assert client.closed
    assert log.all_closed


async def test_close_from_async_code_closes_this_loops_session(emulator: WebsimEmulator) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    await client.achat(USER)
    client.close()  # the sync close, called on a running loop: must not block it
    await asyncio.sleep(0)  # let the scheduled close run
    for _ in range(100):
        if log.all_closed:
            break
        await asyncio.sleep(0.01)
    assert log.all_closed


def test_close_cuts_off_a_call_in_flight(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", delay=30)
    client = WebsimClient(emulator.base_url)
    outcome: list[BaseException | str] = []

    def call() -> None:
        try:
            outcome.append(client.chat(USER).text)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    emulator.wait_for_requests_sync(1)
    client.close()
    caller.join(10)
    assert not caller.is_alive()  # no caller waits forever on a stopped loop
    (result,) = outcome
    assert isinstance(result, RuntimeError)
    assert "closed while this call ran" in str(result)


def test_a_dropped_client_stops_its_thread(emulator: WebsimEmulator) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    client.chat(USER)  # on this thread's own loop

    async def on_the_background_loop(made: WebsimClient) -> None:
        made.chat(USER)  # a sync call where a loop runs

    asyncio.run(on_the_background_loop(client))
    thread = client._background._thread
    assert thread is not None and thread.is_alive()
    assert len(log.sessions) == 2
    del client
    gc.collect()
    thread.join(10)
    assert not thread.is_alive()
    assert log.all_closed


def test_a_dropped_client_is_freed_and_closes_its_loops_at_once(
    emulator: WebsimEmulator,
) -> None:
    # Nothing the client owns points back at it: dropped, it goes (and closes its loops and
    # sessions) as soon as the last reference does, not at the next garbage collection.
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    client.chat(USER)  # this thread's own loop and session
    asyncio.run(client.achat(USER))  # a session on a loop that has ended since
    dropped = weakref.ref(client)
    gc.disable()
    try:
        del client
        assert dropped() is None
        assert len(log.sessions) == 2 and log.all_closed
    finally:
        gc.enable()


def test_a_dropped_client_session_closes_with_its_loop(emulator: WebsimEmulator) -> None:
    sessions: list[aiohttp.ClientSession] = []

    async def use_and_drop() -> None:
        client = WebsimClient(emulator.base_url)
        log = SessionLog(client)
        await client.achat(USER)
        sessions.extend(log.sessions)
        del client, log
        gc.collect()  # the session must survive this, to be closed by the loop below
        assert not any(s.closed for s in sessions)

    asyncio.run(use_and_drop())
    assert len(sessions) == 1 and sessions[0].closed


# --------------------------------------------------------------------------- process exit


SCRIPT = """
import asyncio
import atexit
import gc
import logging
import sys
import threading

import aiohttp


# Registered first, so it runs last: after the package's own exit hooks.  An unclosed
# session alive at exit is otherwise silent (it is never garbage-collected), so look.
def check_nothing_left_open():
    sessions = [
        o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed
    ]
    threads = [t.name for t in threading.enumerate() if t.name == "langchain-websim"]
    if sessions or threads:
        sys.stderr.write(f"left open at exit: {len(sessions)} sessions, threads {threads}\\n")


atexit.register(check_nothing_left_open)

from langchain_websim import WebsimClient  # noqa: E402

client = WebsimClient(sys.argv[1], retry_base_delay=0.01)
print(client.chat([{"role": "user", "content": "sync"}]).text)
print(asyncio.run(client.achat([{"role": "user", "content": "async"}])).text)
print(client.generate_image("a cat").url.startswith(sys.argv[1]))


async def both():
    shared = WebsimClient.shared(sys.argv[1])
    await shared.achat([{"role": "user", "content": "shared"}])
    # A sync call from inside a running loop, then leave everything open.
    return shared.chat([{"role": "user", "content": "nested"}]).text


print(asyncio.run(both()))
"""


def test_unclosed_clients_exit_silently(emulator: WebsimEmulator) -> None:
    proc = run_script_in_dev_mode(SCRIPT, emulator.base_url)
    assert proc.stderr == ""
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == ["Echo: sync", "Echo: async", "True", "Echo: nested"]
    assert len(emulator.requests) == 5


# --------------------------------------------------------------------------- unusual loops


def test_loop_closed_without_shutdown(emulator: WebsimEmulator) -> None:
    # Hand-made loops are sometimes closed without shutdown_asyncgens(); the session on such
    # a loop can no longer be awaited, but its sockets must still be released.
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(client.achat(USER)).text == "Echo: ping"
    loop.close()
    assert len(log.sessions) == 1 and not log.sessions[0].closed
    client.close()
    assert log.all_closed
    gc.collect()  # a ResourceWarning from a leaked socket would fail the test here


async def test_new_loop_forgets_dead_ones(emulator: WebsimEmulator) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)

    def on_a_dead_loop() -> None:
        loop = asyncio.new_event_loop()
        loop.run_until_complete(client.achat(USER))
        loop.close()

    await asyncio.to_thread(on_a_dead_loop)
    await client.achat(USER)  # opening this loop's session releases the dead loop's one
    assert log.sessions[0].closed and not log.sessions[1].closed
    await client.aclose()
    assert log.all_closed
    gc.collect()


def test_close_with_an_idle_loop(emulator: WebsimEmulator) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(client.achat(USER))
        client.close()  # the loop is neither running nor closed: it is run to close the session
        assert log.all_closed
    finally:
        loop.close()


def test_close_from_the_clients_own_loop(emulator: WebsimEmulator) -> None:
    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    thread = None

    async def close_from_inside() -> str:
        nonlocal thread
        thread = threading.current_thread()
        text = (await client.achat(USER)).text
        client.close()
        return text

    assert client.run_sync(close_from_inside()) == "Echo: ping"
    assert thread is threading.current_thread()  # the caller's own loop: no thread to stop
    assert client.closed
    assert log.all_closed


def test_cancellation_inside_a_sync_call_is_not_mistaken_for_close() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with WebsimClient("http://127.0.0.1:9") as client:
        with pytest.raises(concurrent.futures.CancelledError):
            client.run_sync(cancelled())
        assert not client.closed


def test_exit_hook_closes_live_clients(
    emulator: WebsimEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_websim import _client

    client = WebsimClient(emulator.base_url)
    log = SessionLog(client)
    client.chat(USER)
    live = _client.weakref.WeakSet([client])
    monkeypatch.setattr(_client, "_LIVE_CLIENTS", live)
    _client._close_all_clients()
    assert client.closed
    assert log.all_closed


@pytest.mark.parametrize("closer", ["aclose", "close"])
@pytest.mark.parametrize("adaptive_rate", [True, False])
async def test_aclose_with_calls_in_flight_blames_no_one_and_retries_nothing(
    emulator: WebsimEmulator, caplog: pytest.LogCaptureFixture, adaptive_rate: bool, closer: str
) -> None:
    client = WebsimClient(
        emulator.base_url, retry_base_delay=0.01, timeout=10, adaptive_rate=adaptive_rate
    )
    emulator.enqueue("chat", delay=30, times=3)
    calls = [asyncio.create_task(client.achat(USER)) for _ in range(3)]
    await emulator.wait_for_requests(3)
    with caplog.at_level(logging.DEBUG, logger="langchain_websim"):
        if closer == "aclose":
            await client.aclose()
        else:
            client.close()  # the sync close from async code: the session closes in a task
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        # The same words as a sync call cut short by close().
        assert type(outcome) is RuntimeError, repr(outcome)
        assert str(outcome) == "the Websim client was closed while this call ran"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "retrying" not in caplog.text
    assert len(emulator.requests) == 3  # nothing was sent again
