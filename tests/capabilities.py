"""The capability flags ChatWebsim declares to the langchain-tests standard suites.

Shared by the unit, emulator and live suites so the three cannot drift apart.
"""

from __future__ import annotations

from langchain_websim import ChatWebsim


class ChatWebsimCapabilities:
    """Tool calling and structured output work through the prompt (see _tool_calling.py);
    the supports_* input flags keep their False defaults: Websim chat takes text only."""

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
    def returns_usage_metadata(self) -> bool:
        # Websim reports no token counts, and we never invent them.
        return False

    @property
    def model_override_value(self) -> str:
        return "gemini-1.5-flash"
