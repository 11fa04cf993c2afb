"""Tool calling through the prompt: the instruction protocol and the reply parser.

Websim has no native tool calling, so the tools are described to the model in a system
instruction and the model answers either in plain text or with a JSON envelope::

    {"tool_calls": [{"name": "<tool>", "arguments": {...}}]}

History is rendered in the same envelope, so the model sees its earlier calls the way it
was asked to write them.  Real models reply noisily, so the parser accepts much more than
the envelope it asks for:

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
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import InvalidToolCall, ToolCall
from langchain_core.messages.tool import invalid_tool_call, tool_call

from langchain_websim._json_extract import extract_json, iter_json_spans, loads_json
from langchain_websim._schema_check import schema_errors

__all__ = [
    "ParsedReply",
    "corrective_instruction",
    "extract_json",
    "normalize_tool_choice",
    "parse_reply",
    "render_tool_calls",
    "render_tool_result",
    "tool_instruction",
]

_ARG_KEYS = ("arguments", "args", "parameters", "input", "tool_input")
_NAME_KEYS = ("name", "tool")
# Keys of a call object that are never arguments when arguments are written inline.
_CALL_KEYS = frozenset({*_NAME_KEYS, "id", "type"})
_ENVELOPE_EXAMPLE = (
    '{"tool_calls": [{"name": "<tool name>", "arguments": {"<argument>": <value>}}]}'
)


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class _Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]


def _tool_specs(tools: Sequence[Mapping[str, Any]]) -> dict[str, _Tool]:
    """Index OpenAI tool dicts (``convert_to_openai_tool`` output) by name."""
    specs: dict[str, _Tool] = {}
    for position, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise TypeError(
                f"tool {position} is not an OpenAI tool dict "
                '({"type": "function", "function": {"name": ..., ...}}); convert tools with '
                f"langchain_core.utils.function_calling.convert_to_openai_tool, got {tool!r}"
            )
        name = function["name"]
        if name in specs:
            raise ValueError(f"two tools are named {name!r}; tool names must be unique")
        parameters = function.get("parameters")
        specs[name] = _Tool(
            name=name,
            description=str(function.get("description") or ""),
            parameters=parameters if isinstance(parameters, Mapping) else {"type": "object"},
        )
    return specs


def normalize_tool_choice(tool_choice: Any, tool_names: list[str]) -> str:
    """Reduce every accepted ``tool_choice`` spelling to ``auto``, ``any``, ``none`` or a name.

    ``None``/``"auto"``/``False`` -> ``"auto"``; ``"any"``/``"required"``/``True`` ->
    ``"any"``; ``"none"`` -> ``"none"``; a tool name, ``{"type": "function", "function":
    {"name": ...}}`` or ``{"type": "tool", "name": ...}`` -> that name.
    """
    if tool_choice is None or tool_choice is False or tool_choice == "auto":
        return "auto"
    if tool_choice is True or tool_choice in ("any", "required"):
        choice = "any"
    elif tool_choice == "none":
        return "none"
    elif isinstance(tool_choice, str):
        choice = tool_choice
    elif isinstance(tool_choice, Mapping):
        choice = _choice_from_dict(tool_choice)
    else:
        raise TypeError(
            "tool_choice must be None, a string, a bool or a dict, "
            f"got {type(tool_choice).__name__}: {tool_choice!r}"
        )
    known = ", ".join(repr(name) for name in tool_names) or "none"
    if choice == "any":
        if not tool_names:
            raise ValueError("tool_choice requires a tool call, but no tools are bound")
        return "any"
    if choice not in tool_names:
        raise ValueError(f"tool_choice names the unknown tool {choice!r}; known tools: {known}")
    return choice


def _choice_from_dict(tool_choice: Mapping[str, Any]) -> str:
    kind = tool_choice.get("type")
    function = tool_choice.get("function")
    if kind == "function" and isinstance(function, Mapping):
        name = function.get("name")
    elif kind == "tool":
        name = tool_choice.get("name")
    elif kind in ("any", "auto", "none"):
        return str(kind)
    else:
        name = None
    if not isinstance(name, str):
        raise ValueError(
            'tool_choice dict must be {"type": "function", "function": {"name": "<tool>"}}, '
            f"got {dict(tool_choice)!r}"
        )
    return name


# --------------------------------------------------------------------------- prompts


def tool_instruction(tools: Sequence[Mapping[str, Any]], tool_choice: str | None) -> str:
    """The system instruction offering ``tools`` (empty when ``tool_choice`` is ``none``)."""
    specs = _tool_specs(tools)
    choice = normalize_tool_choice(tool_choice, list(specs))
    if choice == "none" or not specs:
        return ""
    lines = ["You can call the following tools.", ""]
    for spec in specs.values():
        schema = json.dumps(spec.parameters, separators=(",", ":"), ensure_ascii=False)
        lines.append(f"Tool: {spec.name}")
        if spec.description.strip():
            lines.append(f"Description: {spec.description.strip()}")
        lines.append(f"Arguments (JSON schema): {schema}")
        lines.append("")
    lines += [
        "To call tools, reply with ONLY a JSON object of this form and no other text:",
        _ENVELOPE_EXAMPLE,
        'Each "arguments" value is a JSON object that satisfies that tool\'s schema. '
        "Put several calls in the list to call several tools at once. Each result comes "
        "back in a later message that names the tool and the call id.",
        "",
    ]
    if choice == "auto":
        lines.append(
            "Answer EITHER in plain text, when no tool is needed, OR with only the JSON "
            "object above to call tools. Never mix the two."
        )
    elif choice == "any":
        lines.append(
            "You MUST call at least one tool in this reply: answer with only the JSON object "
            "above. Do not answer in plain text."
        )
    else:
        lines.append(
            f"You MUST call the tool {choice!r} in this reply: answer with only the JSON "
            f"object above, calling {choice!r}. Do not answer in plain text."
        )
    return "\n".join(lines)


def corrective_instruction(
    tool_choice: str, tool_names: list[str], errors: Sequence[str] = ()
) -> str:
    """The re-ask sent when a call was required and the reply made no valid one.

    ``errors`` are the reasons the reply's calls were invalid, if it made any.
    """
    choice = normalize_tool_choice(tool_choice, tool_names)
    if choice in ("auto", "none"):
        raise ValueError(f"tool_choice {tool_choice!r} does not require a tool call")
    if choice == "any":
        target = "one of the tools " + ", ".join(repr(name) for name in tool_names)
    else:
        target = f"the tool {choice!r}"
    if errors:
        problem = "Your previous reply made no valid tool call: " + "; ".join(errors) + ". "
    else:
        problem = "Your previous reply did not call a tool, but a tool call is required. "
    return (
        f"{problem}Reply again, calling {target}, with ONLY a JSON object of this form and "
        f"no other text:\n{_ENVELOPE_EXAMPLE}"
    )


def render_tool_calls(tool_calls: Sequence[Mapping[str, Any]], content: str = "") -> str:
    """An assistant turn's tool calls in the envelope the model is asked to write."""
    if not tool_calls:
        return content
    calls: list[dict[str, Any]] = []
    for call in tool_calls:
        rendered: dict[str, Any] = {"name": call["name"], "arguments": call["args"]}
        if call.get("id"):
            rendered = {"id": call["id"], **rendered}
        calls.append(rendered)
    envelope = json.dumps({"tool_calls": calls}, ensure_ascii=False, default=str)
    return f"{content.strip()}\n\n{envelope}" if content.strip() else envelope


def render_tool_result(name: str | None, tool_call_id: str, content: str, status: str) -> str:
    """A tool's result as the text of a user turn."""
    tool = f"tool {name!r}" if name else "the tool"
    if status == "error":
        return (
            f"The call {tool_call_id} to {tool} FAILED with this error:\n{content}\n"
            "Correct the call and try again, or answer without this tool."
        )
    return f"Result of the call {tool_call_id} to {tool}:\n{content}"


# --------------------------------------------------------------------------- parsing


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
    specs = _tool_specs(tools) if tools else {}
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


def _looks_like_call(obj: Any, specs: Mapping[str, _Tool]) -> bool:
    body = _call_body(obj)
    if not isinstance(body, dict):
        return False
    name = _name_of(body)
    if name is None:
        return False
    return name in specs or any(key in body for key in _ARG_KEYS)


def _envelope_calls(value: Any, specs: Mapping[str, _Tool]) -> list[Any] | None:
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


def _make_call(raw: Any, specs: Mapping[str, _Tool], source: str, call_id: str) -> ToolCall:
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


def _declares(spec: _Tool, key: str) -> bool:
    properties = spec.parameters.get("properties")
    return isinstance(properties, Mapping) and key in properties


def _arguments(raw_args: Any, spec: _Tool) -> dict[str, Any]:
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
