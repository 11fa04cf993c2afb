"""What agents ask of a chat model, against the emulator: a profile per route, the tool
options agents pass (``strict``, ``parallel_tool_calls``), and token counts for trimming and
summarization."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import (
    ModelRequest,
    ModelResponse,
    SummarizationMiddleware,
    wrap_model_call,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately, trim_messages
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_websim import ChatWebsim, WebsimClient
from langchain_websim.testing import WebsimEmulator, agent_responder


class GetWeather(BaseModel):
    """Get the current weather in a given city."""

    city: str = Field(description="The city")


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a given city."""
    return f"18 °C and sunny in {city}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[WebsimEmulator]:
    with WebsimEmulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: WebsimEmulator) -> Iterator[WebsimClient]:
    emulator.clear()
    with WebsimClient(emulator.base_url, max_retries=0) as websim:
        yield websim


@pytest.fixture
def llm(client: WebsimClient) -> ChatWebsim:
    return ChatWebsim(client=client)


def _reply(emulator: WebsimEmulator, text: str) -> None:
    emulator.enqueue("chat", json={"content": text})


def _system(emulator: WebsimEmulator, index: int = -1) -> str:
    messages = emulator.requests_for("chat")[index].body["messages"]
    return str(messages[0]["content"]) if messages[0]["role"] == "system" else ""


# --------------------------------------------------------------------------- profiles


def test_each_route_has_its_profile_and_no_invented_limits() -> None:
    chat = ChatWebsim().profile
    assert chat is not None
    assert chat["tool_calling"] and chat["tool_choice"]
    assert chat["image_inputs"] and chat["image_url_inputs"] and chat["image_tool_message"]
    assert not chat["structured_output"] and not chat["tool_call_streaming"]
    assert not (chat["audio_inputs"] or chat["video_inputs"] or chat["pdf_inputs"])
    assert chat["text_outputs"] and not chat["image_outputs"]
    assert "max_input_tokens" not in chat and "max_output_tokens" not in chat
    flux = ChatWebsim(model="flux").profile
    assert flux is not None
    assert flux["image_outputs"] and flux["text_inputs"]
    assert not (flux["tool_calling"] or flux["text_outputs"] or flux["image_inputs"])
    # a chat model name Websim does not list still routes to chat
    assert ChatWebsim(model="gemini-2.5-flash").profile == chat


def test_a_callers_own_profile_wins() -> None:
    llm = ChatWebsim(profile={"max_input_tokens": 128_000, "tool_calling": True})
    assert llm.profile == {"max_input_tokens": 128_000, "tool_calling": True}
    assert ChatWebsim(model="flux", profile={"image_outputs": True}).profile == {
        "image_outputs": True
    }


def test_a_structured_output_agent_takes_the_tool_strategy(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    """No native structured output in the profile: create_agent offers the schema as a tool
    (forced), and the reply's call is the agent's structured response."""
    _reply(emulator, '{"tool_calls": [{"name": "GetWeather", "arguments": {"city": "Oslo"}}]}')
    agent = create_agent(llm, tools=[], response_format=GetWeather)
    result = agent.invoke({"messages": [("human", "Weather in Oslo, as a structure.")]})
    assert result["structured_response"] == GetWeather(city="Oslo")
    (request,) = emulator.requests_for("chat")
    assert "Tool: GetWeather" in _system(emulator)
    assert request.body.get("json") is True  # a forced call


# --------------------------------------------------------------------------- tool options


def test_strict_and_parallel_tool_calls_bind_and_are_recorded(llm: ChatWebsim) -> None:
    bound = llm.bind_tools([GetWeather], strict=True, parallel_tool_calls=False)
    assert bound.kwargs["strict"] is True  # type: ignore[attr-defined]
    assert bound.kwargs["parallel_tool_calls"] is False  # type: ignore[attr-defined]
    assert "strict" not in llm.bind_tools([GetWeather]).kwargs  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"temperature": 0.2}, TypeError, "unexpected call arguments: temperature"),
        ({"strict": "yes"}, TypeError, "strict must be True, False or None"),
        ({"parallel_tool_calls": 1}, TypeError, "parallel_tool_calls must be"),
    ],
)
def test_bad_tool_arguments_fail_at_bind_time(
    llm: ChatWebsim, emulator: WebsimEmulator, kwargs: dict[str, Any], error: type, needle: str
) -> None:
    with pytest.raises(error, match=needle):
        llm.bind_tools([GetWeather], **kwargs)
    with pytest.raises(error, match=needle):
        llm.invoke("Weather in Oslo?", tools=[GetWeather], **kwargs)
    assert emulator.requests_for("chat") == []


def test_strict_closes_the_schemas_the_reply_is_held_to(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    extra = '{"tool_calls": [{"name": "GetWeather", "arguments": {"city": "Oslo", "unit": "C"}}]}'
    _reply(emulator, extra)
    lenient = llm.bind_tools([GetWeather]).invoke("Weather in Oslo?")
    assert lenient.tool_calls[0]["args"] == {"city": "Oslo", "unit": "C"}
    assert "no other properties" not in _system(emulator)
    _reply(emulator, extra)
    strict = llm.bind_tools([GetWeather], strict=True).invoke("Weather in Oslo?")
    assert strict.tool_calls == []
    (bad,) = strict.invalid_tool_calls
    assert "unit" in str(bad["error"])
    assert "no other properties" in _system(emulator)
    assert '"additionalProperties":false' in _system(emulator)
    # the same, given per call
    _reply(emulator, extra)
    per_call = llm.invoke("Weather in Oslo?", tools=[GetWeather], strict=True)
    assert per_call.tool_calls == [] and len(per_call.invalid_tool_calls) == 1


TWO_CALLS = (
    '{"tool_calls": [{"name": "GetWeather", "arguments": {"city": "Oslo"}}, '
    '{"name": "GetWeather", "arguments": {"city": "Rome"}}]}'
)


def test_parallel_tool_calls_false_keeps_one_call_and_says_which_were_dropped(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    _reply(emulator, TWO_CALLS)
    both = llm.bind_tools([GetWeather]).invoke("Weather in Oslo and Rome?")
    assert [call["args"]["city"] for call in both.tool_calls] == ["Oslo", "Rome"]
    assert "Put several calls in the list" in _system(emulator)
    _reply(emulator, TWO_CALLS)
    one = llm.bind_tools([GetWeather], parallel_tool_calls=False).invoke("Oslo and Rome?")
    assert [call["args"] for call in one.tool_calls] == [{"city": "Oslo"}]
    assert one.response_metadata["dropped_tool_calls"] == [
        {"name": "GetWeather", "args": {"city": "Rome"}}
    ]
    assert "Call at most ONE tool per reply" in _system(emulator)
    # streaming gives the same single call
    _reply(emulator, TWO_CALLS)
    (chunk,) = llm.stream("Oslo and Rome?", tools=[GetWeather], parallel_tool_calls=False)
    assert [call["args"] for call in chunk.tool_calls] == [{"city": "Oslo"}]


@wrap_model_call
def _strict_one_at_a_time(
    request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
) -> ModelResponse:
    settings = {**request.model_settings, "strict": True, "parallel_tool_calls": False}
    return handler(request.override(model_settings=settings))


def test_bind_tools_strict_inside_create_agent(llm: ChatWebsim, emulator: WebsimEmulator) -> None:
    """A middleware passes strict and parallel_tool_calls as model settings: create_agent
    hands them to bind_tools; of the two calls the model makes, one runs."""
    agent = create_agent(llm, tools=[get_weather], middleware=[_strict_one_at_a_time])
    _reply(
        emulator,
        '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
        '{"name": "get_weather", "arguments": {"city": "Rome"}}]}',
    )
    _reply(emulator, "It is 18 °C and sunny in Oslo.")
    result = agent.invoke({"messages": [("human", "Weather in Oslo?")]})
    messages = result["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert messages[2].content == "18 °C and sunny in Oslo"
    assert messages[-1].text == "It is 18 °C and sunny in Oslo."
    for index in (0, 1):
        assert "Call at most ONE tool per reply" in _system(emulator, index)
        assert '"additionalProperties":false' in _system(emulator, index)


def test_an_agent_mode_run_with_strict_tools(llm: ChatWebsim, emulator: WebsimEmulator) -> None:
    emulator.set_chat_responder(agent_responder)
    agent = create_agent(llm, tools=[get_weather], middleware=[_strict_one_at_a_time])
    result = agent.invoke({"messages": [("human", "Paris")]})
    assert result["messages"][2].content == "18 °C and sunny in Paris"
    assert result["messages"][-1].text.startswith("Done. The tool answered: 18 °C and sunny")


# --------------------------------------------------------------------------- token counts


def _long_history() -> list[BaseMessage]:
    history: list[BaseMessage] = []
    for n in range(6):
        history.append(HumanMessage(f"Question {n}: " + "tell me more about lighthouses " * 4))
        history.append(AIMessage(f"Answer {n}: " + "lighthouses guide ships at night " * 4))
    return [*history, HumanMessage("And the last one?")]


def test_token_counts_are_langchain_cores_approximation(llm: ChatWebsim) -> None:
    history = _long_history()
    assert llm.get_num_tokens_from_messages(history) == count_tokens_approximately(history)
    with_tools = llm.get_num_tokens_from_messages(history, tools=[GetWeather])
    assert with_tools > llm.get_num_tokens_from_messages(history)
    assert llm.get_num_tokens("four" * 10) == 10
    assert llm.get_num_tokens("") == 0
    assert ChatWebsim(model="flux").get_num_tokens("a lighthouse") == 3


def test_trim_messages_with_the_model_as_token_counter(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    history = _long_history()
    trimmed = trim_messages(
        history, token_counter=llm, max_tokens=120, strategy="last", start_on="human"
    )
    assert [m.text[:10] for m in trimmed] == ["Question 5", "Answer 5: ", "And the la"]
    assert llm.get_num_tokens_from_messages(trimmed) <= 120
    llm.invoke(trimmed)
    sent = emulator.requests_for("chat")[-1].body["messages"]
    assert [m["content"] for m in sent] == [m.content for m in trimmed]


def _summarizing_agent(llm: ChatWebsim, **options: Any) -> Any:
    return create_agent(llm, tools=[], middleware=[SummarizationMiddleware(model=llm, **options)])


def test_summarization_middleware_with_a_token_trigger(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    agent = _summarizing_agent(
        llm,
        trigger=("tokens", 150),
        keep=("messages", 2),
        token_counter=llm.get_num_tokens_from_messages,
    )
    history = _long_history()
    assert llm.get_num_tokens_from_messages(history) > 150
    result = agent.invoke({"messages": history})
    summary_request, model_request = emulator.requests_for("chat")
    summary_prompt = summary_request.body["messages"][-1]["content"]
    assert "Question 0" in summary_prompt  # the summarized turns went to the summarizer
    sent = model_request.body["messages"]
    assert sent[-1] == {"role": "user", "content": "And the last one?"}
    assert sent[-2]["content"].startswith("Answer 5: ")
    assert "Question 0" not in str(sent[1:])  # the old turns are gone, summarized
    assert "Echo:" in sent[0]["content"]  # the summary (the emulator's echo) leads
    assert result["messages"][-1].text == "Echo: And the last one?"


def test_a_short_history_is_not_summarized(llm: ChatWebsim, emulator: WebsimEmulator) -> None:
    agent = _summarizing_agent(llm, trigger=("tokens", 150), keep=("messages", 2))
    agent.invoke({"messages": [("human", "Hello")]})
    (only,) = emulator.requests_for("chat")
    assert only.body["messages"] == [{"role": "user", "content": "Hello"}]


def test_a_fraction_trigger_needs_a_profile_with_max_input_tokens(
    client: WebsimClient, emulator: WebsimEmulator
) -> None:
    with pytest.raises(ValueError, match="Model profile information is required"):
        SummarizationMiddleware(model=ChatWebsim(client=client), trigger=("fraction", 0.5))
    sized = ChatWebsim(client=client, profile={"max_input_tokens": 800})
    agent = _summarizing_agent(sized, trigger=("fraction", 0.5), keep=("messages", 2))
    agent.invoke({"messages": _long_history()})  # about 480 tokens: over half of 800
    assert len(emulator.requests_for("chat")) == 2  # the summary, then the model
    emulator.clear()
    agent.invoke({"messages": _long_history()[-5:]})  # about 170 tokens: under
    assert len(emulator.requests_for("chat")) == 1


def test_tool_messages_are_counted_too(llm: ChatWebsim) -> None:
    call = AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}, "id": "c1"}])
    result = ToolMessage("18 °C and sunny in Oslo", tool_call_id="c1")
    base = [HumanMessage("Weather in Oslo?")]
    assert llm.get_num_tokens_from_messages([*base, call, result]) > (
        llm.get_num_tokens_from_messages(base)
    )


class Trip(BaseModel):
    """Plan a trip."""

    city: str
    stay: GetWeather = Field(description="The weather lookup for the stay")


def test_strict_closes_nested_objects_and_leaves_the_callers_schema_alone(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    schema = Trip.model_json_schema()
    before = repr(schema)
    nested_extra = (
        '{"tool_calls": [{"name": "Trip", "arguments": '
        '{"city": "Oslo", "stay": {"city": "Oslo", "nights": 2}}}]}'
    )
    _reply(emulator, nested_extra)
    strict = llm.bind_tools([schema], strict=True).invoke("Plan Oslo")
    (bad,) = strict.invalid_tool_calls
    assert "nights" in str(bad["error"])
    assert repr(schema) == before  # closed on a copy
    _reply(emulator, nested_extra)
    lenient = llm.bind_tools([schema]).invoke("Plan Oslo")
    assert lenient.tool_calls[0]["args"]["stay"] == {"city": "Oslo", "nights": 2}
