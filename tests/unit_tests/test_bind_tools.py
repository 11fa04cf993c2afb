"""ChatWebsim.bind_tools and the tool-calling request path, with HTTP mocked.

The prompt protocol and the reply parser have their own tests (``test_tool_calling*.py``);
these check the wiring: what ``bind_tools`` binds, where the instruction goes, how replies
become ``tool_calls``/``invalid_tool_calls`` on invoke and on the stream, and the re-ask.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import pytest
from aioresponses import aioresponses
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableBinding
from langchain_core.tools import tool
from langchain_core.tracers._streaming import _StreamingCallbackHandler
from pydantic import BaseModel, Field
from typing_extensions import TypedDict
from yarl import URL

from langchain_websim import ChatWebsim, WebsimClient
from langchain_websim._prompt import format_instruction, with_instruction

BASE = "http://websim.test"
CHAT_URL = BASE + "/api/v1/inference/run_chat_completion"


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str = Field(description="City name")
    unit: str = Field(default="celsius", description="celsius or fahrenheit")


class Lookup(TypedDict):
    """Look a word up in the dictionary."""

    word: Annotated[str, ..., "the word"]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


SEARCH = {
    "title": "search",
    "description": "Search the web.",
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
}


@pytest.fixture
async def llm() -> AsyncIterator[ChatWebsim]:
    client = WebsimClient(BASE, max_retries=0)
    yield ChatWebsim(client=client)
    await client.aclose()


def reply(http: aioresponses, *texts: str) -> None:
    for text in texts:
        http.post(CHAT_URL, payload={"content": text})


def sent(http: aioresponses) -> list[list[dict[str, str]]]:
    calls = http.requests.get(("POST", URL(CHAT_URL)), [])
    return [json.loads(call.kwargs["data"])["messages"] for call in calls]


def bodies(http: aioresponses) -> list[dict[str, Any]]:
    return [json.loads(c.kwargs["data"]) for c in http.requests.get(("POST", URL(CHAT_URL)), [])]


def envelope(*calls: tuple[str, dict[str, Any]]) -> str:
    return json.dumps({"tool_calls": [{"name": n, "arguments": a} for n, a in calls]})


# --------------------------------------------------------------------------- binding


def test_every_kind_of_tool_becomes_an_openai_tool_dict() -> None:
    responses_style = {"type": "function", "name": "ping", "parameters": {"type": "object"}}
    openai_tool = {"type": "function", "function": {"name": "echo", "parameters": {}}}
    bound = ChatWebsim().bind_tools(
        [GetWeather, Lookup, add, multiply, SEARCH, openai_tool, responses_style]
    )
    assert isinstance(bound, RunnableBinding)
    tools = bound.kwargs["tools"]
    assert [t["function"]["name"] for t in tools] == [
        "GetWeather",
        "Lookup",
        "add",
        "multiply",
        "search",
        "echo",
        "ping",
    ]
    assert all(t["type"] == "function" for t in tools)
    assert tools[0]["function"]["parameters"]["required"] == ["city"]
    assert tools[2]["function"]["description"] == "Add two integers."
    assert "tool_choice" not in bound.kwargs


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("any", "any"),
        ("required", "any"),
        (True, "any"),
        ("none", "none"),
        ("add", "add"),
        ({"type": "function", "function": {"name": "add"}}, "add"),
    ],
)
def test_tool_choice_spellings(choice: Any, expected: str) -> None:
    assert ChatWebsim().bind_tools([add, multiply], tool_choice=choice).kwargs["tool_choice"] == (
        expected
    )


def test_unknown_tool_choice_names_the_known_tools() -> None:
    with pytest.raises(ValueError, match=r"unknown tool 'divide'; known tools: 'add', 'multiply'"):
        ChatWebsim().bind_tools([add, multiply], tool_choice="divide")
    with pytest.raises(ValueError, match="unknown tool 'divide'"):
        ChatWebsim().bind_tools(
            [add], tool_choice={"type": "function", "function": {"name": "divide"}}
        )
    with pytest.raises(TypeError, match="tool_choice must be None, a string, a bool or a dict"):
        ChatWebsim().bind_tools([add], tool_choice=3)  # type: ignore[arg-type]


def test_extra_kwargs_pass_through_to_bind() -> None:
    bound = ChatWebsim().bind_tools([add], project_id="abc_0123456789abcde")
    assert bound.kwargs["project_id"] == "abc_0123456789abcde"


def test_tools_that_cannot_be_offered_are_refused() -> None:
    with pytest.raises(TypeError, match="tools must be a list of tools"):
        ChatWebsim().bind_tools(add)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tool 1 cannot be offered to the model"):
        ChatWebsim().bind_tools([add, {"properties": {}}])
    with pytest.raises(ValueError, match=r"tool 0 is a provider built-in tool \('web_search_pre"):
        ChatWebsim().bind_tools([{"type": "web_search_preview"}])


def test_a_tool_bound_twice_is_offered_once_but_two_different_ones_clash() -> None:
    same = ChatWebsim().bind_tools([GetWeather, GetWeather.model_json_schema()])
    assert len(same.kwargs["tools"]) == 1
    other = {**SEARCH, "title": "add"}
    with pytest.raises(ValueError, match="two different tools are named 'add'"):
        ChatWebsim().bind_tools([add, other])


# --------------------------------------------------------------------------- the instruction


def test_instruction_is_merged_after_the_leading_system_messages() -> None:
    wire = [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "late"},
    ]
    before = json.dumps(wire)
    merged = with_instruction(wire, "TOOLS")
    assert merged[1] == {"role": "system", "content": "Answer in French.\n\nTOOLS"}
    assert merged[0] == wire[0] and merged[2:] == wire[2:]
    assert json.dumps(wire) == before  # the input is not mutated
    assert with_instruction(wire[2:], "TOOLS")[0] == {"role": "system", "content": "TOOLS"}
    blank = [{"role": "system", "content": "  "}, {"role": "user", "content": "hi"}]
    assert with_instruction(blank, "TOOLS")[0] == {"role": "system", "content": "TOOLS"}
    assert with_instruction(wire, "") is wire


def test_format_instruction() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    text = format_instruction(
        {
            "type": "json_schema",
            "json_schema": {"name": "Out", "description": "d", "schema": schema},
        }
    )
    assert text.startswith("Reply with ONLY a JSON object that satisfies the JSON schema")
    assert "Object: Out\nDescription: d\n" in text
    assert text.endswith('JSON schema: {"type":"object","properties":{"a":{"type":"integer"}}}')
    assert "Reply with ONLY a JSON object: no prose" in format_instruction({"type": "json_object"})
    assert format_instruction({"type": "json_object"}, with_tools=True).startswith(
        "When you answer without calling a tool, reply"
    )
    with pytest.raises(ValueError, match="response_format must be"):
        format_instruction({"type": "text"})


# --------------------------------------------------------------------------- requests


async def test_tools_are_offered_in_the_system_message_and_calls_parsed(
    http: aioresponses, llm: ChatWebsim
) -> None:
    reply(http, "Let me check.\n```json\n" + envelope(("GetWeather", {"city": "Paris"})) + "\n```")
    message = await llm.bind_tools([GetWeather, add]).ainvoke(
        [SystemMessage("You are helpful."), HumanMessage("Weather in Paris?")]
    )
    (messages,) = sent(http)
    system = messages[0]
    assert system["role"] == "system"
    assert system["content"].startswith("You are helpful.\n\nYou can call the following tools.")
    assert (
        "Tool: GetWeather\nDescription: Get the current weather in a city.\n" in system["content"]
    )
    assert "Tool: add\n" in system["content"]
    assert messages[1:] == [{"role": "user", "content": "Weather in Paris?"}]
    assert message.content == "Let me check."
    (call,) = message.tool_calls
    assert (call["name"], call["args"]) == ("GetWeather", {"city": "Paris"})
    assert call["id"] is not None and call["id"].startswith("call_")
    assert message.invalid_tool_calls == []
    assert message.response_metadata["tool_call_reasks"] == 0


async def test_a_plain_answer_with_tools_bound_is_text(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, 'The config is {"city": "Paris"} as you asked.')
    message = await llm.bind_tools([GetWeather]).ainvoke("hello")
    assert message.content == 'The config is {"city": "Paris"} as you asked.'
    assert message.tool_calls == [] and message.invalid_tool_calls == []


async def test_invalid_calls_carry_their_error(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, envelope(("GetWeather", {"town": "Paris"}), ("teleport", {"to": "Mars"})))
    message = await llm.bind_tools([GetWeather]).ainvoke("go")
    assert message.tool_calls == []
    schema_miss, unknown = message.invalid_tool_calls
    assert schema_miss["name"] == "GetWeather"
    assert "missing required property 'city'" in (schema_miss["error"] or "")
    assert unknown["name"] == "teleport"
    assert unknown["error"] == "unknown tool 'teleport'; available tools: 'GetWeather'"


async def test_no_instruction_without_tools_or_with_tool_choice_none(
    http: aioresponses, llm: ChatWebsim
) -> None:
    call = envelope(("add", {"a": 1, "b": 2}))
    reply(http, call, call)
    plain = await llm.ainvoke("hi")
    offered_nothing = await llm.bind_tools([add], tool_choice="none").ainvoke("hi")
    assert sent(http) == [[{"role": "user", "content": "hi"}]] * 2
    assert plain.content == call and offered_nothing.content == call
    assert offered_nothing.tool_calls == []
    assert "tool_call_reasks" not in plain.response_metadata


async def test_tools_can_be_passed_per_call(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, envelope(("multiply", {"a": 2, "b": 3})))
    message = await llm.ainvoke("2*3", tools=[multiply], tool_choice="multiply")
    assert message.tool_calls[0]["args"] == {"a": 2, "b": 3}
    assert "You MUST call the tool 'multiply'" in sent(http)[0][0]["content"]


async def test_stop_cuts_the_reply_before_it_is_parsed(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, envelope(("add", {"a": 1, "b": 2})) + "\nObservation: 3")
    message = await llm.bind_tools([add]).ainvoke("1+2", stop=["\nObservation"])
    assert message.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert message.content == ""


async def test_json_flag_is_sent_only_when_asked(http: aioresponses) -> None:
    reply(http, "{}", "{}", "{}")
    async with WebsimClient(BASE, max_retries=0) as client:
        await ChatWebsim(client=client).ainvoke("a")
        flagged = ChatWebsim(client=client, json_mode=True)
        await flagged.ainvoke("b")
        await flagged.bind_tools([add]).ainvoke("c")
    assert ["json" in body for body in bodies(http)] == [False, True, True]
    assert bodies(http)[1]["json"] is True


# --------------------------------------------------------------------------- the re-ask


async def test_a_forced_call_is_asked_for_again_once(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, "It is sunny in Paris.", envelope(("GetWeather", {"city": "Paris"})))
    message = await llm.bind_tools([GetWeather], tool_choice="GetWeather").ainvoke("Paris?")
    first, second = sent(http)
    assert second[: len(first)] == first
    assert second[len(first)] == {"role": "assistant", "content": "It is sunny in Paris."}
    correction = second[len(first) + 1]
    assert correction["role"] == "user"
    assert correction["content"].startswith("Your previous reply did not call a tool")
    assert "calling the tool 'GetWeather'" in correction["content"]
    assert message.tool_calls[0]["args"] == {"city": "Paris"}
    assert message.response_metadata["tool_call_reasks"] == 1
    assert message.response_metadata["attempts"] == 2
    # The re-ask continues the same Websim project.
    assert len({body["project_id"] for body in bodies(http)}) == 1


async def test_the_re_ask_quotes_why_the_calls_were_invalid(
    http: aioresponses, llm: ChatWebsim
) -> None:
    reply(http, envelope(("GetWeather", {})), "still no")
    message = await llm.bind_tools([GetWeather], tool_choice="any").ainvoke("Paris?")
    correction = sent(http)[1][-1]["content"]
    assert correction.startswith("Your previous reply made no valid tool call: ")
    assert "missing required property 'city'" in correction
    assert "calling one of the tools 'GetWeather'" in correction
    # After the re-ask, what came back is returned as it is.
    assert message.content == "still no" and message.tool_calls == []
    assert message.response_metadata["tool_call_reasks"] == 1


@pytest.mark.parametrize("retries", [0, 2])
async def test_tool_call_retries_is_configurable(http: aioresponses, retries: int) -> None:
    reply(http, *["no"] * (retries + 1))
    async with WebsimClient(BASE, max_retries=0) as client:
        llm = ChatWebsim(client=client, tool_call_retries=retries)
        message = await llm.bind_tools([add], tool_choice=True).ainvoke("1+2")
    assert len(sent(http)) == retries + 1
    assert message.content == "no"
    assert message.response_metadata["tool_call_reasks"] == retries


async def test_no_re_ask_unless_a_call_is_required(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, "no tool needed")
    message = await llm.bind_tools([add]).ainvoke("hi")
    assert len(sent(http)) == 1 and message.content == "no tool needed"


# --------------------------------------------------------------------------- streaming


async def test_astream_yields_one_last_chunk_with_the_calls(
    http: aioresponses, llm: ChatWebsim
) -> None:
    reply(http, "ok " + envelope(("add", {"a": 1, "b": 2}), ("nope", {"x": 1})))
    chunks = [chunk async for chunk in llm.bind_tools([add]).astream("1+2")]
    (chunk,) = chunks
    assert isinstance(chunk, AIMessageChunk) and chunk.chunk_position == "last"
    assert chunk.content == "ok"
    assert [(c["name"], c["args"]) for c in chunk.tool_calls] == [("add", {"a": 1, "b": 2})]
    (invalid,) = chunk.invalid_tool_calls
    assert invalid["error"] == "unknown tool 'nope'; available tools: 'add'"
    assert [(c["name"], c["args"]) for c in chunk.tool_call_chunks] == [
        ("add", '{"a": 1, "b": 2}'),
        ("nope", '{"x": 1}'),
    ]
    assert chunk.tool_call_chunks[0]["id"] == chunk.tool_calls[0]["id"]


def test_sync_stream_matches_invoke(http: aioresponses, llm: ChatWebsim) -> None:
    call = envelope(("add", {"a": 1, "b": 2}))
    reply(http, call, call)
    bound = llm.bind_tools([add])
    invoked = bound.invoke("1+2")
    (streamed,) = list(bound.stream("1+2"))
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [
        (c["name"], c["args"]) for c in invoked.tool_calls
    ]


class _StreamingHandler(BaseCallbackHandler, _StreamingCallbackHandler):
    """Makes LangChain route invoke through the stream, as LangGraph's message mode does."""

    def __init__(self) -> None:
        self.tokens = 0

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens += 1

    def tap_output_aiter(self, run_id: UUID, output: Any) -> Any:
        return output

    def tap_output_iter(self, run_id: UUID, output: Any) -> Any:
        return output


@pytest.mark.parametrize("how", ["streaming-field", "streaming-handler"])
async def test_invoke_under_streaming_keeps_invalid_calls_invalid(
    http: aioresponses, how: str
) -> None:
    # Merging stream chunks re-derives calls from their arguments alone, which would turn
    # a call to an unknown tool into a valid one; with tools, invoke does not stream.
    reply(http, envelope(("nope", {"x": 1})), "plain")
    handler = _StreamingHandler()
    async with WebsimClient(BASE, max_retries=0) as client:
        if how == "streaming-field":
            llm, config = ChatWebsim(client=client, streaming=True), {}
        else:
            llm, config = ChatWebsim(client=client), {"callbacks": [handler]}
        message = await llm.bind_tools([add]).ainvoke("x", config=config)
        plain = await llm.ainvoke("y", config=config)
    assert message.tool_calls == []
    assert message.invalid_tool_calls[0]["error"] == "unknown tool 'nope'; available tools: 'add'"
    assert isinstance(message, AIMessage)
    # Without tools the stream path is still taken.
    assert plain.content == "plain" and handler.tokens == (1 if how == "streaming-handler" else 0)
