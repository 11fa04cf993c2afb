"""Websim's responses as what LangChain callers get back.

``ChatWebsim``'s answers (chat, chat with tool calls, an image) as ``AIMessage``s with the
same metadata, the single chunk its streaming yields, and the image record the tool returns
as its artifact and the ``websim`` command prints: each built here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.content import create_image_block, create_text_block
from langchain_core.outputs import ChatGenerationChunk

from langchain_websim import _wire
from langchain_websim._responses import WebsimChatResponse, WebsimImageResponse

if TYPE_CHECKING:
    # Annotation only: the parsers load with the first call that binds tools.
    from langchain_websim._parsers import ParsedReply

__all__ = [
    "answer_metadata",
    "apply_stop",
    "chat_answer",
    "image_answer",
    "image_artifact",
    "image_content",
    "only_chunk",
    "tool_call_answer",
]


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


def chat_answer(model: str, answer: WebsimChatResponse, stop: Sequence[str] | None) -> AIMessage:
    """A plain chat answer, cut at the first stop sequence."""
    metadata = answer_metadata(model, answer.project_id, answer.attempts, answer.rate_wait)
    return AIMessage(content=apply_stop(answer.text, stop), response_metadata=metadata)


def tool_call_answer(
    model: str,
    project_id: str,
    parsed: ParsedReply,
    *,
    attempts: int,
    rate_wait: float,
    reasks: int,
) -> AIMessage:
    """An answer with tools bound: its text, the calls parsed out of it, and how many
    corrective re-asks it took (``attempts`` and ``rate_wait`` count all of them)."""
    metadata = answer_metadata(model, project_id, attempts, rate_wait)
    metadata["tool_call_reasks"] = reasks
    return AIMessage(
        content=parsed.content,
        response_metadata=metadata,
        tool_calls=parsed.tool_calls,
        invalid_tool_calls=parsed.invalid_tool_calls,
    )


def image_content(url: str) -> list[str | dict[Any, Any]]:
    """Message content for a generated image: its URL as text, then an image block.

    The text block makes ``message.text`` (and ``StrOutputParser``) yield the URL; the
    image block is the standard form multimodal consumers read.
    """
    return [dict(create_text_block(url)), dict(create_image_block(url=url))]


def image_answer(model: str, image: WebsimImageResponse) -> AIMessage:
    """``ChatWebsim``'s answer for a generated image; the options sent are echoed."""
    metadata = answer_metadata(model, image.project_id, image.attempts, image.rate_wait)
    metadata.update(image_url=image.url, aspect_ratio=image.aspect_ratio, **image.options)
    return AIMessage(content=image_content(image.url), response_metadata=metadata)


def image_artifact(image: WebsimImageResponse) -> dict[str, Any]:
    """The record of a generated image: URL, prompt, aspect ratio, model, project id and
    the image options that were sent (the tool's artifact, the command's JSON)."""
    return {
        "url": image.url,
        "prompt": image.prompt,
        "aspect_ratio": image.aspect_ratio,
        "model": _wire.DEFAULT_IMAGE_MODEL,
        "project_id": image.project_id,
        **image.options,
    }


def only_chunk(message: AIMessage) -> ChatGenerationChunk:
    """The one chunk of a streamed answer.

    Websim answers in one piece, so the only chunk is also the last one.  Given the parsed
    calls, the chunk derives its ``tool_call_chunks`` from them and keeps each invalid
    call's error.
    """
    chunk = AIMessageChunk(
        content=message.content,
        response_metadata=message.response_metadata,
        tool_calls=message.tool_calls,
        invalid_tool_calls=message.invalid_tool_calls,
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk)
