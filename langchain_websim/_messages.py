"""LangChain messages to Websim wire messages, and the prompt of an image call.

Websim takes ``{"role", "content"}`` pairs with roles ``system``, ``user`` and ``assistant``;
content is a string, or OpenAI-style parts (``text`` and ``image_url``) when a user turn
carries images.  Tool calls and tool results have no wire form, so they are rendered as text
through the prompt protocol (``_prompt``): an AI message's calls become the JSON envelope the
model is asked to write, a ``ToolMessage`` a user turn naming the tool and call id (followed
by the images the tool returned).  This happens whether or not tools are bound, because
agents replay their whole history.

Past assistant turns are history another model (or a ``flux`` call) may have written: they
are carried as text as well as Websim can take them (``_history``).  In what the caller
writes (system, human and tool messages) anything else the service cannot take (other
roles, audio, video, files, images outside user turns, malformed or oversized images) is
refused with the message index, the block position and what was found, rather than
dropped: a silently shortened question gives confidently wrong answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_websim._content import IMAGE_MIME_TYPES, base64_length_problem, image_url_problem
from langchain_websim._history import assistant_text
from langchain_websim._prompt import render_tool_calls, render_tool_result
from langchain_websim._requests import validate_prompt
from langchain_websim._wire import CHAT_ROLES

__all__ = [
    "convert_message",
    "convert_messages",
    "image_prompt",
    "validate_stop",
]

Content = str | list[dict[str, Any]]


def convert_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Map a conversation to wire messages; the caller's messages are never mutated."""
    if not messages:
        raise ValueError("messages is empty; Websim needs at least one message")
    return [convert_message(message, i, messages) for i, message in enumerate(messages)]


def convert_message(
    message: BaseMessage, index: int, history: Sequence[BaseMessage] = ()
) -> dict[str, Any]:
    """Map one message; ``index`` is its position, used to name it in errors.

    ``history`` is the whole conversation: a ``ToolMessage`` without a ``name`` takes the
    tool's name from the call it answers.
    """
    if isinstance(message, HumanMessage):
        role = "user"
    elif isinstance(message, AIMessage):
        return {"role": "assistant", "content": _render_ai_turn(message)}
    elif isinstance(message, SystemMessage):
        role = "system"
    elif isinstance(message, ToolMessage):
        return {"role": "user", "content": _render_tool_message(message, index, history)}
    elif isinstance(message, ChatMessage):
        if message.role not in CHAT_ROLES:
            raise ValueError(
                f"message {index} (ChatMessage) has role {message.role!r}; "
                f"Websim accepts the roles {', '.join(CHAT_ROLES)}"
            )
        if message.role == "assistant":
            return {"role": "assistant", "content": assistant_text(message)}
        role = message.role
    else:
        raise ValueError(
            f"message {index} is a {type(message).__name__} (type {message.type!r}); "
            "Websim accepts system, human, AI and tool messages, and ChatMessage with role "
            f"{', '.join(CHAT_ROLES)}"
        )
    return {"role": role, "content": _content_of(message, index, role)}


def _render_ai_turn(message: AIMessage) -> str:
    """A past assistant turn: its visible text (``_history``), then its calls in the
    envelope of the prompt protocol."""
    calls: list[Mapping[str, Any]] = list(message.tool_calls)
    # An invalid call is replayed as the model wrote it: its raw arguments text.
    calls += [
        {"name": bad.get("name") or "", "args": bad.get("args") or "", "id": bad.get("id")}
        for bad in message.invalid_tool_calls
    ]
    return render_tool_calls(calls, assistant_text(message))


def _render_tool_message(
    message: ToolMessage, index: int, history: Sequence[BaseMessage]
) -> Content:
    name = message.name or _tool_name_for(message.tool_call_id, history[:index])
    parts = _parts_of(message, index, "user")
    text = "".join(part["text"] for part in parts if part["type"] == "text")
    rendered = render_tool_result(name, message.tool_call_id, text, message.status)
    images = [part for part in parts if part["type"] == "image_url"]
    # The result's text as today, then its images: an agent can look at what a tool returned.
    return [{"type": "text", "text": rendered}, *images] if images else rendered


def _tool_name_for(tool_call_id: str, earlier: Sequence[BaseMessage]) -> str | None:
    for message in reversed(earlier):
        if isinstance(message, AIMessage):
            for call in (*message.tool_calls, *message.invalid_tool_calls):
                if call.get("id") == tool_call_id:
                    return call.get("name")
    return None


def _content_of(message: BaseMessage, index: int, role: str) -> Content:
    """A string when the message holds only text (the common body is unchanged), else parts."""
    if isinstance(message.content, str):
        return message.content
    parts = _parts_of(message, index, role)
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return [part for part in parts if part["type"] != "text" or part["text"]]


def _parts_of(message: BaseMessage, index: int, role: str) -> list[dict[str, Any]]:
    """Wire parts in order; adjacent text blocks are pieces of one text, as in ``.text``."""
    content = message.content
    blocks = [content] if isinstance(content, str) else content
    parts: list[dict[str, Any]] = []
    for position, block in enumerate(blocks):
        if isinstance(block, str):
            text: str | None = block
        else:
            block_type = block.get("type") if isinstance(block, dict) else type(block).__name__
            if block_type in _IMAGE_BLOCK_TYPES and isinstance(block, dict):
                parts.append(_image_part(block, _Where(message, index, position, role)))
                continue
            text = block.get("text") if isinstance(block, dict) else None
            if block_type != "text" or not isinstance(text, str):
                what = f"type {block_type!r}" if block_type != "text" else "no string 'text'"
                raise ValueError(
                    f"message {index} ({type(message).__name__}) has a content block of {what} "
                    f"at position {position}; Websim chat takes text and images only (no "
                    "audio, video or file inputs)"
                )
        if parts and parts[-1]["type"] == "text":
            parts[-1]["text"] += text
        else:
            parts.append({"type": "text", "text": text})
    return parts


# --------------------------------------------------------------------------- images

_IMAGE_BLOCK_TYPES = frozenset({"image", "image_url"})


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a block sits, for error messages: message index, class, position and role."""

    message: BaseMessage
    index: int
    position: int
    role: str

    @property
    def name(self) -> str:
        return type(self.message).__name__

    def error(self, problem: str) -> ValueError:
        return ValueError(
            f"message {self.index} ({self.name}) has an image at position {self.position} "
            f"that Websim cannot take: {problem}"
        )


def _image_part(block: dict[str, Any], where: _Where) -> dict[str, Any]:
    """An image block in any accepted form as ``{"type": "image_url", "image_url": {"url"}}``."""
    if where.role != "user":
        raise where.error(
            f"images go in human messages and tool results, not in {where.role} messages"
        )
    try:
        url = _image_url_of(block)
    except ValueError as exc:
        raise where.error(str(exc)) from None
    problem = image_url_problem(url)
    if problem is not None:
        raise where.error(problem)
    return {"type": "image_url", "image_url": {"url": url}}


def _image_url_of(block: dict[str, Any]) -> str:
    if block["type"] == "image_url":  # OpenAI: a string or {"url": ...}
        image = block.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise ValueError("an 'image_url' block needs a string URL or {'url': <string>}")
        return url
    if isinstance(block.get("source"), Mapping):  # Anthropic
        block = _from_anthropic(block["source"])
    if "file_id" in block or block.get("source_type") == "id":
        raise ValueError(
            "a file id, which Websim cannot fetch; send the image as 'url' or 'base64'"
        )
    data = block.get("url", block.get("base64", block.get("data")))
    if data is None:
        raise ValueError("an image block needs 'url', or 'base64' with 'mime_type'")
    if not isinstance(data, str):
        raise ValueError(f"the image's URL or data must be a string, got {type(data).__name__}")
    if "url" not in block and not isinstance(block.get("mime_type"), str):
        raise ValueError(
            f"base64 image data needs a 'mime_type' (one of {', '.join(IMAGE_MIME_TYPES)})"
        )
    # Refused by length before the data URL below is built: that would copy it whole.
    too_long = None if "url" in block else base64_length_problem(len(data))
    if too_long is not None:
        raise ValueError(too_long)
    # Imported here: it pulls in LangChain's provider translators, which text chat never needs.
    from langchain_core.messages.block_translators.openai import convert_to_openai_image_block

    return str(convert_to_openai_image_block(block)["image_url"]["url"])


def _from_anthropic(source: Mapping[str, Any]) -> dict[str, Any]:
    kind = source.get("type")
    if kind == "base64":
        return {
            "type": "image",
            "base64": source.get("data"),
            "mime_type": source.get("media_type"),
        }
    if kind == "url":
        return {"type": "image", "url": source.get("url")}
    raise ValueError(f"an image 'source' of type {kind!r}; Websim takes 'base64' and 'url' sources")


def validate_stop(stop: Any) -> list[str] | None:
    """``None`` or a list of non-empty strings (a bare string is one stop sequence)."""
    if stop is None:
        return None
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)):
        raise TypeError(f"stop must be a list of strings, got {type(stop).__name__}")
    for item in stop:
        if not isinstance(item, str) or not item:
            raise ValueError(f"every stop sequence must be a non-empty string, got {item!r}")
    return list(stop)


def image_prompt(wire: Sequence[Mapping[str, Any]], prompt: str | None = None) -> str:
    """An explicit prompt wins; else the trailing run of user messages, stripped, joined.

    Only text describes the image: image parts in those messages carry no prompt words.
    """
    if prompt is not None:
        return validate_prompt(prompt)
    tail: list[str] = []
    for msg in reversed(wire):
        if msg.get("role") != "user":
            break
        tail.append(_wire_text(msg.get("content")).strip())
    text = "\n".join(reversed(tail)).strip()
    if not text:
        raise ValueError(
            "no image prompt: pass prompt=... or end the conversation with user messages "
            "that describe the image"
        )
    return text


def _wire_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [part.get("text") for part in content if part.get("type") == "text"]
    return "\n".join(t.strip() for t in texts if isinstance(t, str) and t.strip())
