"""Property-based tests: the reply parser never raises, and what it accepts round-trips."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_websim._json_extract import iter_json_spans
from langchain_websim._parsers import ParsedReply, extract_json, parse_reply
from langchain_websim._prompt import render_tool_calls
from langchain_websim._schema_check import schema_errors


def lookup(key: str, when: str = "") -> str:
    """Look up a record."""
    return key


NOTE_TOOL = {
    "type": "function",
    "function": {
        "name": "note",
        "description": "Store anything.",
        "parameters": {"type": "object", "properties": {}},
    },
}
TOOLS = [convert_to_openai_tool(lookup), NOTE_TOOL]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
CALL_ID = re.compile(r"^call_[0-9a-f]+$")

# Text that looks like JSON, fences and calls: what makes a scanner misbehave.
JSON_TOKENS = [*'{}[]":,`\\ \n\t0123456789.-+eEtrufalsn', '"name"', '"lookup"', '"note"']
JSON_TOKENS += ['"arguments"', '"tool_calls"', "```json\n", "\n```"]
JSONISH = st.lists(st.sampled_from(JSON_TOKENS), max_size=300).map("".join)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
JSON_CONTAINERS = st.lists(JSON_VALUES, max_size=4) | st.dictionaries(
    st.text(max_size=8), JSON_VALUES, max_size=4
)
# Prose that cannot itself start a JSON value or a fence.
PROSE = st.text(
    alphabet=st.characters(exclude_characters="{[`", codec="utf-8"),
    max_size=80,
)
HEAVY = settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])


def check_invariants(text: str, reply: ParsedReply) -> None:
    assert isinstance(reply.content, str)
    ids = [c["id"] for c in reply.tool_calls] + [c["id"] for c in reply.invalid_tool_calls]
    assert all(i is not None and CALL_ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    for call in reply.tool_calls:
        assert call["name"] in SCHEMAS
        assert schema_errors(call["args"], SCHEMAS[call["name"]]) == []
    for bad in reply.invalid_tool_calls:
        assert bad["error"]
    if not ids:
        assert reply.content == text


@given(st.text(max_size=500))
def test_random_text_never_raises(text: str) -> None:
    check_invariants(text, parse_reply(text, TOOLS))


@given(JSONISH)
def test_jsonish_text_never_raises(text: str) -> None:
    check_invariants(text, parse_reply(text, TOOLS))


@given(JSONISH)
def test_extract_json_raises_only_value_error(text: str) -> None:
    try:
        value = extract_json(text)
    except ValueError as exc:
        assert "no JSON object or array found" in str(exc)
    else:
        assert isinstance(value, dict | list)


@given(st.text(max_size=300) | JSONISH)
def test_without_tools_the_reply_is_always_plain_text(text: str) -> None:
    assert parse_reply(text, None) == ParsedReply(text, [], [])


@given(
    st.lists(st.sampled_from(["[", "{", '{"a":', '{"name":"lookup","arguments":', '"', "]", "}"])),
    st.integers(min_value=1, max_value=3000),
)
@HEAVY
def test_deeply_nested_brackets_never_raise(pieces: list[str], depth: int) -> None:
    text = "".join(pieces) * depth
    check_invariants(text, parse_reply(text, TOOLS))
    list(iter_json_spans(text))


@given(st.lists(st.sampled_from(["```", "```json\n", "\n```", '{"tool_calls": [', "]}", "x"])))
def test_unbalanced_fences_never_raise(pieces: list[str]) -> None:
    text = "".join(pieces)
    check_invariants(text, parse_reply(text, TOOLS))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1_000_000,
        "{" * 1_000_000,
        '{"a":' * 200_000,
        '"[' * 500_000,
        "[0," * 300 + '"' + "[1, {" * 200_000,
        '{"name": "lookup", "arguments": {"key": "' + "x" * 1_000_000,
        "```json\n" * 100_000,
        "[" * 2000 + "1" * 5000 + "]" * 2000,
    ],
    ids=["brackets", "braces", "open-objects", "quoted-brackets", "unterminated-string",
         "unterminated-call", "open-fences", "huge-number"],
)  # fmt: skip
def test_huge_hostile_replies_are_plain_text(text: str) -> None:
    # A linear scan keeps each of these around a second at most; no timing is asserted.
    assert parse_reply(text, TOOLS) == ParsedReply(text, [], [])


def test_a_huge_valid_call_is_found() -> None:
    key = "k" * 1_000_000
    reply = parse_reply('Calling:\n{"name": "lookup", "arguments": {"key": "' + key + '"}}', TOOLS)
    assert [c["args"] for c in reply.tool_calls] == [{"key": key}]
    assert reply.content == "Calling:"


@given(st.lists(JSON_VALUES.map(lambda v: {"value": v}), min_size=1, max_size=3), PROSE)
@settings(deadline=None)
def test_rendered_calls_round_trip(args_list: list[dict[str, Any]], prose: str) -> None:
    calls = [
        {"name": "note", "args": args, "id": f"call_{i}", "type": "tool_call"}
        for i, args in enumerate(args_list)
    ]
    reply = parse_reply(render_tool_calls(calls, prose), TOOLS)  # type: ignore[arg-type]
    assert reply.invalid_tool_calls == []
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("note", a) for a in args_list]
    assert reply.content == prose.strip()


@given(PROSE, PROSE, st.sampled_from(["```json\n", "```\n", "```JSON ", ""]), st.text(max_size=5))
def test_calls_are_found_amid_prose_and_fences(
    before: str, after: str, fence: str, key: str
) -> None:
    call = json.dumps({"name": "lookup", "arguments": {"key": key}})
    closing = "\n```" if fence else ""
    reply = parse_reply(f"{before}\n{fence}{call}{closing}\n{after}", TOOLS)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("lookup", {"key": key})]
    assert "```" not in reply.content
    assert reply.content == "\n\n".join(p.strip() for p in (before, after) if p.strip())


@given(JSON_CONTAINERS, PROSE, PROSE, st.booleans())
@settings(deadline=None)
def test_extract_json_finds_any_embedded_container(
    value: Any, before: str, after: str, fenced: bool
) -> None:
    body = json.dumps(value, ensure_ascii=False)
    text = f"{before}\n```json\n{body}\n```\n{after}" if fenced else f"{before} {body} {after}"
    assert extract_json(text) == value


@pytest.mark.parametrize(
    "template",
    [
        '{"name": "nope", "arguments": {"key": %s}}',
        '{"name": "lookup", "arguments": {"key": %s}}',
        '{"name": "lookup", "arguments": "{\\"key\\": %s}"}',
        '{"tool_calls": [%s]}',
        "[%s",
    ],
)
def test_nesting_around_the_recursion_limit_never_raises(template: str) -> None:
    # Values just decodable at this stack depth must survive checking and re-encoding.
    limit = sys.getrecursionlimit()
    for depth in range(limit - 150, limit + 5):
        text = template % ("[" * depth + "]" * depth)
        reply = parse_reply(text, TOOLS)
        check_invariants(text, reply)
        assert reply.tool_calls == []  # "key" must be a string
