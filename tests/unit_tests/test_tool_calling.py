"""The prompt-based tool-calling protocol and the reply parser.

The ``test_shape_*`` tests document every reply shape the parser accepts.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field

from langchain_websim._parsers import ParsedReply, extract_json, parse_reply
from langchain_websim._prompt import (
    corrective_instruction,
    normalize_tool_choice,
    render_tool_calls,
    render_tool_result,
    tool_instruction,
)
from langchain_websim._schema_check import schema_errors

CALL_ID = re.compile(r"^call_[0-9a-f]+$")


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Get the current weather in a city."""
    return f"{city}: 20 {unit}"


def run(input: str) -> str:
    """Run a shell command."""
    return input


class Guest(BaseModel):
    name: str
    age: int = Field(ge=0)


class BookTable(BaseModel):
    """Book a restaurant table."""

    model_config = ConfigDict(extra="forbid")

    restaurant: str
    guests: list[Guest]


TOOLS = [convert_to_openai_tool(t) for t in (get_weather, run)]
TOOLS.append(convert_to_openai_tool(BookTable, strict=True))
TOOL_NAMES = ["get_weather", "run", "BookTable"]
ENVELOPE = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
PARIS = {"city": "Paris"}


def envelope(*calls: Any) -> str:
    return json.dumps({"tool_calls": list(calls)})


def weather(args: Any) -> dict[str, Any]:
    return {"name": "get_weather", "arguments": args}


def parse(text: str) -> ParsedReply:
    return parse_reply(text, TOOLS)


def only_call(reply: ParsedReply) -> tuple[str, dict[str, Any]]:
    assert reply.invalid_tool_calls == []
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["type"] == "tool_call"
    assert call["id"] is not None and CALL_ID.match(call["id"])
    return call["name"], call["args"]


def only_error(reply: ParsedReply) -> str:
    assert reply.tool_calls == []
    assert len(reply.invalid_tool_calls) == 1
    bad = reply.invalid_tool_calls[0]
    assert bad["id"] is not None and CALL_ID.match(bad["id"])
    assert bad["error"]
    return bad["error"]


# --------------------------------------------------------------------------- tool_choice


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, "auto"),
        ("auto", "auto"),
        (False, "auto"),
        ("any", "any"),
        ("required", "any"),
        (True, "any"),
        ("none", "none"),
        ("run", "run"),
        ({"type": "function", "function": {"name": "run"}}, "run"),
        ({"type": "tool", "name": "get_weather"}, "get_weather"),
        ({"type": "any"}, "any"),
    ],
)
def test_normalize_tool_choice(choice: Any, expected: str) -> None:
    assert normalize_tool_choice(choice, TOOL_NAMES) == expected


@pytest.mark.parametrize("choice", ["search", {"type": "function", "function": {"name": "x"}}])
def test_normalize_tool_choice_unknown_name_names_it_and_the_known_tools(choice: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown tool '(search|x)'.*'get_weather', 'run'"):
        normalize_tool_choice(choice, TOOL_NAMES)


def test_normalize_tool_choice_rejects_malformed_values() -> None:
    with pytest.raises(ValueError, match="tool_choice dict must be"):
        normalize_tool_choice({"function": "run"}, TOOL_NAMES)
    with pytest.raises(TypeError, match="got int: 3"):
        normalize_tool_choice(3, TOOL_NAMES)
    with pytest.raises(ValueError, match="no tools are bound"):
        normalize_tool_choice("any", [])


# --------------------------------------------------------------------------- instructions


def test_tool_instruction_lists_every_tool_with_description_and_compact_schema() -> None:
    text = tool_instruction(TOOLS, "auto")
    for tool in TOOLS:
        function = tool["function"]
        assert f"Tool: {function['name']}" in text
        assert function["description"] in text
        assert json.dumps(function["parameters"], separators=(",", ":")) in text
    assert '{"tool_calls": [{"name": "<tool name>", "arguments": {' in text
    assert "EITHER in plain text" in text
    assert "MUST" not in text


def test_tool_instruction_forced_choices_say_so() -> None:
    any_text = tool_instruction(TOOLS, "any")
    assert "You MUST call at least one tool" in any_text
    assert "EITHER in plain text" not in any_text
    named = tool_instruction(TOOLS, "run")
    assert "You MUST call the tool 'run'" in named
    assert tool_instruction(TOOLS, None) == tool_instruction(TOOLS, "auto")


def test_tool_instruction_offers_nothing_for_none_or_no_tools() -> None:
    assert tool_instruction(TOOLS, "none") == ""
    assert tool_instruction([], "auto") == ""


def test_tool_instruction_rejects_bad_tools_and_choices() -> None:
    with pytest.raises(TypeError, match="tool 0 is not an OpenAI tool dict"):
        tool_instruction([{"name": "x"}], "auto")
    with pytest.raises(ValueError, match="two tools are named 'run'"):
        tool_instruction([TOOLS[1], TOOLS[1]], "auto")
    with pytest.raises(ValueError, match="unknown tool 'search'"):
        tool_instruction(TOOLS, "search")


def test_corrective_instruction_names_the_required_tools() -> None:
    text = corrective_instruction("any", TOOL_NAMES)
    assert "did not call a tool" in text
    assert "'get_weather', 'run', 'BookTable'" in text
    assert '{"tool_calls": [' in text
    assert "the tool 'run'" in corrective_instruction("run", TOOL_NAMES)
    with pytest.raises(ValueError, match="does not require a tool call"):
        corrective_instruction("auto", TOOL_NAMES)


# --------------------------------------------------------------------------- history


def test_render_tool_calls_is_the_envelope_the_parser_reads_back() -> None:
    calls = [
        {"name": "get_weather", "args": PARIS, "id": "call_1", "type": "tool_call"},
        {"name": "run", "args": {"input": "ls"}, "id": "call_2", "type": "tool_call"},
    ]
    text = render_tool_calls(calls)  # type: ignore[arg-type]
    assert json.loads(text) == {
        "tool_calls": [
            {"id": "call_1", "name": "get_weather", "arguments": PARIS},
            {"id": "call_2", "name": "run", "arguments": {"input": "ls"}},
        ]
    }
    reply = parse(text)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", PARIS),
        ("run", {"input": "ls"}),
    ]


def test_render_tool_calls_keeps_content_before_the_envelope() -> None:
    call = {"name": "get_weather", "args": PARIS, "id": "call_1"}
    text = render_tool_calls([call], "  Let me look.  ")  # type: ignore[list-item]
    head, envelope = text.split("\n\n", 1)
    assert head == "Let me look."
    assert json.loads(envelope)["tool_calls"][0]["name"] == "get_weather"
    assert parse(text).content == "Let me look."
    assert render_tool_calls([], "just text") == "just text"


def test_render_tool_result_names_tool_and_call_and_carries_the_result() -> None:
    text = render_tool_result("get_weather", "call_1", "Paris: 20 c", "success")
    assert "'get_weather'" in text and "call_1" in text and text.endswith("Paris: 20 c")
    assert "FAILED" not in text
    anonymous = render_tool_result(None, "call_2", "42", "success")
    assert "call_2" in anonymous and "None" not in anonymous


def test_render_tool_result_says_when_the_tool_failed() -> None:
    text = render_tool_result("run", "call_9", "ValueError: boom", "error")
    assert "call_9" in text and "'run'" in text
    assert "FAILED" in text and "ValueError: boom" in text


# --------------------------------------------------------------------------- accepted shapes


def test_shape_envelope_bare() -> None:
    assert only_call(parse(ENVELOPE)) == ("get_weather", PARIS)


def test_shape_envelope_fenced_json() -> None:
    assert only_call(parse(f"```json\n{ENVELOPE}\n```")) == ("get_weather", PARIS)


def test_shape_envelope_fenced_bare_backticks() -> None:
    assert only_call(parse(f"```\n{ENVELOPE}\n```")) == ("get_weather", PARIS)


def test_shape_envelope_with_prose_before_and_after() -> None:
    reply = parse(f"Let me check that.\n```json\n{ENVELOPE}\n```\nI will report back.")
    assert only_call(reply) == ("get_weather", PARIS)
    assert reply.content == "Let me check that.\n\nI will report back."
    bare = parse(f"Checking now: {ENVELOPE} (one moment)")
    assert only_call(bare) == ("get_weather", PARIS)
    assert bare.content == "Checking now:\n\n(one moment)"


def test_shape_single_call_object() -> None:
    reply = parse('{"name": "get_weather", "arguments": {"city": "Paris", "unit": "f"}}')
    assert only_call(reply) == ("get_weather", {"city": "Paris", "unit": "f"})
    assert reply.content == ""


def test_shape_bare_list_of_calls() -> None:
    reply = parse(
        '[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
        '{"name": "run", "arguments": {"input": "date"}}]'
    )
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", PARIS),
        ("run", {"input": "date"}),
    ]


@pytest.mark.parametrize("key", ["arguments", "args", "parameters", "input", "tool_input"])
def test_shape_argument_keys(key: str) -> None:
    text = envelope({"name": "get_weather", key: PARIS})
    assert only_call(parse(text)) == ("get_weather", PARIS)
    assert only_call(parse(json.dumps({"name": "get_weather", key: PARIS}))) == (
        "get_weather",
        PARIS,
    )


def test_shape_tool_and_tool_input() -> None:
    reply = parse('I need data.\n{"tool": "get_weather", "tool_input": {"city": "Paris"}}')
    assert only_call(reply) == ("get_weather", PARIS)
    assert reply.content == "I need data."


def test_shape_arguments_as_json_string() -> None:
    text = '{"tool_calls": [{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}]}'
    assert only_call(parse(text)) == ("get_weather", PARIS)


def test_shape_several_calls_in_one_envelope() -> None:
    reply = parse(envelope(weather(PARIS), weather({"city": "Rome"})))
    assert [c["args"]["city"] for c in reply.tool_calls] == ["Paris", "Rome"]
    assert len({c["id"] for c in reply.tool_calls}) == 2


def test_shape_several_envelopes_in_one_reply() -> None:
    second = ENVELOPE.replace("Paris", "Rome")
    reply = parse(f"First:\n```json\n{ENVELOPE}\n```\nThen:\n```json\n{second}\n```\nDone.")
    assert [c["args"]["city"] for c in reply.tool_calls] == ["Paris", "Rome"]
    assert reply.content == "First:\n\nThen:\n\nDone."


def test_shape_openai_function_object() -> None:
    function = {"name": "get_weather", "arguments": json.dumps(PARIS)}
    text = envelope({"id": "x", "type": "function", "function": function})
    name, args = only_call(parse(text))
    assert (name, args) == ("get_weather", PARIS)
    assert parse(text).tool_calls[0]["id"] != "x"  # ids are always ours


def test_shape_envelope_holding_a_single_call_object() -> None:
    text = json.dumps({"tool_calls": weather(PARIS)})
    assert only_call(parse(text)) == ("get_weather", PARIS)


@pytest.mark.parametrize("arguments", [None, "", "  ", {}])
def test_shape_missing_or_empty_arguments_mean_no_arguments(arguments: Any) -> None:
    ping = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}
    for text in ('{"name": "ping"}', json.dumps({"name": "ping", "arguments": arguments})):
        reply = parse_reply(text, [ping])
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("ping", {})]


def test_shape_inline_arguments_for_a_known_tool() -> None:
    assert only_call(parse('{"name": "get_weather", "city": "Paris"}')) == ("get_weather", PARIS)
    # An inline argument called "content" is an argument, not text of the answer.
    reply = parse('{"name": "get_weather", "city": "Paris", "content": "x"}')
    assert only_call(reply) == ("get_weather", {"city": "Paris", "content": "x"})
    assert reply.content == ""


def test_shape_tool_parameter_named_like_an_argument_key() -> None:
    # `run` takes a parameter called "input": written inline, it is the argument itself.
    assert only_call(parse('{"name": "run", "input": "ls -l"}')) == ("run", {"input": "ls -l"})
    nested = '{"name": "run", "input": {"input": "ls -l"}}'
    assert only_call(parse(nested)) == ("run", {"input": "ls -l"})


def test_shape_raw_newlines_inside_argument_strings() -> None:
    text = '{"name": "run", "arguments": {"input": "echo a\necho b"}}'
    assert only_call(parse(text)) == ("run", {"input": "echo a\necho b"})


def test_shape_envelope_content_key_is_kept_as_text() -> None:
    reply = parse(json.dumps({"content": "Looking it up.", "tool_calls": [weather(PARIS)]}))
    assert only_call(reply) == ("get_weather", PARIS)
    assert reply.content == "Looking it up."


def test_each_call_gets_a_fresh_unique_id() -> None:
    ids = [parse(ENVELOPE).tool_calls[0]["id"] for _ in range(20)]
    assert all(i is not None and CALL_ID.match(i) for i in ids)
    assert len(set(ids)) == 20


# --------------------------------------------------------------------------- invalid calls


def test_unknown_tool_is_an_invalid_call_naming_it_and_the_known_tools() -> None:
    reply = parse('{"tool_calls": [{"name": "search", "arguments": {"q": "x"}}]}')
    error = only_error(reply)
    assert error == "unknown tool 'search'; available tools: 'get_weather', 'run', 'BookTable'"
    bad = reply.invalid_tool_calls[0]
    assert bad["name"] == "search" and json.loads(bad["args"] or "") == {"q": "x"}
    assert reply.content == ""


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "arguments: missing required property 'city'"),
        ({"city": 5}, "arguments.city: expected string, got integer 5"),
        ({"city": "Paris", "unit": "k"}, "arguments.unit: 'k' is not one of ['c', 'f']"),
    ],
)
def test_arguments_failing_the_schema_are_invalid(arguments: Any, expected: str) -> None:
    error = only_error(parse(json.dumps(weather(arguments))))
    assert error.startswith("the arguments for tool 'get_weather' do not match its schema: ")
    assert error.endswith(expected)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {"restaurant": "Luigi", "guests": [{"name": "A", "age": "x"}]},
            "arguments.guests[0].age: expected integer, got string 'x'",
        ),
        (
            {"restaurant": "Luigi", "guests": [{"name": "A", "age": -1}]},
            "arguments.guests[0].age: -1 is less than the minimum 0",
        ),
        (
            {"restaurant": "Luigi", "guests": {"name": "A"}},
            "arguments.guests: expected array, got object {'name': 'A'}",
        ),
        (
            {"restaurant": "Luigi", "guests": [], "when": "now"},
            "arguments: unexpected property 'when' (allowed: 'restaurant', 'guests')",
        ),
        (
            {"restaurant": "Luigi", "guests": [{"name": "A", "age": 3, "vip": True}]},
            "arguments.guests[0]: unexpected property 'vip' (allowed: 'name', 'age')",
        ),
    ],
)
def test_nested_objects_arrays_and_closed_objects_are_checked(
    arguments: Any, expected: str
) -> None:
    error = only_error(parse(json.dumps({"name": "BookTable", "arguments": arguments})))
    assert expected in error


def test_valid_nested_arguments_pass() -> None:
    args = {"restaurant": "Luigi", "guests": [{"name": "A", "age": 30}]}
    assert only_call(parse(json.dumps({"name": "BookTable", "arguments": args}))) == (
        "BookTable",
        args,
    )


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            {"name": "get_weather", "arguments": "{city: Paris}"},
            "the arguments for tool 'get_weather' are a string that is not valid JSON",
        ),
        (
            {"name": "get_weather", "arguments": ["Paris"]},
            "the arguments for tool 'get_weather' must be a JSON object, got an array",
        ),
        ({"arguments": PARIS}, 'the tool call names no tool (expected a string "name")'),
        ("get_weather", "a tool call must be a JSON object, got a string"),
        ({"name": "run", "input": 5}, "the arguments for tool 'run' must be a JSON object, got a"),
    ],
)
def test_malformed_calls_in_an_envelope_are_invalid(call: Any, expected: str) -> None:
    error = only_error(parse(envelope(call)))
    assert error.startswith(expected)


def test_valid_and_invalid_calls_in_one_reply_are_split() -> None:
    reply = parse(envelope(weather(PARIS), weather({"town": "Rome"})))
    assert [c["args"] for c in reply.tool_calls] == [PARIS]
    assert len(reply.invalid_tool_calls) == 1
    assert "missing required property 'city'" in (reply.invalid_tool_calls[0]["error"] or "")


# --------------------------------------------------------------------------- plain answers


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Paris is sunny.",
        'Here is the config: {"a": 1}',
        'Set it like this:\n```json\n{"name": "my-app", "version": 2}\n```',
        '{"name": "Paris", "population": 2100000}',
        '{"tool_calls": []}',
        '[{"name": "get_weather", "arguments": {}}, 3]',
        "Use [1, 2, 3] or {broken json",
        "",
    ],
)
def test_text_without_a_call_is_a_plain_answer(text: str) -> None:
    assert parse(text) == ParsedReply(content=text, tool_calls=[], invalid_tool_calls=[])


def test_fences_are_cut_only_when_they_wrap_the_call() -> None:
    reply = parse(f"Calling {ENVELOPE}\n```")
    assert only_call(reply) == ("get_weather", PARIS)
    assert reply.content == "Calling\n\n```"


@pytest.mark.parametrize("tools", [None, []])
def test_no_tools_bound_never_produces_calls(tools: Any) -> None:
    reply = parse_reply(f"```json\n{ENVELOPE}\n```", tools)
    assert reply == ParsedReply(
        content=f"```json\n{ENVELOPE}\n```", tool_calls=[], invalid_tool_calls=[]
    )


def test_parse_reply_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="got bytes"):
        parse_reply(b"{}", TOOLS)  # type: ignore[arg-type]


def test_a_megabyte_of_prose_is_scanned_in_one_pass() -> None:
    # Linear scanning is what makes this quick; no timing is asserted.
    prose = "The committee met on Tuesday (as planned) to discuss [the budget]. " * 15_000
    assert len(prose) > 1_000_000
    assert parse(prose).content == prose
    reply = parse(prose + "\n" + ENVELOPE)
    assert only_call(reply) == ("get_weather", PARIS)
    assert reply.content == prose.strip()


# --------------------------------------------------------------------------- extract_json


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [2]}',
        'Sure! Here it is:\n```json\n{"a": 1, "b": [2]}\n```\nAnything else?',
        'Here:\n```\n{"a": 1, "b": [2]}\n```',
        'The answer is {"a": 1, "b": [2]} as requested.',
        'Step [one] first.\n```json\n{"a": 1, "b": [2]}\n```',
    ],
)
def test_extract_json_finds_the_object(text: str) -> None:
    assert extract_json(text) == {"a": 1, "b": [2]}


def test_extract_json_prefers_a_fenced_value_and_accepts_arrays() -> None:
    assert extract_json('Pick [1, 2] or:\n```json\n[{"x": 1}]\n```') == [{"x": 1}]
    assert extract_json("Values: [1, 2] and [3]") == [1, 2]


def test_extract_json_without_json_raises_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no JSON object or array found in the text: 'I c"):
        extract_json("I cannot answer that {sorry}.")
    with pytest.raises(ValueError, match=r"found in the text: 'xxx+\.\.\.'$"):
        extract_json("x" * 1000)
    with pytest.raises(TypeError, match="expects a str"):
        extract_json(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- schema checker


def test_schema_check_follows_local_refs_and_alternatives() -> None:
    schema = {
        "$defs": {
            "Point": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}}
        },
        "type": "object",
        "properties": {
            "at": {"$ref": "#/$defs/Point"},
            "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    assert schema_errors({"at": {"x": 1.5}, "label": None}, schema) == []
    assert schema_errors({"at": {}}, schema) == ["arguments.at: missing required property 'x'"]
    assert schema_errors({"label": 3}, schema) == [
        "arguments.label: matches none of the allowed shapes (arguments.label: expected "
        "string, got integer 3; arguments.label: expected null, got integer 3)"
    ]
    assert schema_errors({"at": 1}, {"properties": {"at": {"$ref": "#/$defs/Nope"}}}) == [
        "arguments.at: reference '#/$defs/Nope' does not resolve"
    ]


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        (3.0, {"type": "integer"}, []),
        (True, {"type": "integer"}, ["arguments: expected integer, got boolean True"]),
        (0.3, {"type": "number", "multipleOf": 0.1}, []),
        (5, {"exclusiveMaximum": 5}, ["arguments: 5 is not less than 5"]),
        ("ab", {"minLength": 3}, ["arguments: has 2 characters, fewer than the minimum 3"]),
        ([1, 2, 3], {"maxItems": 2}, ["arguments: has 3 items, more than the maximum 2"]),
        ("x1", {"pattern": "^[a-z]+$"}, ["arguments: 'x1' does not match the pattern '^[a-z]+$'"]),
        (1, {"const": True}, ["arguments: expected True, got 1"]),
        (
            [1, "a"],
            {"prefixItems": [{"type": "integer"}, {"type": "integer"}]},
            ["arguments[1]: expected integer, got string 'a'"],
        ),
        (
            {"a": 1},
            {"additionalProperties": False},
            ["arguments: unexpected property 'a' (allowed: none)"],
        ),
        (1, False, ["arguments: no value is allowed here"]),
        (None, {"type": ["string", "null"]}, []),
        (
            5,
            {"allOf": [{"type": "integer"}, {"maximum": 3}]},
            ["arguments: 5 is greater than the maximum 3"],
        ),
        (1, {"exclusiveMinimum": 1}, ["arguments: 1 is not greater than 1"]),
        (0.25, {"multipleOf": 0.1}, ["arguments: 0.25 is not a multiple of 0.1"]),
        (
            "a",
            {"pattern": "("},
            [
                "arguments: the schema's pattern '(' is invalid "
                "(missing ), unterminated subpattern at position 0)"
            ],
        ),
        ([1, {"a": 2}], {"enum": [[1, {"a": 2}], 3]}, []),
        (
            [1, {"a": 2.0}],
            {"const": [1, {"a": True}]},
            ["arguments: expected [1, {'a': True}], got [1, {'a': 2.0}]"],
        ),
        ({"a": 1}, {"properties": {"a": 5}}, []),
        (
            {"a": 1},
            {"$ref": "other.json#/a"},
            ["arguments: only local references are supported, got 'other.json#/a'"],
        ),
        ((1, 2), {"type": "array"}, ["arguments: expected array, got tuple (1, 2)"]),
    ],
)
def test_schema_check_keywords(value: Any, schema: Any, expected: list[str]) -> None:
    assert schema_errors(value, schema) == expected


def test_schema_check_reports_at_most_five_problems() -> None:
    schema = {"type": "object", "required": [f"k{i}" for i in range(10)]}
    assert len(schema_errors({}, schema)) == 5


def test_schema_check_stops_at_self_referencing_depth() -> None:
    schema = {
        "$defs": {"T": {"type": "object", "properties": {"c": {"$ref": "#/$defs/T"}}}},
        "$ref": "#/$defs/T",
    }
    value: dict[str, Any] = {}
    for _ in range(200):
        value = {"c": value}
    errors = schema_errors(value, schema)
    assert len(errors) == 1 and "nested deeper than 64 levels" in errors[0]
