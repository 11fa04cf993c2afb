"""The emulator's agent mode reads the same prompt protocol ChatWebsim writes.

The conversations here are built with the protocol's own renderers, so a change of the
protocol's wording that the responder does not follow fails these tests.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_websim._parsers import parse_reply
from langchain_websim._prompt import format_instruction, render_tool_result, tool_instruction
from langchain_websim.testing import agent_responder
from langchain_websim.testing._answers import json_answer, placeholder
from langchain_websim.tools import WebsimImageTool


def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return city


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


IMAGE_TOOL = convert_to_openai_tool(WebsimImageTool())
WEATHER_TOOL = convert_to_openai_tool(get_weather)
ADD_TOOL = convert_to_openai_tool(add)


def conversation(tools: list[dict[str, Any]], *turns: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Be helpful.\n\n" + tool_instruction(tools, "auto")},
        *turns,
    ]


def test_calls_the_image_tool_with_the_request_in_a_form_the_parser_accepts() -> None:
    messages = conversation(
        [WEATHER_TOOL, IMAGE_TOOL], {"role": "user", "content": "  Draw a red fox  "}
    )
    reply = agent_responder(messages, {"messages": messages})
    assert "```json" in reply  # prose plus a fenced envelope, like real models write
    parsed = parse_reply(reply, [WEATHER_TOOL, IMAGE_TOOL])
    assert parsed.invalid_tool_calls == []
    (call,) = parsed.tool_calls
    assert call["name"] == "websim_image_generation"
    assert call["args"] == {"prompt": "Draw a red fox"}


def test_without_a_prompt_parameter_uses_the_single_required_string() -> None:
    messages = conversation([ADD_TOOL, WEATHER_TOOL], {"role": "user", "content": "Paris"})
    parsed = parse_reply(agent_responder(messages, {}), [ADD_TOOL, WEATHER_TOOL])
    assert [(c["name"], c["args"]) for c in parsed.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]


def test_no_fitting_tool_or_no_tools_echoes() -> None:
    messages = conversation([ADD_TOOL], {"role": "user", "content": "2 and 3"})
    assert agent_responder(messages, {}) == "Echo: 2 and 3"
    plain = [{"role": "user", "content": "hello"}]
    assert agent_responder(plain, {}) == "Echo: hello"


def test_in_json_mode_the_fallback_follows_the_instruction_with_json() -> None:
    # A forced call to a tool no argument fits: the envelope, with schema placeholders.
    forced = [
        {"role": "system", "content": tool_instruction([ADD_TOOL], "add")},
        {"role": "user", "content": "add something"},
    ]
    parsed = parse_reply(agent_responder(forced, {"json": True}), [ADD_TOOL])
    assert [(c["name"], c["args"]) for c in parsed.tool_calls] == [("add", {"a": 0, "b": 0})]
    # A reply format: an object shaped by its schema.
    schema = {"type": "json_schema", "json_schema": {"name": "Pet", "schema": PET_SCHEMA}}
    formatted = [
        {"role": "system", "content": format_instruction(schema)},
        {"role": "user", "content": [{"type": "text", "text": "a pet"}, IMAGE_PART]},
    ]
    assert json.loads(agent_responder(formatted, {"json": True})) == {
        "name": "example name",
        "legs": 4,
    }
    # Nothing asked for: the text and the images it was sent, as an object.
    plain = [{"role": "user", "content": [{"type": "text", "text": "hi"}, IMAGE_PART]}]
    assert json.loads(agent_responder(plain, {"json": True})) == {"echo": "hi", "images": 1}
    assert agent_responder(plain, {}) == "Echo: hi [1 image]"


def test_json_answers_cope_with_any_tool_and_unreadable_schemas() -> None:
    any_tool = [
        {"role": "system", "content": tool_instruction([ADD_TOOL, WEATHER_TOOL], "any")},
        {"role": "user", "content": "do something"},
    ]
    call = json.loads(json_answer(any_tool))["tool_calls"][0]
    assert call == {"name": "add", "arguments": {"a": 0, "b": 0}}  # the first tool
    broken = [{"role": "system", "content": "JSON schema: {not json"}, {"role": "user"}]
    assert json.loads(json_answer(broken)) == {}  # an object, whatever the instruction
    assert json.loads(json_answer("not a conversation")) == {"echo": ""}
    assert placeholder({"const": 3}) == 3
    assert placeholder({"anyOf": [{"type": "boolean"}, {"type": "null"}]}) is False
    assert placeholder({"type": ["null", "string"]}) is None
    assert placeholder(True) is None


PET_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "legs": {"type": "integer", "minimum": 4}},
    "required": ["name", "legs"],
}
IMAGE_PART = {"type": "image_url", "image_url": {"url": "https://x.test/pet.png"}}


def test_summarises_a_tool_result_quoting_its_url() -> None:
    url = "http://127.0.0.1:8765/images/abc.png"
    result = render_tool_result("websim_image_generation", "call_1", url, "success")
    messages = conversation(
        [IMAGE_TOOL],
        {"role": "user", "content": "Draw a fox"},
        {"role": "assistant", "content": json.dumps({"tool_calls": []})},
        {"role": "user", "content": result},
    )
    reply = agent_responder(messages, {})
    assert url in reply
    assert parse_reply(reply, [IMAGE_TOOL]).tool_calls == []
    assert "canned" in reply


def test_summarises_a_result_without_url_and_reports_a_failed_call() -> None:
    ok = render_tool_result("get_weather", "call_2", "sunny, 21 C", "success")
    reply = agent_responder(conversation([WEATHER_TOOL], {"role": "user", "content": ok}), {})
    assert "sunny, 21 C" in reply
    failed = render_tool_result("get_weather", "call_3", "city not found\nmore", "error")
    reply = agent_responder(conversation([WEATHER_TOOL], {"role": "user", "content": failed}), {})
    assert "failed" in reply and "city not found" in reply
    assert "more" not in reply
