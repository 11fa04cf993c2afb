"""The capability flags ChatWebsim declares to the langchain-tests standard suites.

Shared by the unit, emulator and live suites so the three cannot drift apart.
"""

from __future__ import annotations

from langchain_websim import ChatWebsim


class ChatWebsimCapabilities:
    """Tool calling and structured output work through the prompt (see _prompt.py); images
    go in as ``image_url`` parts (base64 data URLs or http(s) URLs), in human messages and
    tool results.  Audio, video and PDF inputs keep their False defaults: Websim takes none."""

    @property
    def chat_model_class(self) -> type[ChatWebsim]:
        return ChatWebsim

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        # Websim reports no token counts, and we never invent them.
        return False

    @property
    def model_override_value(self) -> str:
        return "gemini-1.5-flash"
