"""Tool calling and JSON replies wired into a chat request.

``ChatWebsim.bind_tools`` stores OpenAI tool dicts and a normalized ``tool_choice`` in the
binding; at call time this module turns them (and an optional ``response_format``) into a
system instruction, sends the conversation, parses the reply into tool calls, and re-asks
once (``tool_call_retries``) when a call was required and the reply made none.  The prompt
protocol and the parser themselves live in ``_tool_calling``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_websim._client import WebsimClient
from langchain_websim._messages import apply_stop
from langchain_websim._tool_calling import (
    ParsedReply,
    _tool_specs,
    corrective_instruction,
    normalize_tool_choice,
    parse_reply,
    tool_instruction,
)

__all__ = [
    "TOOL_KWARGS",
    "ToolReply",
    "achat_with_tools",
    "bind_tools_kwargs",
    "convert_tools",
]

# Call arguments that switch a chat call onto this path.
TOOL_KWARGS = frozenset({"tools", "tool_choice", "response_format"})


def convert_tools(tools: Any) -> list[dict[str, Any]]:
    """Every tool as an OpenAI tool dict; a clear error for what cannot be converted."""
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise TypeError(
            "tools must be a list of tools (BaseTool, function, pydantic model, TypedDict, "
            f"JSON schema or OpenAI tool dict), got {type(tools).__name__}"
        )
    converted: list[dict[str, Any]] = []
    for position, tool in enumerate(tools):
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping):
            converted.append(dict(tool))
            continue
        if isinstance(tool, Mapping) and tool.get("type") == "function" and "name" in tool:
            # The Responses API's flat shape: {"type": "function", "name": ..., ...}.
            function = {k: v for k, v in tool.items() if k != "type"}
            converted.append({"type": "function", "function": function})
            continue
        try:
            formatted = convert_to_openai_tool(tool)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"tool {position} cannot be offered to the model: {exc}") from exc
        if not isinstance(formatted.get("function"), Mapping):
            raise ValueError(
                f"tool {position} is a provider built-in tool ({formatted.get('type')!r}); "
                "Websim runs no built-in tools, only function tools"
            )
        converted.append(formatted)
    return _deduplicated(converted)


def _deduplicated(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats of a tool (e.g. a pydantic model and its JSON schema) and check names.

    Two definitions of one name that differ in more than ``title`` annotations are an
    error: a reply naming the tool could not be checked against a single schema.
    """
    kept: dict[str, dict[str, Any]] = {}
    for tool in tools:
        name = tool["function"].get("name")
        first = kept.get(name) if isinstance(name, str) else None
        if first is None:
            kept[str(name)] = tool
        elif _without_titles(first["function"]) != _without_titles(tool["function"]):
            raise ValueError(f"two different tools are named {name!r}; tool names must be unique")
    unique = list(kept.values())
    _tool_specs(unique)  # well-formed names
    return unique


def _without_titles(schema: Any, *, in_properties: bool = False) -> Any:
    if isinstance(schema, Mapping):
        return {
            key: _without_titles(value, in_properties=key == "properties" and not in_properties)
            for key, value in schema.items()
            if in_properties or key != "title"
        }
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    return schema


def bind_tools_kwargs(tools: Any, tool_choice: Any) -> dict[str, Any]:
    """The ``bind`` arguments for ``bind_tools``: converted tools and the checked choice."""
    formatted = convert_tools(tools)
    names = [tool["function"]["name"] for tool in formatted]
    kwargs: dict[str, Any] = {"tools": formatted}
    if tool_choice is not None:
        kwargs["tool_choice"] = normalize_tool_choice(tool_choice, names)
    return kwargs


@dataclass(frozen=True, slots=True)
class _Request:
    tools: list[dict[str, Any]]
    choice: str
    instruction: str

    @property
    def forced(self) -> bool:
        return self.choice not in ("auto", "none")

    @property
    def names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]


def _prepare(kwargs: Mapping[str, Any]) -> _Request:
    tools = convert_tools(kwargs.get("tools") or [])
    names = [tool["function"]["name"] for tool in tools]
    choice = normalize_tool_choice(kwargs.get("tool_choice"), names)
    parts = [tool_instruction(tools, choice)]
    response_format = kwargs.get("response_format")
    if response_format is not None:
        parts.append(format_instruction(response_format, with_tools=bool(parts[0])))
    instruction = "\n\n".join(part for part in parts if part)
    # With tool_choice "none" nothing is offered, so nothing in the reply is a call.
    return _Request(tools if choice != "none" else [], choice, instruction)


def format_instruction(response_format: Any, *, with_tools: bool = False) -> str:
    """The instruction for an OpenAI-style ``response_format`` (JSON object or schema)."""
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    when = "When you answer without calling a tool, reply" if with_tools else "Reply"
    if kind == "json_object":
        return (
            f"{when} with ONLY a JSON object: no prose before or after it and no Markdown "
            "code fence."
        )
    spec = response_format.get("json_schema") if kind == "json_schema" else None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
        raise ValueError(
            'response_format must be {"type": "json_object"} or {"type": "json_schema", '
            f'"json_schema": {{"name": ..., "schema": {{...}}}}}}, got {response_format!r}'
        )
    schema = json.dumps(spec["schema"], separators=(",", ":"), ensure_ascii=False)
    lines = [
        f"{when} with ONLY a JSON object that satisfies the JSON schema below: no prose "
        "before or after it and no Markdown code fence. Fill in real values, not the schema.",
    ]
    if spec.get("name"):
        lines.append(f"Object: {spec['name']}")
    if spec.get("description"):
        lines.append(f"Description: {spec['description']}")
    lines.append(f"JSON schema: {schema}")
    return "\n".join(lines)


def with_instruction(wire: list[dict[str, str]], instruction: str) -> list[dict[str, str]]:
    """``wire`` with ``instruction`` merged after the leading system messages."""
    if not instruction:
        return wire
    leading = 0
    while leading < len(wire) and wire[leading]["role"] == "system":
        leading += 1
    if leading == 0:
        return [{"role": "system", "content": instruction}, *wire]
    last = wire[leading - 1]
    merged = f"{last['content'].rstrip()}\n\n{instruction}" if last["content"].strip() else ""
    return [
        *wire[: leading - 1],
        {"role": "system", "content": merged or instruction},
        *wire[leading:],
    ]


@dataclass(frozen=True, slots=True)
class ToolReply:
    """A reply split into text and calls, and what it took to get it."""

    parsed: ParsedReply
    project_id: str
    attempts: int
    reasks: int


async def achat_with_tools(
    client: WebsimClient,
    wire: list[dict[str, str]],
    kwargs: Mapping[str, Any],
    project_id: str | None,
    stop: list[str] | None,
    json_mode: bool,
    retries: int,
) -> ToolReply:
    """Send ``wire`` with the tool/format instruction; parse, and re-ask when a call is due."""
    request = _prepare(kwargs)
    wire = with_instruction(wire, request.instruction)
    answer = await client.achat(wire, project_id=project_id, json_mode=json_mode)
    text = apply_stop(answer.text, stop)
    parsed = parse_reply(text, request.tools)
    attempts, reasks = answer.attempts, 0
    while request.forced and not parsed.tool_calls and reasks < retries:
        reasks += 1
        errors = [str(bad.get("error")) for bad in parsed.invalid_tool_calls]
        wire = [
            *wire,
            {"role": "assistant", "content": answer.text},
            {
                "role": "user",
                "content": corrective_instruction(request.choice, request.names, errors),
            },
        ]
        # The same project: the re-ask continues the conversation that went wrong.
        answer = await client.achat(wire, project_id=answer.project_id, json_mode=json_mode)
        attempts += answer.attempts
        text = apply_stop(answer.text, stop)
        parsed = parse_reply(text, request.tools)
    return ToolReply(parsed, answer.project_id, attempts, reasks)
