"""LangChain messages to Websim wire messages, and Websim answers back to message content.

Websim takes ``{"role", "content"}`` pairs with roles ``system``, ``user`` and ``assistant``
and plain-text content.  Tool calls and tool results have no wire form, so they are
rendered as text through the prompt protocol (``_prompt``): an AI message's calls
become the JSON envelope the model is asked to write, a ``ToolMessage`` a user turn naming
the tool and call id.  This happens whether or not tools are bound, because agents replay
their whole history.  Anything else the service cannot take (other roles, images, audio,
files) is refused with the message index and what was found, rather than dropped: a
silently shortened conversation gives confidently wrong answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.content import create_image_block, create_text_block
from langchain_core.outputs import ChatGenerationChunk

from langchain_websim._prompt import render_tool_calls, render_tool_result
from langchain_websim._requests import validate_prompt
from langchain_websim._wire import CHAT_ROLES

__all__ = [
    "answer_metadata",
    "apply_stop",
    "convert_message",
    "convert_messages",
    "image_content",
    "image_prompt",
    "only_chunk",
    "validate_stop",
]


def convert_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Map a conversation to wire messages; the caller's messages are never mutated."""
    if not messages:
        raise ValueError("messages is empty; Websim needs at least one message")
    return [convert_message(message, i, messages) for i, message in enumerate(messages)]


def convert_message(
    message: BaseMessage, index: int, history: Sequence[BaseMessage] = ()
) -> dict[str, str]:
    """Map one message; ``index`` is its position, used to name it in errors.

    ``history`` is the whole conversation: a ``ToolMessage`` without a ``name`` takes the
    tool's name from the call it answers.
    """
    if isinstance(message, HumanMessage):
        role = "user"
    elif isinstance(message, AIMessage):
        if message.tool_calls or message.invalid_tool_calls:
            return {"role": "assistant", "content": _render_ai_calls(message, index)}
        role = "assistant"
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
        role = message.role
    else:
        raise ValueError(
            f"message {index} is a {type(message).__name__} (type {message.type!r}); "
            "Websim accepts system, human, AI and tool messages, and ChatMessage with role "
            f"{', '.join(CHAT_ROLES)}"
        )
    return {"role": role, "content": _text_of(message, index)}


# Content blocks that restate an AI message's tool calls (Anthropic ``tool_use``, LangChain
# v1 ``tool_call``...): the calls themselves are rendered from ``tool_calls``.
_CALL_BLOCK_TYPES = frozenset(
    {"tool_use", "tool_call", "tool_call_chunk", "invalid_tool_call", "function_call"}
)


def _render_ai_calls(message: AIMessage, index: int) -> str:
    calls: list[Mapping[str, Any]] = list(message.tool_calls)
    # An invalid call is replayed as the model wrote it: its raw arguments text.
    calls += [
        {"name": bad.get("name") or "", "args": bad.get("args") or "", "id": bad.get("id")}
        for bad in message.invalid_tool_calls
    ]
    text = _text_of(message, index, skip=_CALL_BLOCK_TYPES)
    return render_tool_calls(calls, text)


def _render_tool_message(message: ToolMessage, index: int, history: Sequence[BaseMessage]) -> str:
    name = message.name or _tool_name_for(message.tool_call_id, history[:index])
    return render_tool_result(name, message.tool_call_id, _text_of(message, index), message.status)


def _tool_name_for(tool_call_id: str, earlier: Sequence[BaseMessage]) -> str | None:
    for message in reversed(earlier):
        if isinstance(message, AIMessage):
            for call in (*message.tool_calls, *message.invalid_tool_calls):
                if call.get("id") == tool_call_id:
                    return call.get("name")
    return None


def _text_of(message: BaseMessage, index: int, skip: frozenset[str] = frozenset()) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for position, block in enumerate(content):
        if isinstance(block, str):
            parts.append(block)
            continue
        block_type = block.get("type") if isinstance(block, dict) else type(block).__name__
        if block_type in skip:
            continue
        text = block.get("text") if isinstance(block, dict) else None
        if block_type != "text" or not isinstance(text, str):
            what = f"type {block_type!r}" if block_type != "text" else "no string 'text'"
            raise ValueError(
                f"message {index} ({type(message).__name__}) has a content block of {what} "
                f"at position {position}; Websim chat takes text only (no image, audio or "
                "file inputs)"
            )
        parts.append(text)
    # Adjacent text blocks are pieces of one text, as in ``BaseMessage.text``.
    return "".join(parts)


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


def apply_stop(text: str, stop: Sequence[str] | None) -> str:
    """Cut ``text`` before the earliest occurrence of any stop sequence.

    Websim has no stop parameter, so this happens client-side, after the full answer.
    """
    if not stop:
        return text
    cut = len(text)
    for sequence in stop:
        found = text.find(sequence, 0, cut)
        if found != -1:
            cut = found
    return text[:cut]


def image_content(url: str) -> list[str | dict[Any, Any]]:
    """Message content for a generated image: its URL as text, then an image block.

    The text block makes ``message.text`` (and ``StrOutputParser``) yield the URL; the
    image block is the standard form multimodal consumers read.
    """
    return [dict(create_text_block(url)), dict(create_image_block(url=url))]


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


def answer_metadata(model: str, project_id: str, attempts: int, rate_wait: float) -> dict[str, Any]:
    """What every answer carries (Websim reports no token counts or stop reasons).

    ``rate_wait``: seconds the call waited for the client's adaptive rate control.
    """
    return {
        "model_name": model,
        "model_provider": "websim",
        "project_id": project_id,
        "finish_reason": "stop",
        "attempts": attempts,
        "rate_wait": rate_wait,
    }


def only_chunk(message: AIMessage) -> ChatGenerationChunk:
    # Websim answers in one piece, so the only chunk is also the last one.  Given the
    # parsed calls, the chunk derives its tool_call_chunks from them and keeps each
    # invalid call's error.
    chunk = AIMessageChunk(
        content=message.content,
        response_metadata=message.response_metadata,
        tool_calls=message.tool_calls,
        invalid_tool_calls=message.invalid_tool_calls,
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk)
