"""langchain-tests standard integration suite for ChatWebsim, against the local emulator."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_websim import ChatWebsim
from langchain_websim.testing import WebsimEmulator


class TestChatWebsimEmulator(ChatModelIntegrationTests):
    """The emulator answers chat with ``Echo: <last user message>`` and images with a URL."""

    base_url: str

    @pytest.fixture(autouse=True)
    def _point_at_emulator(self, shared_emulator: WebsimEmulator) -> None:
        # Autouse fixtures run before the suite's `model` fixture reads chat_model_params.
        shared_emulator.clear()
        self.base_url = shared_emulator.base_url

    @property
    def chat_model_class(self) -> type[ChatWebsim]:
        return ChatWebsim

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "gemini-1.5-pro", "base_url": self.base_url, "max_retries": 0}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return False

    @property
    def model_override_value(self) -> str:
        return "gemini-1.5-flash"
