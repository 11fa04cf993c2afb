"""What is read back from the model: tool calls and structured output.

Real models reply noisily, so the tool-call parser accepts much more than the envelope
``_prompt`` asks for:

- the envelope fenced (```` ```json ````, ```` ``` ````) or bare, with prose before/after;
- a single call object, a bare list of call objects, or ``tool_calls`` holding one object;
- the arguments under ``arguments``, ``args``, ``parameters``, ``input`` or ``tool_input``,
  as an object or as a JSON string (missing, ``null`` or empty: no arguments), or inline
  next to the name (known tools only);
- the ``{"tool": ..., "tool_input": ...}`` shape and OpenAI's
  ``{"function": {"name": ..., "arguments": "..."}}`` shape;
- several calls in one envelope, and several envelopes in one reply.

JSON that is not a call (no envelope; no argument key and no known tool name) stays text.
Calls naming an unknown tool or with arguments that fail the tool's JSON schema become
invalid tool calls carrying the reason.  Scanning is linear in the reply's length (see
``_json_extract``), and parsing never raises on any reply text.

Structured output: Websim cannot constrain generation, so these parsers do the enforcing:
they find the JSON in a noisy reply, validate it against the schema, and raise
``OutputParserException`` saying exactly what was wrong instead of returning ``None``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, BaseMessage, InvalidToolCall, ToolCall
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.output_parsers import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ValidationError
from pydantic.v1 import ValidationError as ValidationErrorV1

from langchain_websim._json_extract import extract_json, iter_json_spans, loads_json
from langchain_websim._prompt import Tool, tool_specs
from langchain_websim._schema_check import schema_errors

__all__ = [
    "ParsedReply",
    "extract_json",
    "function_of",
    "one_call_only",
    "parse_json_reply",
    "parse_reply",
    "parse_tool_call",
    "response_format_for",
    "schema_to_check",
    "with_raw",
]

Method = Literal["json_schema", "function_calling", "json_mode"]
_ARG_KEYS = ("arguments", "args", "parameters", "input", "tool_input")
_NAME_KEYS = ("name", "tool")
# Keys of a call object that are never arguments when arguments are written inline.
_CALL_KEYS = frozenset({*_NAME_KEYS, "id", "type"})
_EXCERPT = 200


# --------------------------------------------------------------------------- tool calls


@dataclass
class ParsedReply:
    """A model reply split into its text and the tool calls it makes."""

    content: str
    tool_calls: list[ToolCall]
    invalid_tool_calls: list[InvalidToolCall]


def parse_reply(text: str, tools: Sequence[Mapping[str, Any]] | None) -> ParsedReply:
    """Split a reply into prose and tool calls.  Never raises on any ``text``.

    Without tools (``None`` or empty) the reply is always plain text.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_reply expects the reply text as a str, got {type(text).__name__}")
    specs = tool_specs(tools) if tools else {}
    if not specs:
        return ParsedReply(content=text, tool_calls=[], invalid_tool_calls=[])
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    pieces: list[str] = []
    cursor = 0
    for span in iter_json_spans(text):
        raw_calls = _envelope_calls(span.value, specs)
        if raw_calls is None:
            continue
        pieces.append(text[cursor : max(cursor, span.outer_start)])
        cursor = max(cursor, span.outer_end)
        if isinstance(span.value, dict) and "tool_calls" in span.value:
            # Text the model put inside the envelope is part of its answer too.
            note = span.value.get("content")
            pieces.append(note if isinstance(note, str) else "")
        source = text[span.start : span.end]
        for raw in raw_calls:
            call_id = _new_id()
            try:
                calls.append(_make_call(raw, specs, source, call_id))
            except _InvalidCall as bad:
                invalid.append(
                    invalid_tool_call(name=bad.name, args=bad.args_text, id=call_id, error=str(bad))
                )
    if not calls and not invalid:
        return ParsedReply(content=text, tool_calls=[], invalid_tool_calls=[])
    pieces.append(text[cursor:])
    content = "\n\n".join(piece.strip() for piece in pieces if piece.strip())
    return ParsedReply(content=content, tool_calls=calls, invalid_tool_calls=invalid)


def one_call_only(parsed: ParsedReply) -> tuple[ParsedReply, list[dict[str, Any]]]:
    """``parallel_tool_calls=False``: the reply's first valid call (else its first invalid
    one) is kept; the others are returned apart, as ``{"name", "args"}``, never run.

    The model was told to call one tool at a time, so it makes the next call on a later
    turn, after this one's result.
    """
    kept: list[ToolCall] = parsed.tool_calls[:1]
    kept_invalid: list[InvalidToolCall] = [] if kept else parsed.invalid_tool_calls[:1]
    extra = [c for c in parsed.tool_calls if c not in kept]
    extra_invalid = [c for c in parsed.invalid_tool_calls if c not in kept_invalid]
    dropped: list[dict[str, Any]] = [{"name": c["name"], "args": c["args"]} for c in extra]
    dropped += [{"name": c.get("name"), "args": c.get("args")} for c in extra_invalid]
    return ParsedReply(parsed.content, kept, kept_invalid), dropped


def _name_of(obj: Mapping[str, Any]) -> str | None:
    for key in _NAME_KEYS:
        if isinstance(obj.get(key), str):
            return str(obj[key])
    return None


def _call_body(obj: Any) -> Any:
    """The object holding name and arguments (OpenAI nests it under ``function``)."""
    if isinstance(obj, dict) and isinstance(obj.get("function"), dict):
        return obj["function"]
    return obj


def _looks_like_call(obj: Any, specs: Mapping[str, Tool]) -> bool:
    body = _call_body(obj)
    if not isinstance(body, dict):
        return False
    name = _name_of(body)
    if name is None:
        return False
    return name in specs or any(key in body for key in _ARG_KEYS)


def _envelope_calls(value: Any, specs: Mapping[str, Tool]) -> list[Any] | None:
    """The raw call objects ``value`` carries, or ``None`` when it is not a call."""
    if isinstance(value, dict):
        if "tool_calls" in value:
            inner = value["tool_calls"]
            if isinstance(inner, dict):
                return [inner]
            return list(inner) if isinstance(inner, list) and inner else None
        return [value] if _looks_like_call(value, specs) else None
    if isinstance(value, list) and value and all(_looks_like_call(v, specs) for v in value):
        return list(value)
    return None


def _new_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def _dump(value: Any, fallback: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return fallback


class _InvalidCall(Exception):
    def __init__(self, error: str, *, name: str | None, args: str) -> None:
        super().__init__(error)
        self.name = name
        self.args_text = args


def _make_call(raw: Any, specs: Mapping[str, Tool], source: str, call_id: str) -> ToolCall:
    """Build a valid call from a raw call object, or raise ``_InvalidCall`` saying why not."""
    body = _call_body(raw)
    if not isinstance(body, dict):
        raise _InvalidCall(
            f"a tool call must be a JSON object, got {_json_kind(raw)}",
            name=None,
            args=_dump(raw, source),
        )
    name = _name_of(body)
    arg_key = next((key for key in _ARG_KEYS if key in body), None)
    inline = {k: v for k, v in body.items() if k not in _CALL_KEYS and k != arg_key}
    raw_args = body[arg_key] if arg_key is not None else inline
    if name is None:
        raise _InvalidCall(
            'the tool call names no tool (expected a string "name")',
            name=None,
            args=_dump(raw_args, source),
        )
    spec = specs.get(name)
    if spec is None:
        known = ", ".join(repr(tool) for tool in specs)
        raise _InvalidCall(
            f"unknown tool {name!r}; available tools: {known}",
            name=name,
            args=_dump(raw_args, source),
        )
    try:
        return tool_call(name=name, args=_arguments(raw_args, spec), id=call_id)
    except ValueError as exc:
        error = str(exc)
    if arg_key is not None and _declares(spec, arg_key):
        # The key may be the tool's own parameter written inline ({"name": t, "input": x}).
        try:
            return tool_call(
                name=name, args=_arguments({arg_key: raw_args, **inline}, spec), id=call_id
            )
        except ValueError:
            pass
    raise _InvalidCall(error, name=name, args=_dump(raw_args, source))


def _declares(spec: Tool, key: str) -> bool:
    properties = spec.parameters.get("properties")
    return isinstance(properties, Mapping) and key in properties


def _arguments(raw_args: Any, spec: Tool) -> dict[str, Any]:
    """Arguments as a dict satisfying the tool's schema; ``ValueError`` saying why not."""
    args = raw_args
    if args is None:
        args = {}
    elif isinstance(args, str):
        if not args.strip():
            args = {}
        else:
            try:
                args = loads_json(args)
            except ValueError as exc:
                raise ValueError(
                    f"the arguments for tool {spec.name!r} are a string that is not valid "
                    f"JSON ({exc})"
                ) from None
    if not isinstance(args, dict):
        raise ValueError(
            f"the arguments for tool {spec.name!r} must be a JSON object, got {_json_kind(args)}"
        )
    errors = schema_errors(args, spec.parameters)
    if errors:
        raise ValueError(
            f"the arguments for tool {spec.name!r} do not match its schema: " + "; ".join(errors)
        )
    return args


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else "a value")


# --------------------------------------------------------------------------- structured output


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def function_of(schema: Any) -> dict[str, Any]:
    """The OpenAI function for ``schema``: name, description and parameters."""
    try:
        function = convert_to_openai_tool(schema)["function"]
    except (ValueError, TypeError) as exc:
        raise TypeError(
            "schema must be a pydantic model, a TypedDict, a JSON schema with a 'title' or an "
            f"OpenAI function/tool dict; {exc}"
        ) from exc
    return dict(function)


def response_format_for(schema: Any) -> dict[str, Any]:
    """The ``response_format`` call argument: the schema for the instruction, if any."""
    if schema is None:
        return {"type": "json_object"}
    try:
        function = function_of(schema)
    except TypeError:
        if not isinstance(schema, Mapping):
            raise
        # A JSON schema without a title: the title only names it, so ask for it as it is.
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    spec: dict[str, Any] = {
        "name": function["name"],
        "schema": function.get("parameters") or {"type": "object"},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"type": "json_schema", "json_schema": spec}


def schema_to_check(
    schema: Any, method: Method, response_format: dict[str, Any]
) -> Mapping[str, Any] | None:
    """The JSON schema replies are held to besides pydantic (``None``: pydantic only)."""
    if _is_pydantic(schema):
        return None
    if method == "json_mode":
        return {"type": "object"}  # a JSON object, as in OpenAI's JSON mode
    return dict(response_format["json_schema"]["schema"])


def _excerpt(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _EXCERPT else text[:_EXCERPT] + "...")


def parse_json_reply(
    message: BaseMessage, *, schema: Any, json_schema: Mapping[str, Any] | None
) -> Any:
    text = message.text
    try:
        value = extract_json(text)
    except ValueError:
        raise OutputParserException(
            f"the model's reply holds no JSON object: {_excerpt(text)}", llm_output=text
        ) from None
    return _validated(value, schema, json_schema, text)


def _validated(value: Any, schema: Any, json_schema: Mapping[str, Any] | None, text: str) -> Any:
    if _is_pydantic(schema):
        try:
            if hasattr(schema, "model_validate"):
                return schema.model_validate(value)
            return schema.parse_obj(value)  # pydantic.v1 model
        except (ValidationError, ValidationErrorV1) as exc:
            raise OutputParserException(
                f"the model's JSON does not match {schema.__name__}: {exc}", llm_output=text
            ) from exc
    if json_schema is not None:
        errors = schema_errors(value, json_schema, root="reply")
        if errors:
            raise OutputParserException(
                "the model's JSON does not match the schema: " + "; ".join(errors),
                llm_output=text,
            )
    return value


def parse_tool_call(message: BaseMessage, *, schema: Any, name: str) -> Any:
    text = message.text
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    if not any(call["name"] == name for call in calls):
        invalid = message.invalid_tool_calls if isinstance(message, AIMessage) else []
        if invalid:
            reasons = "; ".join(str(call.get("error")) for call in invalid)
            problem = f"the model's call to {name!r} was invalid: {reasons}"
        else:
            problem = f"the model answered without calling {name!r}: {_excerpt(text)}"
        raise OutputParserException(problem, llm_output=text)
    generation: list[Generation] = [ChatGeneration(message=message)]
    if not _is_pydantic(schema):
        return JsonOutputKeyToolsParser(key_name=name, first_tool_only=True).parse_result(
            generation
        )
    try:
        return PydanticToolsParser(tools=[schema], first_tool_only=True).parse_result(generation)
    except (ValidationError, ValidationErrorV1) as exc:
        raise OutputParserException(
            f"the model's call to {name!r} does not match {schema.__name__}: {exc}",
            llm_output=text,
        ) from exc


def with_raw(bound: Runnable[Any, Any], parser: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """``include_raw=True``: ``{"raw", "parsed", "parsing_error"}``, as partner packages do."""
    parser_assign = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
    parser_with_fallback = parser_assign.with_fallbacks(
        [parser_none], exception_key="parsing_error"
    )
    return RunnableMap(raw=bound) | parser_with_fallback
