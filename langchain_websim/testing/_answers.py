"""The emulator's default chat answers: an echo, and a JSON object in JSON mode.

Without ``"json": true`` the answer echoes the last user message and says how many images
came with it (``Echo: what is this? [1 image]``), so a test can see its images arrive.  With
``"json": true`` the answer is a JSON object shaped by what ``ChatWebsim`` asked for in its
system instruction, the way a cooperative model in JSON mode would answer:

* a required tool call (``You MUST call the tool 'x'`` / ``at least one tool``) -> the tool-call
  envelope calling that tool with placeholder arguments that satisfy its schema;
* a reply format (``JSON schema: {...}``) -> a placeholder object satisfying that schema;
* anything else -> ``{"echo": <last user text>}`` (plus ``"images": n`` when there were some).

Placeholders follow the schema's shape only (required properties, types, enums, bounds): they
show that structured output is wired correctly, not what a model would say.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_websim.testing._contract import user_images, user_text

__all__ = ["echo_answer", "json_answer", "offered_tools", "placeholder"]

_TOOL_LINE = re.compile(r"^Tool: (\S+)[ \t]*$", re.M)
_SCHEMA_LINE = re.compile(r"^Arguments \(JSON schema\): (.+)$", re.M)
_FORMAT_LINE = re.compile(r"^JSON schema: (.+)$", re.M)
_ANY_TOOL = "You MUST call at least one tool"
_FORMATS = {
    "date-time": "2000-01-01T00:00:00Z",
    "date": "2000-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def echo_answer(messages: Any) -> str:
    """``Echo: <last user text>``, with ``[n image(s)]`` when images came with it."""
    text, images = user_text(messages), user_images(messages)
    if not images:
        return f"Echo: {text}"
    return f"Echo: {text}{' ' if text else ''}[{images} image{'s' if images != 1 else ''}]"


def json_answer(messages: Any) -> str:
    """The JSON text a model in JSON mode would answer with (see the module docstring)."""
    system = _system_text(messages)
    tools = offered_tools(messages)
    forced = [name for name in tools if f"You MUST call the tool {name!r}" in system]
    if forced or (tools and _ANY_TOOL in system):
        name = forced[0] if forced else next(iter(tools))
        call = {"name": name, "arguments": placeholder(tools[name])}
        return json.dumps({"tool_calls": [call]}, ensure_ascii=False)
    requested = _FORMAT_LINE.search(system)
    if requested:
        return json.dumps(placeholder(_loads_object(requested.group(1))), ensure_ascii=False)
    answer: dict[str, Any] = {"echo": user_text(messages)}
    if user_images(messages):
        answer["images"] = user_images(messages)
    return json.dumps(answer, ensure_ascii=False)


def offered_tools(messages: Any) -> dict[str, dict[str, Any]]:
    """Tool name -> JSON schema, read from ChatWebsim's tool instruction."""
    tools: dict[str, dict[str, Any]] = {}
    system = _system_text(messages)
    names = _TOOL_LINE.findall(system)
    schemas = _SCHEMA_LINE.findall(system)
    for name, raw in zip(names, schemas, strict=False):
        tools[name] = _loads_object(raw)
    return tools


def placeholder(schema: Any, root: Any = None, name: str = "") -> Any:
    """A value satisfying ``schema`` as far as its shape goes: no knowledge, only structure."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("$ref"), str):
        return placeholder(_resolve(schema["$ref"], root), root, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return placeholder(schema[key][0], root, name)
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            key: placeholder(properties.get(key, {}), root, key)
            for key in schema.get("required", [])
        }
    if kind == "array":
        return [placeholder(schema.get("items", {}), root, name)] * int(schema.get("minItems", 0))
    if kind in ("integer", "number"):
        return _number(schema)
    if kind == "string":
        text = _FORMATS.get(schema.get("format", ""), f"example {name}".strip())
        return text.ljust(int(schema.get("minLength", 0)), "x")[: schema.get("maxLength")]
    return {"boolean": False, "null": None}.get(kind)


def _number(schema: dict[str, Any]) -> Any:
    value: Any = 0
    if "minimum" in schema:
        value = max(value, schema["minimum"])
    if "exclusiveMinimum" in schema:
        value = max(value, schema["exclusiveMinimum"] + 1)
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    if "exclusiveMaximum" in schema:
        value = min(value, schema["exclusiveMaximum"] - 1)
    return value


def _resolve(ref: str, root: Any) -> Any:
    target = root
    for part in ref.lstrip("#/").split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target


def _system_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    texts = [
        m["content"]
        for m in messages
        if isinstance(m, dict) and m.get("role") == "system" and isinstance(m.get("content"), str)
    ]
    return "\n".join(texts)


def _loads_object(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
