"""What the model is told: tools, ``tool_choice``, reply formats and replayed history.

Websim has no native tool calling, so the tools are described to the model in a system
instruction and the model answers either in plain text or with a JSON envelope::

    {"tool_calls": [{"name": "<tool>", "arguments": {...}}]}

History is rendered in the same envelope, so the model sees its earlier calls the way it
was asked to write them; a tool's result becomes a user turn naming the tool and call id.
``with_structured_output`` and ``response_format`` add a format instruction (JSON object
or JSON schema).  What comes back is read by ``_parsers``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TOOL_KWARGS",
    "TOOL_OPTIONS",
    "ToolRequest",
    "bind_tools_kwargs",
    "convert_tools",
    "corrective_instruction",
    "format_instruction",
    "normalize_tool_choice",
    "prepare_tools",
    "render_tool_calls",
    "render_tool_result",
    "strict_parameters",
    "tool_instruction",
    "tool_options",
    "tool_specs",
    "with_instruction",
]

# Call arguments that switch a chat call onto the tool path.
TOOL_KWARGS = frozenset({"tools", "tool_choice", "response_format"})
# Call arguments that shape how tools are called (``bind_tools`` records them).
TOOL_OPTIONS = ("strict", "parallel_tool_calls")
_ENVELOPE_EXAMPLE = (
    '{"tool_calls": [{"name": "<tool name>", "arguments": {"<argument>": <value>}}]}'
)


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]


def tool_specs(tools: Sequence[Mapping[str, Any]]) -> dict[str, Tool]:
    """Index OpenAI tool dicts (``convert_to_openai_tool`` output) by name."""
    specs: dict[str, Tool] = {}
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
        specs[name] = Tool(
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


# --------------------------------------------------------------------------- instructions


def tool_instruction(
    tools: Sequence[Mapping[str, Any]],
    tool_choice: str | None,
    *,
    single: bool = False,
    strict: bool = False,
) -> str:
    """The system instruction offering ``tools`` (empty when ``tool_choice`` is ``none``).

    ``single``: at most one call per reply (``parallel_tool_calls=False``); ``strict``: the
    arguments must match the schemas exactly (``strict=True``).
    """
    specs = tool_specs(tools)
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
    if single:
        several = (
            "Call at most ONE tool per reply: put exactly one call in the list and make the "
            "next call after its result has come back."
        )
    else:
        several = "Put several calls in the list to call several tools at once."
    exactly = (
        " Use exactly the properties the schema defines, with exactly its types: no other "
        "properties."
        if strict
        else ""
    )
    lines += [
        "To call tools, reply with ONLY a JSON object of this form and no other text:",
        _ENVELOPE_EXAMPLE,
        'Each "arguments" value is a JSON object that satisfies that tool\'s schema.'
        f"{exactly} {several} Each result comes back in a later message that names the tool "
        "and the call id.",
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


def convert_tools(tools: Any) -> list[dict[str, Any]]:
    """Every tool as an OpenAI tool dict; a clear error for what cannot be converted."""
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise TypeError(
            "tools must be a list of tools (BaseTool, function, pydantic model, TypedDict, "
            f"JSON schema or OpenAI tool dict), got {type(tools).__name__}"
        )
    # Imported here: it pulls in langchain_core.tools, which plain chat never needs.
    from langchain_core.utils.function_calling import convert_to_openai_tool

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
    tool_specs(unique)  # well-formed names
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


def bind_tools_kwargs(
    tools: Any,
    tool_choice: Any,
    strict: bool | None = None,
    parallel_tool_calls: bool | None = None,
) -> dict[str, Any]:
    """The ``bind`` arguments for ``bind_tools``: converted tools, the checked choice and
    the two tool options (recorded only when given)."""
    formatted = convert_tools(tools)
    names = [tool["function"]["name"] for tool in formatted]
    kwargs: dict[str, Any] = {"tools": formatted}
    if tool_choice is not None:
        kwargs["tool_choice"] = normalize_tool_choice(tool_choice, names)
    kwargs.update(tool_options({"strict": strict, "parallel_tool_calls": parallel_tool_calls}))
    return kwargs


def tool_options(kwargs: Mapping[str, Any]) -> dict[str, bool]:
    """``strict`` and ``parallel_tool_calls`` among ``kwargs``, checked (``None``: unset)."""
    options: dict[str, bool] = {}
    for name in TOOL_OPTIONS:
        value = kwargs.get(name)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True, False or None, got {value!r}")
        options[name] = value
    return options


def strict_parameters(schema: Any) -> Any:
    """``schema`` with every object closed (``additionalProperties: false`` where it says
    nothing), as OpenAI's strict mode reads a tool's schema: extra arguments are then an
    invalid call.  The caller's schema is never mutated."""
    if isinstance(schema, list):
        return [strict_parameters(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    closed = {
        key: (
            {name: strict_parameters(sub) for name, sub in value.items()}
            if key in _SCHEMA_MAPS and isinstance(value, Mapping)
            else strict_parameters(value)
        )
        for key, value in schema.items()
    }
    if (closed.get("type") == "object" or "properties" in closed) and (
        "additionalProperties" not in closed
    ):
        closed["additionalProperties"] = False
    return closed


# Keywords whose value maps names to subschemas (the names are not schema keywords).
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


@dataclass(frozen=True, slots=True)
class ToolRequest:
    tools: list[dict[str, Any]]
    choice: str
    instruction: str
    formatted: bool = False
    """Whether a ``response_format`` asks for a JSON answer."""
    single: bool = False
    """At most one call per reply (``parallel_tool_calls=False``)."""

    @property
    def forced(self) -> bool:
        return self.choice not in ("auto", "none")

    @property
    def json_reply(self) -> bool:
        """The reply must be a JSON document (a required call or a reply format): this is
        when ``ChatWebsim`` sends Websim's ``"json": true`` unless told otherwise."""
        return self.forced or self.formatted

    @property
    def names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]


def prepare_tools(kwargs: Mapping[str, Any]) -> ToolRequest:
    tools = convert_tools(kwargs.get("tools") or [])
    options = tool_options(kwargs)
    strict = options.get("strict", False)
    if strict:  # the replies are then held to the closed schemas
        tools = [_strict_tool(tool) for tool in tools]
    single = options.get("parallel_tool_calls") is False
    names = [tool["function"]["name"] for tool in tools]
    choice = normalize_tool_choice(kwargs.get("tool_choice"), names)
    parts = [tool_instruction(tools, choice, single=single, strict=strict)]
    response_format = kwargs.get("response_format")
    if response_format is not None:
        parts.append(format_instruction(response_format, with_tools=bool(parts[0])))
    instruction = "\n\n".join(part for part in parts if part)
    # With tool_choice "none" nothing is offered, so nothing in the reply is a call.
    return ToolRequest(
        tools if choice != "none" else [],
        choice,
        instruction,
        formatted=response_format is not None,
        single=single,
    )


def _strict_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(tool["function"])
    function["parameters"] = strict_parameters(function.get("parameters") or {"type": "object"})
    function["strict"] = True
    return {**tool, "function": function}


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
