"""Histories from anywhere: conversations other chat models wrote, replayed into ChatWebsim.

Each entry of the zoo is a turn (or a turn and its tool results) in the shape the named
integration produces it: langchain-openai (Chat Completions; Responses API in ``v0``,
``responses/v1`` and ``v1`` output), langchain-anthropic (thinking, tool use, server tools),
langchain-google-genai, langchain-ollama, and ChatWebsim itself.  Every one is replayed to
the emulator and the exact wire messages are asserted; hidden parts (reasoning, signatures,
encrypted items, inline image data) carry a marker that must never reach the wire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatResult
from pydantic import BaseModel, Field

from langchain_websim import ChatWebsim, WebsimClient
from langchain_websim.testing import WebsimEmulator

HIDDEN = "HIDDEN-MARKER"  # planted in everything that must not be replayed
PNG64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAAB"
    "JRU5ErkJggg=="
)
CALL = {"name": "GetWeather", "args": {"city": "Paris"}}
ENVELOPE = '{"tool_calls": [{"id": "%s", "name": "GetWeather", "arguments": {"city": "Paris"}}]}'
SUNNY = "It is sunny in Paris."
FIRST = HumanMessage("What is the weather like in Paris?")
LAST = HumanMessage("Thanks. And tomorrow?")


class GetWeather(BaseModel):
    """Get the current weather in a given city."""

    city: str = Field(description="The city")


@pytest.fixture(scope="module")
def emulator() -> Iterator[WebsimEmulator]:
    with WebsimEmulator() as emu:
        yield emu


@pytest.fixture
def llm(emulator: WebsimEmulator) -> Iterator[ChatWebsim]:
    emulator.clear()
    with WebsimClient(emulator.base_url, max_retries=0) as client:
        yield ChatWebsim(client=client)


def _result(call_id: str, content: Any = '{"temperature": 18, "sky": "sunny"}') -> ToolMessage:
    return ToolMessage(content, tool_call_id=call_id, name="GetWeather")


def _wire_result(call_id: str) -> dict[str, str]:
    return {
        "role": "user",
        "content": f"Result of the call {call_id} to tool 'GetWeather':\n"
        '{"temperature": 18, "sky": "sunny"}',
    }


def _calls(call_id: str) -> dict[str, str]:
    return {"role": "assistant", "content": ENVELOPE % call_id}


# --------------------------------------------------------------------------- langchain-openai

OPENAI_METADATA = {
    "model_provider": "openai",
    "model_name": "gpt-5-2025-08-07",
    "id": "resp_1",
    "status": "completed",
}
# The Responses API output these three messages come from: a reasoning item (encrypted), a
# web search, the answer with a URL citation, a function call.
REASONING_ITEM = {
    "id": "rs_1",
    "summary": [{"text": f"Thinking about Paris {HIDDEN}", "type": "summary_text"}],
    "type": "reasoning",
    "encrypted_content": f"gAAAA{HIDDEN}",
}
WEB_SEARCH_ITEM = {
    "id": "ws_1",
    "action": {"type": "search", "query": f"weather paris {HIDDEN}"},
    "status": "completed",
    "type": "web_search_call",
}
CITED_TEXT = {
    "type": "text",
    "text": SUNNY,
    "annotations": [
        {
            "end_index": 5,
            "start_index": 0,
            "title": "Weather",
            "type": "url_citation",
            "url": f"https://weather.example/{HIDDEN}",
        }
    ],
    "id": "msg_1",
}
FUNCTION_CALL_ITEM = {
    "arguments": '{"city": "Paris"}',
    "call_id": "call_abc",
    "name": "GetWeather",
    "type": "function_call",
    "id": "fc_1",
    "status": "completed",
}
RESPONSES_CALL = [{**CALL, "id": "call_abc", "type": "tool_call"}]

OPENAI_ZOO: dict[str, tuple[list[BaseMessage], list[dict[str, Any]]]] = {
    "openai-chat-completions-text": (
        [
            AIMessage(
                "Hi there",
                response_metadata={
                    "model_provider": "openai",
                    "model_name": "gpt-4o-2024-08-06",
                    "finish_reason": "stop",
                    "token_usage": {"prompt_tokens": 9, "completion_tokens": 2},
                },
                additional_kwargs={"refusal": None},
                id="chatcmpl-1",
            )
        ],
        [{"role": "assistant", "content": "Hi there"}],
    ),
    "openai-chat-completions-tool-calls": (
        [
            AIMessage(
                "",
                additional_kwargs={
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "GetWeather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                    "refusal": None,
                },
                response_metadata={"model_provider": "openai", "finish_reason": "tool_calls"},
                tool_calls=[{**CALL, "id": "call_1"}],
            ),
            _result("call_1"),
        ],
        [_calls("call_1"), _wire_result("call_1")],
    ),
    "openai-chat-completions-refusal": (
        [
            AIMessage(
                [{"type": "refusal", "refusal": "I can't help with that.", "id": "msg_2"}],
                response_metadata={"model_provider": "openai"},
            )
        ],
        [{"role": "assistant", "content": "I can't help with that."}],
    ),
    "openai-responses-v0": (
        [
            AIMessage(
                [CITED_TEXT],
                additional_kwargs={
                    "reasoning": REASONING_ITEM,
                    "tool_outputs": [WEB_SEARCH_ITEM],
                    "__openai_function_call_ids__": {"call_abc": "fc_1"},
                },
                response_metadata=OPENAI_METADATA,
                tool_calls=RESPONSES_CALL,
            ),
            _result("call_abc"),
        ],
        [
            {"role": "assistant", "content": f"{SUNNY}\n\n{ENVELOPE % 'call_abc'}"},
            _wire_result("call_abc"),
        ],
    ),
    "openai-responses-responses/v1": (
        [
            AIMessage(
                [REASONING_ITEM, WEB_SEARCH_ITEM, CITED_TEXT, FUNCTION_CALL_ITEM],
                response_metadata=OPENAI_METADATA,
                tool_calls=RESPONSES_CALL,
            ),
            _result("call_abc"),
        ],
        [
            {"role": "assistant", "content": f"{SUNNY}\n\n{ENVELOPE % 'call_abc'}"},
            _wire_result("call_abc"),
        ],
    ),
    "openai-responses-v1": (
        [
            AIMessage(
                [
                    {
                        "type": "reasoning",
                        "id": "rs_1",
                        "reasoning": f"Thinking about Paris {HIDDEN}",
                        "extras": {"encrypted_content": f"gAAAA{HIDDEN}"},
                    },
                    {
                        "type": "server_tool_call",
                        "name": "web_search",
                        "args": {"type": "search", "query": f"weather paris {HIDDEN}"},
                        "id": "ws_1",
                    },
                    {"type": "server_tool_result", "tool_call_id": "ws_1", "status": "success"},
                    {
                        "type": "text",
                        "text": SUNNY,
                        "annotations": [{"type": "citation", "url": f"https://w.example/{HIDDEN}"}],
                        "id": "msg_1",
                    },
                    {"type": "tool_call", **CALL, "id": "call_abc", "extras": {"item_id": "fc_1"}},
                ],
                response_metadata={**OPENAI_METADATA, "output_version": "v1"},
                tool_calls=RESPONSES_CALL,
            ),
            _result("call_abc"),
        ],
        [
            {"role": "assistant", "content": f"{SUNNY}\n\n{ENVELOPE % 'call_abc'}"},
            _wire_result("call_abc"),
        ],
    ),
    "openai-responses-image-generation": (
        [
            AIMessage(
                [
                    {
                        "type": "image_generation_call",
                        "id": "ig_1",
                        "result": PNG64,
                        "status": "completed",
                        "output_format": "png",
                    },
                    {"type": "text", "text": "Here is your fox.", "annotations": [], "id": "m"},
                ],
                response_metadata=OPENAI_METADATA,
            )
        ],
        [
            {
                "role": "assistant",
                "content": "[image: inline image/png data, not replayed]\nHere is your fox.",
            }
        ],
    ),
}

# --------------------------------------------------------------------------- langchain-anthropic

ANTHROPIC_METADATA = {
    "model_provider": "anthropic",
    "model_name": "claude-sonnet-4-5-20250929",
    "stop_reason": "tool_use",
}
ANTHROPIC_ZOO: dict[str, tuple[list[BaseMessage], list[dict[str, Any]]]] = {
    "anthropic-thinking-and-tool-use": (
        [
            AIMessage(
                [
                    {"type": "thinking", "thinking": f"Paris? {HIDDEN}", "signature": HIDDEN},
                    {"type": "redacted_thinking", "data": f"Eq{HIDDEN}"},
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "GetWeather",
                        "input": CALL["args"],
                    },
                ],
                response_metadata=ANTHROPIC_METADATA,
                tool_calls=[{**CALL, "id": "toolu_01"}],
            ),
            # langchain-anthropic's ToolMessage for a tool that returned content blocks
            ToolMessage(
                [{"type": "text", "text": '{"temperature": 18, "sky": "sunny"}'}],
                tool_call_id="toolu_01",
            ),
        ],
        [
            {"role": "assistant", "content": f"Let me check.\n\n{ENVELOPE % 'toolu_01'}"},
            _wire_result("toolu_01"),
        ],
    ),
    "anthropic-streamed-and-merged": (
        [
            # what `sum(model.stream(...))` gives: the merged chunks of a thinking tool call
            AIMessageChunk(
                [
                    {"type": "thinking", "thinking": HIDDEN, "signature": HIDDEN, "index": 0},
                    {"type": "text", "text": "Let me check.", "index": 1},
                    {
                        "type": "tool_use",
                        "id": "toolu_02",
                        "name": "GetWeather",
                        "input": {},
                        "partial_json": '{"city": "Paris"}',
                        "index": 2,
                    },
                ],
                tool_call_chunks=[
                    {
                        "name": "GetWeather",
                        "args": '{"city": "Paris"}',
                        "id": "toolu_02",
                        "index": 2,
                        "type": "tool_call_chunk",
                    }
                ],
                chunk_position="last",
                response_metadata=ANTHROPIC_METADATA,
            ),
            _result("toolu_02"),
        ],
        [
            {"role": "assistant", "content": f"Let me check.\n\n{ENVELOPE % 'toolu_02'}"},
            _wire_result("toolu_02"),
        ],
    ),
    "anthropic-server-tools-and-citations": (
        [
            AIMessage(
                [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_01",
                        "name": "web_search",
                        "input": {"query": f"weather paris {HIDDEN}"},
                    },
                    {
                        "type": "web_search_tool_result",
                        "tool_use_id": "srvtoolu_01",
                        "content": [
                            {
                                "type": "web_search_result",
                                "url": "https://weather.example/paris",
                                "title": "Weather",
                                "encrypted_content": HIDDEN,
                                "page_age": None,
                            }
                        ],
                    },
                    {
                        "type": "text",
                        "text": "It is sunny",
                        "citations": [
                            {
                                "type": "web_search_result_location",
                                "cited_text": "Sunny all day",
                                "url": "https://weather.example/paris",
                                "title": "Weather",
                                "encrypted_index": HIDDEN,
                            }
                        ],
                    },
                    {"type": "text", "text": " in Paris."},
                ],
                response_metadata={**ANTHROPIC_METADATA, "stop_reason": "end_turn"},
            )
        ],
        [{"role": "assistant", "content": SUNNY}],
    ),
    "anthropic-code-execution": (
        [
            AIMessage(
                [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_02",
                        "name": "code_execution",
                        "input": {"code": f"print(6 * 7)  # {HIDDEN}"},
                    },
                    {
                        "type": "code_execution_tool_result",
                        "tool_use_id": "srvtoolu_02",
                        "content": {
                            "type": "code_execution_result",
                            "stdout": f"42 {HIDDEN}",
                            "stderr": "",
                            "return_code": 0,
                        },
                    },
                    {"type": "text", "text": "The answer is 42."},
                ],
                response_metadata={**ANTHROPIC_METADATA, "stop_reason": "end_turn"},
            )
        ],
        [{"role": "assistant", "content": "The answer is 42."}],
    ),
}

# --------------------------------------------------------------------------- google-genai, ollama

GOOGLE_METADATA = {
    "model_provider": "google_genai",
    "model_name": "gemini-2.5-flash",
    "finish_reason": "STOP",
    "safety_ratings": [],
}
GEMINI_CALL_ID = "5b2e8f0c-6a7d-4b1e-9c3f-0d1e2f3a4b5c"
OLLAMA_CALL_ID = "9f8e7d6c-5b4a-4321-8fed-cba987654321"
OTHER_ZOO: dict[str, tuple[list[BaseMessage], list[dict[str, Any]]]] = {
    "google-genai-thinking": (
        [
            AIMessage(
                [
                    {"type": "thinking", "thinking": f"Weather... {HIDDEN}", "signature": HIDDEN},
                    {"type": "text", "text": SUNNY, "extras": {"signature": HIDDEN}},
                ],
                response_metadata=GOOGLE_METADATA,
            )
        ],
        [{"role": "assistant", "content": SUNNY}],
    ),
    "google-genai-function-call": (
        [
            AIMessage(
                "",
                additional_kwargs={
                    "function_call": {"name": "GetWeather", "arguments": '{"city": "Paris"}'},
                    "__gemini_function_call_thought_signatures__": {GEMINI_CALL_ID: HIDDEN},
                },
                response_metadata=GOOGLE_METADATA,
                tool_calls=[{**CALL, "id": GEMINI_CALL_ID}],
            ),
            _result(GEMINI_CALL_ID),
        ],
        [_calls(GEMINI_CALL_ID), _wire_result(GEMINI_CALL_ID)],
    ),
    "google-genai-code-execution": (
        [
            AIMessage(
                [
                    {
                        "type": "executable_code",
                        "executable_code": f"print(6 * 7)  # {HIDDEN}",
                        "language": "PYTHON",
                    },
                    {
                        "type": "code_execution_result",
                        "code_execution_result": f"42 {HIDDEN}",
                        "outcome": 1,
                        "tool_call_id": "",
                    },
                    {"type": "text", "text": "The answer is 42."},
                ],
                response_metadata=GOOGLE_METADATA,
            )
        ],
        [{"role": "assistant", "content": "The answer is 42."}],
    ),
    "google-genai-image-output": (
        [
            AIMessage(
                [
                    {"type": "text", "text": "Here is your fox."},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG64}"}},
                ],
                response_metadata={**GOOGLE_METADATA, "model_name": "gemini-2.5-flash-image"},
            )
        ],
        [
            {
                "role": "assistant",
                "content": "Here is your fox.\n[image: inline image/png data, not replayed]",
            }
        ],
    ),
    "ollama-reasoning": (
        [
            AIMessage(
                "The answer is 42.",
                additional_kwargs={"reasoning_content": f"6 times 7 {HIDDEN}"},
                response_metadata={
                    "model": "qwen3:8b",
                    "model_name": "qwen3:8b",
                    "model_provider": "ollama",
                    "done": True,
                    "done_reason": "stop",
                },
            )
        ],
        [{"role": "assistant", "content": "The answer is 42."}],
    ),
    "ollama-tool-calls": (
        [
            AIMessage(
                "",
                response_metadata={"model_name": "llama3.1", "model_provider": "ollama"},
                tool_calls=[{**CALL, "id": OLLAMA_CALL_ID, "type": "tool_call"}],
            ),
            _result(OLLAMA_CALL_ID),
        ],
        [_calls(OLLAMA_CALL_ID), _wire_result(OLLAMA_CALL_ID)],
    ),
}

OTHER_ZOO["chat-message-assistant-role"] = (
    [ChatMessage([{"type": "reasoning", "reasoning": HIDDEN}, "Sunny."], role="assistant")],
    [{"role": "assistant", "content": "Sunny."}],
)

ZOO = {**OPENAI_ZOO, **ANTHROPIC_ZOO, **OTHER_ZOO}


@pytest.mark.parametrize("name", list(ZOO))
def test_a_turn_another_model_wrote_is_replayed_as_its_visible_text(
    name: str, llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    turns, wire = ZOO[name]
    before = [turn.model_dump() for turn in turns]
    answer = llm.invoke([FIRST, *turns, LAST])
    assert answer.text == "Echo: Thanks. And tomorrow?"
    (request,) = emulator.requests_for("chat")
    assert request.violations == []
    assert request.body["messages"] == [
        {"role": "user", "content": FIRST.content},
        *wire,
        {"role": "user", "content": LAST.content},
    ]
    assert HIDDEN not in request.raw.decode()
    assert PNG64 not in request.raw.decode()
    assert [turn.model_dump() for turn in turns] == before  # the caller's history untouched


def test_the_whole_zoo_in_one_conversation_with_tools_bound(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    history: list[BaseMessage] = [FIRST]
    expected: list[dict[str, Any]] = [{"role": "user", "content": FIRST.content}]
    for turns, wire in ZOO.values():
        history += turns
        expected += wire
    llm.bind_tools([GetWeather]).invoke([*history, LAST])
    (request,) = emulator.requests_for("chat")
    assert request.body["messages"][0]["content"].startswith("You can call the following tools.")
    assert request.body["messages"][1:] == [*expected, {"role": "user", "content": LAST.content}]
    assert HIDDEN not in request.raw.decode()


# --------------------------------------------------------------------------- ChatWebsim's own


def test_chat_websim_continues_its_own_conversation_after_drawing(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    """A flux answer appended to the history, then a question about it: what every chat
    app and create_agent does."""
    ask = HumanMessage("Draw a lighthouse at dusk.")
    picture = llm.invoke([ask], model="flux")
    url = picture.response_metadata["image_url"]
    assert [block["type"] for block in picture.content_blocks] == ["text", "image"]
    follow_up = HumanMessage("What colours did you use?")
    answer = llm.invoke([ask, picture, follow_up])
    assert answer.text == "Echo: What colours did you use?"
    (request,) = emulator.requests_for("chat")
    assert request.body["messages"] == [
        {"role": "user", "content": "Draw a lighthouse at dusk."},
        {"role": "assistant", "content": url},
        {"role": "user", "content": "What colours did you use?"},
    ]
    # and a second picture from the same thread: the prompt is the trailing question
    llm.invoke([ask, picture, HumanMessage("Now at dawn.")], model="flux")
    assert emulator.requests_for("image")[-1].body["prompt"] == "Now at dawn."


def test_chat_websim_replays_its_own_answers_and_tool_calls(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    first = llm.invoke([FIRST])
    emulator.enqueue(
        "chat",
        json={
            "content": 'On it.\n{"tool_calls": [{"name": "GetWeather", "arguments": '
            '{"city": "Paris"}}]}'
        },
    )
    calling = llm.bind_tools([GetWeather]).invoke([FIRST, first, LAST])
    (call,) = calling.tool_calls
    history = [FIRST, first, LAST, calling, _result(call["id"]), HumanMessage("Merci!")]
    llm.invoke(history)
    sent = emulator.requests_for("chat")[-1].body["messages"]
    assert sent == [
        {"role": "user", "content": FIRST.content},
        {"role": "assistant", "content": "Echo: What is the weather like in Paris?"},
        {"role": "user", "content": LAST.content},
        {"role": "assistant", "content": "On it.\n\n" + ENVELOPE % call["id"]},
        _wire_result(call["id"]),
        {"role": "user", "content": "Merci!"},
    ]


def test_images_in_assistant_turns_keep_their_url_and_never_their_data(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    turn = AIMessage(
        [
            {"type": "text", "text": "Two sketches:"},
            {"type": "image", "url": "https://cdn.example/a.png"},
            {"type": "image", "base64": PNG64, "mime_type": "image/png"},
            {"type": "image", "file_id": "file-123"},
            {"type": "text", "text": "Which one?"},
        ]
    )
    llm.invoke([FIRST, turn, LAST])
    sent = emulator.requests_for("chat")[-1].body["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": "Two sketches:\n[image: https://cdn.example/a.png]\n"
        "[image: inline image/png data, not replayed]\n[image: file file-123]\nWhich one?",
    }


def test_the_new_message_is_still_checked_as_before(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    audio = {"type": "audio", "url": "https://example.com/question.wav"}
    thinking = AIMessage([{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Hi"}])
    with pytest.raises(ValueError, match=r"message 2 \(HumanMessage\) .*'audio' at position 1"):
        llm.invoke([FIRST, thinking, HumanMessage([{"type": "text", "text": "Listen"}, audio])])
    assert emulator.requests_for("chat") == []


# --------------------------------------------------------------------------- fallbacks


class _Overloaded(BaseChatModel):
    """A primary model that is down: every call fails, as an overloaded provider does."""

    @property
    def _llm_type(self) -> str:
        return "overloaded"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise RuntimeError("529 overloaded")


def test_a_fallback_from_a_failing_model_takes_over_a_reasoning_history(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    turns, wire = ANTHROPIC_ZOO["anthropic-thinking-and-tool-use"]
    chain = _Overloaded().with_fallbacks([llm])
    answer = chain.invoke([FIRST, *turns, LAST])
    assert answer.text == "Echo: Thanks. And tomorrow?"
    assert answer.response_metadata["model_provider"] == "websim"
    (request,) = emulator.requests_for("chat")
    assert request.body["messages"][1:3] == wire
    assert HIDDEN not in json.dumps(request.body)


async def test_a_fallback_takes_over_an_openai_responses_history_async(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    turns, wire = OPENAI_ZOO["openai-responses-responses/v1"]
    answer = await _Overloaded().with_fallbacks([llm]).ainvoke([FIRST, *turns, LAST])
    assert answer.text == "Echo: Thanks. And tomorrow?"
    (request,) = emulator.requests_for("chat")
    assert request.body["messages"][1:3] == wire


def test_model_fallback_middleware_hands_a_thread_with_reasoning_to_chat_websim(
    llm: ChatWebsim, emulator: WebsimEmulator
) -> None:
    from langchain.agents import create_agent
    from langchain.agents.middleware import ModelFallbackMiddleware

    turns, wire = OPENAI_ZOO["openai-responses-v0"]
    agent = create_agent(_Overloaded(), tools=[], middleware=[ModelFallbackMiddleware(llm)])
    result = agent.invoke({"messages": [FIRST, *turns, LAST]})
    assert result["messages"][-1].text == "Echo: Thanks. And tomorrow?"
    (request,) = emulator.requests_for("chat")
    assert request.body["messages"][1:3] == wire
    assert HIDDEN not in request.raw.decode()
