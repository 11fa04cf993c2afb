"""A header value that cannot be sent never reaches aiohttp as a bare ``ValueError``.

Construction refuses it (``tests/unit_tests/test_settings.py``); a headers dict edited in place
afterwards slips past that check, and is refused before sending with a typed error that
names the header -- which the image tool turns into a message for the agent.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage

from langchain_websim import ChatWebsim, WebsimConnectionError, WebsimImageTool
from langchain_websim.testing import WebsimEmulator


def test_the_image_tool_answers_a_bad_header_with_a_tool_message(
    emulator: WebsimEmulator,
) -> None:
    tool = WebsimImageTool(base_url=emulator.base_url, headers={"X-Trace": "ok"})
    assert tool.headers is not None
    tool.headers["X-Trace"] = "a\x1bb"  # edited in place, after the construction check
    result = tool.invoke(
        {"type": "tool_call", "id": "c1", "name": tool.name, "args": {"prompt": "a fox"}}
    )
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert "X-Trace" in result.text and "control character" in result.text
    assert emulator.requests == []  # nothing was sent


async def test_a_chat_model_raises_a_typed_error_naming_the_header(
    emulator: WebsimEmulator,
) -> None:
    model = ChatWebsim(base_url=emulator.base_url, headers={"X-Trace": "ok"}, max_retries=3)
    assert model.headers is not None
    model.headers["X-Trace"] = "\x7f"
    with pytest.raises(WebsimConnectionError) as info:
        await model.ainvoke("hi")
    assert info.value.reason == "headers"
    assert "'X-Trace'" in str(info.value)
    assert emulator.requests == []
