"""ChatWebsim end to end against the emulator: wire bodies, stop, flux routing, every entry
point, callbacks, concurrency and event-loop handling."""

from __future__ import annotations

import asyncio
import pickle
import re
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.rate_limiters import BaseRateLimiter

from langchain_websim import (
    ChatWebsim,
    WebsimAPIError,
    WebsimBlockedError,
    WebsimClient,
    WebsimRateLimitError,
)
from langchain_websim.testing import WebsimEmulator

CHAT_ID = re.compile(r"^[a-z0-9]{3}_[a-z0-9]{15}$")
IMAGE_ID = re.compile(r"^[a-z0-9]{7}_[a-z0-9]{12}$")
POEM = "Roses are red. Violets are blue."


@pytest.fixture
def client(emulator: WebsimEmulator) -> Iterator[WebsimClient]:
    with WebsimClient(emulator.base_url, max_retries=0) as websim:
        yield websim


@pytest.fixture
def llm(client: WebsimClient) -> ChatWebsim:
    return ChatWebsim(client=client)


# --------------------------------------------------------------------------- the wire


def test_wire_body_of_a_four_message_conversation(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    answer = llm.invoke(
        [
            SystemMessage("You answer in one word."),
            HumanMessage("Name a colour."),
            AIMessage("Blue."),
            HumanMessage([{"type": "text", "text": "Another "}, {"type": "text", "text": "one?"}]),
        ]
    )
    (request,) = emulator.requests
    assert request.endpoint == "chat"
    assert request.violations == []
    assert set(request.body) == {"project_id", "messages"}  # no model name, no json flag
    assert CHAT_ID.match(request.body["project_id"])
    assert request.body["messages"] == [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one?"},
    ]
    assert answer.content == "Echo: Another one?"
    assert answer.response_metadata == {
        "model_name": "gemini-1.5-pro",
        "model_provider": "websim",
        "project_id": request.body["project_id"],
        "finish_reason": "stop",
        "attempts": 1,
        "rate_wait": 0.0,  # one call on a fresh client never waits for the rate control
    }
    assert answer.usage_metadata is None  # Websim reports no token counts


def test_fixed_project_id_and_fresh_ids(client: WebsimClient, emulator: WebsimEmulator) -> None:
    fixed = ChatWebsim(client=client, project_id="abc_defghijklmnopqr")
    first, second = fixed.invoke("a"), fixed.invoke("b")
    assert [r.body["project_id"] for r in emulator.requests] == ["abc_defghijklmnopqr"] * 2
    assert first.response_metadata["project_id"] == second.response_metadata["project_id"]
    emulator.clear()
    fresh = ChatWebsim(client=client)
    fresh.invoke("a")
    fresh.invoke("b")
    ids = [r.body["project_id"] for r in emulator.requests]
    assert len(set(ids)) == 2 and all(CHAT_ID.match(i) for i in ids)
    overridden = fresh.invoke("c", project_id="xyz_abcdefghijklmno")
    assert overridden.response_metadata["project_id"] == "xyz_abcdefghijklmno"
    assert emulator.requests[-1].body["project_id"] == "xyz_abcdefghijklmno"


def test_model_override_routes_and_is_reported_but_never_sent(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    answer = llm.invoke("hi", model="gemini-2.5-flash")
    assert answer.response_metadata["model_name"] == "gemini-2.5-flash"
    assert "model" not in emulator.requests[0].body


# --------------------------------------------------------------------------- stop


async def test_stop_cuts_the_answer_client_side(
    client: WebsimClient, emulator: WebsimEmulator
) -> None:
    emulator.set_chat_responder(lambda messages, body: POEM)
    llm = ChatWebsim(client=client, stop=["Violets"])
    assert (await llm.ainvoke("poem")).content == "Roses are red. "
    assert (await llm.ainvoke("poem", stop=["."])).content == "Roses are red"  # call wins
    assert llm.invoke("poem", stop=["blue", "red"]).content == "Roses are "  # earliest
    chunks = [chunk async for chunk in llm.astream("poem", stop=["are"])]
    assert [c.content for c in chunks] == ["Roses "]
    assert [c.content for c in llm.stream("poem")] == ["Roses are red. "]
    assert (await ChatWebsim(client=client).ainvoke("poem")).content == POEM
    assert all("stop" not in r.body for r in emulator.requests)  # never sent


# --------------------------------------------------------------------------- flux


def test_flux_builds_the_prompt_from_the_trailing_user_messages(
    client: WebsimClient, emulator: WebsimEmulator
) -> None:
    flux = ChatWebsim(client=client, model="flux")
    answer = flux.invoke(
        [
            SystemMessage("You draw."),
            HumanMessage("a cat"),
            AIMessage("Which style?"),
            HumanMessage("  a lighthouse "),
            HumanMessage([{"type": "text", "text": "at dusk"}]),
        ]
    )
    assert emulator.requests_for("chat") == []
    (request,) = emulator.requests_for("image")
    assert request.violations == []
    assert request.body["prompt"] == "a lighthouse\nat dusk"
    assert request.body["aspect_ratio"] == "1:1"
    assert IMAGE_ID.match(request.body["project_id"])
    url = answer.response_metadata["image_url"]
    assert url.startswith(emulator.base_url + "/images/")
    assert [b["type"] for b in answer.content_blocks] == ["text", "image"]
    assert answer.content_blocks[1]["url"] == url  # type: ignore[typeddict-item]
    assert answer.text == url
    assert answer.response_metadata["model_name"] == "flux"
    assert answer.response_metadata["aspect_ratio"] == "1:1"
    assert answer.response_metadata["project_id"] == request.body["project_id"]


async def test_flux_prompt_and_aspect_ratio_arguments(
    client: WebsimClient, emulator: WebsimEmulator
) -> None:
    flux = ChatWebsim(client=client, model="flux", aspect_ratio="16:9")
    await flux.ainvoke("a red fox")
    await flux.ainvoke("ignored", prompt="a blue whale", aspect_ratio="9:16")
    # A chat model routes to the image endpoint for one call.
    routed = await ChatWebsim(client=client).ainvoke("a green owl", model="flux")
    bodies = [r.body for r in emulator.requests_for("image")]
    assert [(b["prompt"], b["aspect_ratio"]) for b in bodies] == [
        ("a red fox", "16:9"),
        ("a blue whale", "9:16"),
        ("a green owl", "1:1"),
    ]
    assert routed.response_metadata["model_name"] == "flux"
    chunks = [c async for c in flux.astream("a grey heron")]
    assert len(chunks) == 1 and chunks[0].chunk_position == "last"
    assert chunks[0].response_metadata["image_url"].startswith(emulator.base_url)


async def test_flux_without_a_prompt_is_refused(llm: ChatWebsim, emulator: WebsimEmulator) -> None:
    with pytest.raises(ValueError, match="no image prompt"):
        await llm.ainvoke([HumanMessage("a cat"), AIMessage("done")], model="flux")
    with pytest.raises(ValueError, match="aspect_ratio must look like"):
        await llm.ainvoke("a cat", model="flux", aspect_ratio="wide")
    assert emulator.requests == []


# --------------------------------------------------------------------------- entry points


async def test_sync_calls_inside_a_running_loop(llm: ChatWebsim) -> None:
    asyncio.get_running_loop()  # this test body runs on pytest's event loop
    assert llm.invoke("inside").content == "Echo: inside"
    assert [c.content for c in llm.stream("streamed")] == ["Echo: streamed"]
    assert [m.content for m in llm.batch(["a", "b"])] == ["Echo: a", "Echo: b"]


def test_two_asyncio_runs_in_a_row_with_one_instance(llm: ChatWebsim, client: WebsimClient) -> None:
    first = asyncio.run(llm.ainvoke("first"))
    assert len(client._sessions) == 0  # closed with the first loop
    second = asyncio.run(llm.ainvoke("second"))
    assert (first.content, second.content) == ("Echo: first", "Echo: second")
    assert len(client._sessions) == 0


async def test_500_concurrent_ainvoke_share_one_pool(emulator: WebsimEmulator) -> None:
    llm = ChatWebsim(base_url=emulator.base_url, max_retries=0)
    client = llm._websim_client()
    try:
        answers = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(500)))
        assert [a.content for a in answers] == [f"Echo: q{i}" for i in range(500)]
        assert len(client._sessions) == 1
        assert len(emulator.requests_for("chat")) == 500
        assert len({r.body["project_id"] for r in emulator.requests}) == 500
        assert ChatWebsim(base_url=emulator.base_url, max_retries=0)._websim_client() is client
    finally:
        await client.aclose()


def test_chain_with_prompt_and_parser(llm: ChatWebsim) -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")])
    chain = prompt | llm | StrOutputParser()
    assert chain.invoke({"q": "Why is the sky blue?"}) == "Echo: Why is the sky blue?"


async def test_abatch_honours_max_concurrency(llm: ChatWebsim, emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", delay=0.2, times=None)
    tracker = _InFlight()
    answers = await llm.abatch(
        [f"n{i}" for i in range(6)], config={"max_concurrency": 2, "callbacks": [tracker]}
    )
    assert [a.content for a in answers] == [f"Echo: n{i}" for i in range(6)]
    assert tracker.peak == 2
    assert len(emulator.requests) == 6


async def test_astream_events(llm: ChatWebsim) -> None:
    events = [e async for e in llm.astream_events("hi", version="v2")]
    names = [e["event"] for e in events]
    assert names == ["on_chat_model_start", "on_chat_model_stream", "on_chat_model_end"]
    chunk = events[1]["data"]["chunk"]
    assert isinstance(chunk, AIMessageChunk) and chunk.content == "Echo: hi"
    assert chunk.chunk_position == "last"


async def test_callbacks_see_start_token_and_end(llm: ChatWebsim) -> None:
    recorder = _Recorder()
    llm.invoke("sync", config={"callbacks": [recorder]})
    assert recorder.events == ["start", "end"]  # no token outside streaming
    recorder.events.clear()
    assert [c.content for c in llm.stream("s", config={"callbacks": [recorder]})] == ["Echo: s"]
    assert recorder.events == ["start", "token:Echo: s", "end"]
    recorder.events.clear()
    async for _ in llm.astream("a", config={"callbacks": [recorder]}):
        pass
    assert recorder.events == ["start", "token:Echo: a", "end"]


def test_streaming_field_routes_invoke_through_the_stream(client: WebsimClient) -> None:
    recorder = _Recorder()
    llm = ChatWebsim(client=client, streaming=True)
    assert llm.invoke("x", config={"callbacks": [recorder]}).content == "Echo: x"
    assert recorder.events == ["start", "token:Echo: x", "end"]
    # LangChain's own per-call switch reaches the model as stream=...; it is not an error.
    recorder.events.clear()
    plain = ChatWebsim(client=client)
    assert plain.invoke("y", stream=True, config={"callbacks": [recorder]}).content == "Echo: y"
    assert recorder.events == ["start", "token:Echo: y", "end"]


async def test_rate_limiter_is_consulted(client: WebsimClient) -> None:
    limiter = _CountingLimiter()
    llm = ChatWebsim(client=client, rate_limiter=limiter)
    llm.invoke("a")
    await llm.ainvoke("b")
    assert (limiter.sync_calls, limiter.async_calls) == (1, 1)


# --------------------------------------------------------------------------- failures


def test_service_errors_surface_typed(llm: ChatWebsim, emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", status=429, json={"error": "slow down"}, headers={"Retry-After": "1"})
    with pytest.raises(WebsimRateLimitError) as limited:
        llm.invoke("hi")
    assert limited.value.retry_after == 1.0
    emulator.enqueue("chat", status=403, body="<html>cf-chl</html>", content_type="text/html")
    with pytest.raises(WebsimBlockedError):
        llm.invoke("hi")
    emulator.enqueue("chat", status=500, json={"error": "boom"})
    with pytest.raises(WebsimAPIError) as failed:
        llm.invoke("hi")
    assert failed.value.status_code == 500


async def test_retries_are_reported_in_metadata(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", status=503, json={"error": "busy"})
    async with WebsimClient(emulator.base_url, max_retries=1, retry_base_delay=0) as client:
        answer = await ChatWebsim(client=client).ainvoke("again")
    assert answer.content == "Echo: again"
    assert answer.response_metadata["attempts"] == 2


# --------------------------------------------------------------------------- copies


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_pickled_and_loaded_models_work(emulator: WebsimEmulator) -> None:
    llm = ChatWebsim(base_url=emulator.base_url, max_retries=0, stop=["!"])
    client = llm._websim_client()
    try:
        assert llm.invoke("hi!").content == "Echo: hi"  # resolves and uses the pool
        from_pickle = pickle.loads(pickle.dumps(llm))
        assert from_pickle.invoke("pickled!").content == "Echo: pickled"
        from_load = load(
            dumpd(llm), valid_namespaces=["langchain_websim"], allowed_objects=[ChatWebsim]
        )
        assert from_load.invoke("loaded!").content == "Echo: loaded"
        assert from_pickle._websim_client() is client is from_load._websim_client()
    finally:
        client.close()


# --------------------------------------------------------------------------- helpers


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.events.append("start")

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.events.append(f"token:{token}")

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        self.events.append("end")


class _InFlight(AsyncCallbackHandler):
    """Counts model runs between start and end; the peak is the achieved concurrency."""

    def __init__(self) -> None:
        self.running: set[UUID] = set()
        self.peak = 0

    async def on_chat_model_start(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.running.add(run_id)
        self.peak = max(self.peak, len(self.running))

    async def on_llm_end(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self.running.discard(run_id)


class _CountingLimiter(BaseRateLimiter):
    def __init__(self) -> None:
        self.sync_calls = 0
        self.async_calls = 0
        self._lock = threading.Lock()

    def acquire(self, *, blocking: bool = True) -> bool:
        with self._lock:
            self.sync_calls += 1
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        self.async_calls += 1
        return True
