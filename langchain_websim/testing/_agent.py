"""The emulator's agent mode: a stand-in for a tool-using model, for offline agent runs.

``ChatWebsim.bind_tools`` offers tools through a system instruction (one ``Tool: <name>`` line
and one ``Arguments (JSON schema): {...}`` line per tool) and sends each tool result back as a
user message starting ``Result of the call`` (or ``The call ... FAILED``).  This responder
reads that protocol the way a cooperative model would:

* tools offered and the last user message is a request → it calls the best-fitting tool
  (one with a string ``prompt`` parameter, else the first whose only required parameter is a
  string) with the request as that argument, in the prose-plus-fenced-JSON form real models
  often use;
* the last user message is a tool result → it summarises it in plain text, quoting any URL;
* no tool fits → it gives the emulator's default answer: an echo, or in JSON mode
  (``"json": true``) a JSON object shaped by the instruction (see ``_answers``).

Its answers are canned: they show that an agent loop is wired correctly, not what a model
would say.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_websim.testing._answers import echo_answer, json_answer, offered_tools
from langchain_websim.testing._contract import user_text

__all__ = ["agent_responder"]

_RESULT_PREFIX = "Result of the call "
_FAILED = re.compile(r"^The call \S+ to .*? FAILED with this error:\s*(.*)", re.S)
_URL = re.compile(r"https?://[^\s\"'<>)\]]+")


def agent_responder(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """A ``chat_responder`` for ``WebsimEmulator`` that drives agent loops offline."""
    tools = offered_tools(messages)
    last = user_text(messages)
    if last.startswith(_RESULT_PREFIX):
        return _summarise(last)
    failed = _FAILED.match(last)
    if failed:
        first_line = failed.group(1).strip().splitlines()[0] if failed.group(1).strip() else ""
        return f"The tool call failed ({first_line or 'no detail'}); I could not finish the task."
    choice = _pick_tool(tools)
    if choice is None:
        return json_answer(messages) if body.get("json") is True else echo_answer(messages)
    name, argument = choice
    call = {"tool_calls": [{"name": name, "arguments": {argument: last.strip()}}]}
    return f"I'll use {name} for that.\n```json\n{json.dumps(call, ensure_ascii=False)}\n```"


def _pick_tool(tools: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    def string_params(schema: dict[str, Any]) -> list[str]:
        props = schema.get("properties")
        if not isinstance(props, dict):
            return []
        return [k for k, v in props.items() if isinstance(v, dict) and v.get("type") == "string"]

    for name, schema in tools.items():
        if "prompt" in string_params(schema):
            return name, "prompt"
    for name, schema in tools.items():
        required = schema.get("required") or []
        if len(required) == 1 and required[0] in string_params(schema):
            return name, required[0]
    return None


def _summarise(result: str) -> str:
    urls = _URL.findall(result)
    if urls:
        return f"Done: here is the result, {urls[0]} (a canned answer from the Websim emulator)."
    body = result.split("\n", 1)[1].strip() if "\n" in result else ""
    return f"Done. The tool answered: {body or 'nothing'} (a canned answer from the emulator)."
