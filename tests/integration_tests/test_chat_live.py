"""ChatWebsim against the real Websim service; run with ``WEBSIM_LIVE=1`` (skipped otherwise).

The answers of a live model vary, so these tests check shapes, not words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_socket
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_websim import ChatWebsim
from tests.capabilities import ChatWebsimCapabilities

pytestmark = pytest.mark.live


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    # Replaces the integration conftest's loopback-only guard: these tests need the internet.
    pytest_socket.enable_socket()
    yield


class TestChatWebsimLive(ChatWebsimCapabilities, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "gemini-1.5-pro", "max_retries": 3}


def test_live_conversation_with_system_prompt() -> None:
    llm = ChatWebsim(max_retries=3)
    answer = llm.invoke(
        [SystemMessage("Answer with a single number."), HumanMessage("What is 2 + 2?")]
    )
    assert isinstance(answer.content, str) and answer.content.strip()
    assert re.match(r"^[a-z0-9]{3}_[a-z0-9]{15}$", answer.response_metadata["project_id"])
    assert answer.usage_metadata is None


async def test_live_flux_image() -> None:
    llm = ChatWebsim(model="flux", max_retries=3)
    answer = await llm.ainvoke("a small red lighthouse, flat illustration", aspect_ratio="16:9")
    url = answer.response_metadata["image_url"]
    assert url.startswith(("http://", "https://"))
    assert [b["type"] for b in answer.content_blocks] == ["text", "image"]
