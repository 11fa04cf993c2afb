"""What each route of ``ChatWebsim`` can do, as LangChain model profiles.

``create_agent``, ``SummarizationMiddleware`` and other LangChain code read a chat model's
``profile`` to choose how to use it (native or tool-based structured output, whether images
may go in tool results...).  Websim serves two routes, so there are two profiles; the model
name only picks the route, because Websim picks the model it runs.

Nothing here is a number Websim does not publish: there is no ``max_input_tokens`` or
``max_output_tokens``.  A caller who knows the limit passes
``ChatWebsim(profile={"max_input_tokens": ...})``, which LangChain keeps instead of these.
"""

from __future__ import annotations

from langchain_core.language_models import ModelProfile

from langchain_websim import _wire

__all__ = ["CHAT_PROFILE", "IMAGE_PROFILE", "profile_for"]

CHAT_PROFILE = ModelProfile(
    text_inputs=True,
    image_inputs=True,  # base64 or data URLs, as OpenAI-style image_url parts
    image_url_inputs=True,  # http(s) URLs, fetched by the service
    pdf_inputs=False,
    audio_inputs=False,
    video_inputs=False,
    image_tool_message=True,  # a ToolMessage's images follow its text in a user turn
    pdf_tool_message=False,
    text_outputs=True,
    image_outputs=False,
    audio_outputs=False,
    video_outputs=False,
    reasoning_output=False,
    # Tool calling and tool_choice work through the prompt protocol (``_prompt``).
    tool_calling=True,
    tool_choice=True,
    # A stream is one chunk: its calls arrive whole, never as argument fragments.
    tool_call_streaming=False,
    # No native structured output: with_structured_output prompts and validates, so
    # create_agent uses its tool strategy.
    structured_output=False,
    temperature=False,
    attachment=False,
)
"""A chat completion (every model name that is not an image model)."""

IMAGE_PROFILE = ModelProfile(
    text_inputs=True,  # the prompt; images in the messages are not part of it
    image_inputs=False,
    image_url_inputs=False,
    pdf_inputs=False,
    audio_inputs=False,
    video_inputs=False,
    image_tool_message=False,
    pdf_tool_message=False,
    text_outputs=False,
    image_outputs=True,
    audio_outputs=False,
    video_outputs=False,
    reasoning_output=False,
    tool_calling=False,
    tool_choice=False,
    structured_output=False,
    temperature=False,
    attachment=False,
)
"""``flux``: a text prompt in, one generated image out."""


def profile_for(model: str) -> ModelProfile:
    """A fresh copy of the profile of the route ``model`` takes."""
    profile = IMAGE_PROFILE if _wire.is_image_model(model) else CHAT_PROFILE
    return ModelProfile(**profile)
