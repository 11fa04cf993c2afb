"""One ChatWebsim call: check its arguments, route it (image or chat, with or without
tools), and build the answer LangChain expects.

The plain chat route is the hot path (a benchmark measures ``ainvoke``): tool calling and
JSON replies are imported and prepared only when a call carries ``tools``, ``tool_choice``
or ``response_format``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from langchain_websim import _wire
from langchain_websim._client import WebsimClient
from langchain_websim._messages import apply_stop, convert_messages, image_content, validate_stop

if TYPE_CHECKING:
    from langchain_websim._tool_calling import ParsedReply
    from langchain_websim.chat_models import ChatWebsim

__all__ = ["Answer", "chat_result", "last_chunk", "response_metadata", "run_call"]

Content = str | list[str | dict[Any, Any]]
Answer = tuple[Content, dict[str, Any], "ParsedReply | None"]
"""The answer content, its response metadata, and the reply's calls when tools were bound."""

IMAGE_MODELS = _wire.IMAGE_MODELS
# Per-call keyword arguments ChatWebsim understands; anything else is a caller mistake.
# (Keep in step with _tool_binding.TOOL_KWARGS, not imported here to keep imports light.)
_TOOL_KWARGS = frozenset({"tools", "tool_choice", "response_format"})
_CALL_KWARGS = frozenset({"model", "prompt", "aspect_ratio", "project_id", "stream", *_TOOL_KWARGS})


async def run_call(
    llm: ChatWebsim,
    client: WebsimClient,
    messages: list[BaseMessage],
    stop: list[str] | None,
    kwargs: dict[str, Any],
) -> Answer:
    """Make the request ``llm`` is asked for; the caller turns the answer into a message."""
    if kwargs and not _CALL_KWARGS.issuperset(kwargs):
        unknown = ", ".join(sorted(set(kwargs) - _CALL_KWARGS))
        raise TypeError(
            f"ChatWebsim got unexpected call arguments: {unknown} (it takes "
            "model, project_id, stop, tools, tool_choice, response_format, and prompt / "
            "aspect_ratio for image models)"
        )
    model = kwargs.get("model", llm.model)
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a non-empty model name, got {model!r}")
    wire_messages = convert_messages(messages)
    project_id = kwargs.get("project_id", llm.project_id)
    if model.lower() in IMAGE_MODELS:
        prompt = _wire.image_prompt_from_messages(wire_messages, kwargs.get("prompt"))
        image = await client.agenerate_image(
            prompt,
            aspect_ratio=kwargs.get("aspect_ratio", llm.aspect_ratio),
            project_id=project_id,
        )
        return (
            image_content(image.url),
            {
                **response_metadata(model, image.project_id, image.attempts),
                "image_url": image.url,
                "aspect_ratio": image.aspect_ratio,
            },
            None,
        )
    if "prompt" in kwargs or "aspect_ratio" in kwargs:
        raise ValueError(
            f"prompt= and aspect_ratio= apply to image models ({', '.join(IMAGE_MODELS)}) "
            f"only, not to the chat model {model!r}"
        )
    stop = llm.stop if stop is None else validate_stop(stop)
    if kwargs and not _TOOL_KWARGS.isdisjoint(kwargs):
        from langchain_websim._tool_binding import achat_with_tools

        reply = await achat_with_tools(
            client,
            wire_messages,
            kwargs,
            project_id,
            stop,
            llm.json_mode,
            llm.tool_call_retries,
        )
        metadata = response_metadata(model, reply.project_id, reply.attempts)
        metadata["tool_call_reasks"] = reply.reasks
        return reply.parsed.content, metadata, reply.parsed
    answer = await client.achat(wire_messages, project_id=project_id, json_mode=llm.json_mode)
    text = apply_stop(answer.text, stop)
    return text, response_metadata(model, answer.project_id, answer.attempts), None


def response_metadata(model: str, project_id: str, attempts: int) -> dict[str, Any]:
    """The metadata every answer carries (Websim reports no token counts or stop reasons
    beyond the answer ending)."""
    return {
        "model_name": model,
        "model_provider": "websim",
        "project_id": project_id,
        "finish_reason": "stop",
        "attempts": attempts,
    }


def chat_result(
    content: Content, metadata: dict[str, Any], calls: ParsedReply | None
) -> ChatResult:
    if calls is None:
        message = AIMessage(content=content, response_metadata=metadata)
    else:
        message = AIMessage(
            content=content,
            response_metadata=metadata,
            tool_calls=calls.tool_calls,
            invalid_tool_calls=calls.invalid_tool_calls,
        )
    return ChatResult(generations=[ChatGeneration(message=message)])


def last_chunk(
    content: Content, metadata: dict[str, Any], calls: ParsedReply | None
) -> ChatGenerationChunk:
    # Websim answers in one piece, so the only chunk is also the last one.  Given the
    # parsed calls, the chunk derives its tool_call_chunks from them and keeps each
    # invalid call's error.
    if calls is None:
        message = AIMessageChunk(content=content, response_metadata=metadata, chunk_position="last")
    else:
        message = AIMessageChunk(
            content=content,
            response_metadata=metadata,
            tool_calls=calls.tool_calls,
            invalid_tool_calls=calls.invalid_tool_calls,
            chunk_position="last",
        )
    return ChatGenerationChunk(message=message)
