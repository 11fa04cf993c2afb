"""LangChain messages to Websim wire messages, and Websim answers back to message content.

Websim takes ``{"role", "content"}`` pairs with roles ``system``, ``user`` and ``assistant``
and plain-text content.  Anything the service cannot take (tool calls and tool results,
other roles, images, audio, files) is refused here with the message index and what was
found, rather than dropped: a silently shortened conversation gives confidently wrong
answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.messages.content import create_image_block, create_text_block

from langchain_websim._wire import CHAT_ROLES

__all__ = [
    "apply_stop",
    "convert_message",
    "convert_messages",
    "image_content",
    "validate_stop",
]


def convert_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Map a conversation to wire messages; the caller's messages are never mutated."""
    if not messages:
        raise ValueError("messages is empty; Websim needs at least one message")
    return [convert_message(message, i) for i, message in enumerate(messages)]


def convert_message(message: BaseMessage, index: int) -> dict[str, str]:
    """Map one message; ``index`` is its position, used to name it in errors."""
    if isinstance(message, HumanMessage):
        role = "user"
    elif isinstance(message, AIMessage):
        if message.tool_calls or message.invalid_tool_calls:
            raise ValueError(
                f"message {index} ({type(message).__name__}) carries tool calls; "
                "ChatWebsim does not support tool calling"
            )
        role = "assistant"
    elif isinstance(message, SystemMessage):
        role = "system"
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
            "Websim accepts system, human and AI messages, and ChatMessage with role "
            f"{', '.join(CHAT_ROLES)}"
        )
    return {"role": role, "content": _text_of(message, index)}


def _text_of(message: BaseMessage, index: int) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for position, block in enumerate(content):
        if isinstance(block, str):
            parts.append(block)
            continue
        block_type = block.get("type") if isinstance(block, dict) else type(block).__name__
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
