"""langchain-tests standard integration suite for ChatWebsim, against the local emulator.

The emulator plays the model with ``schema_filling_model``: it reads the tool and JSON
instructions ChatWebsim puts in the system message, as an instruction-following model
would, and answers with schema-valid placeholder values; without an instruction it gives
the emulator's default answer (an echo, or a JSON object in JSON mode).  It never reads the
question, so the tests that need a model to pick values out of the question
(``magic_function(3)``, a customer's name) are expected failures here; they run for real
against Websim in ``test_chat_live.py`` under ``WEBSIM_LIVE=1``.

The image tests download a picture; here ``httpx.get`` answers with a bundled PNG instead
(the live suite keeps the real download), so they run offline.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_websim.testing import WebsimEmulator
from langchain_websim.testing._answers import echo_answer, json_answer, offered_tools, placeholder
from langchain_websim.testing._contract import user_text
from tests.capabilities import ChatWebsimCapabilities

_FORCED = re.compile(r"^You MUST call the tool '([^']+)'", re.M)
_TOOL_RESULT = ("Result of the call ", "The call ")
PNG = (Path(__file__).resolve().parents[1] / "data" / "diagram.png").read_bytes()


def schema_filling_model(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """Follow ChatWebsim's instructions with placeholder values; echo when there are none."""
    tools = offered_tools(messages)
    if tools and not user_text(messages).startswith(_TOOL_RESULT):
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        forced = _FORCED.search(system)
        name = forced.group(1) if forced else next(iter(tools))
        return json.dumps({"tool_calls": [{"name": name, "arguments": placeholder(tools[name])}]})
    return json_answer(messages) if body.get("json") is True else echo_answer(messages)


def test_the_model_double_follows_instructions_only() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    system = f"Tool: add\nArguments (JSON schema): {json.dumps(schema)}\n"
    asked = [{"role": "system", "content": system}, {"role": "user", "content": "n is 3"}]
    assert json.loads(schema_filling_model(asked, {})) == {
        "tool_calls": [{"name": "add", "arguments": {"n": 0}}]
    }
    answered = [*asked, {"role": "user", "content": "Result of the call c1 to tool 'add':\n3"}]
    assert schema_filling_model(answered, {}).startswith("Echo: Result of the call")
    assert schema_filling_model([{"role": "user", "content": "hi"}], {}) == "Echo: hi"
    assert json.loads(schema_filling_model([{"role": "user", "content": "hi"}], {"json": True}))


_NEEDS_VALUES = (
    "needs an instruction-following model to copy {what} from the question into the call; "
    "the emulator's model double fills schema placeholders instead (runs for real in "
    "test_chat_live.py with WEBSIM_LIVE=1)"
)


class TestChatWebsimEmulator(ChatWebsimCapabilities, ChatModelIntegrationTests):
    """Chat answers come from ``schema_filling_model``; images get a URL."""

    base_url: str

    @pytest.fixture(autouse=True)
    def _point_at_emulator(self, shared_emulator: WebsimEmulator) -> None:
        # Autouse fixtures run before the suite's `model` fixture reads chat_model_params.
        shared_emulator.clear()
        shared_emulator.set_chat_responder(schema_filling_model)
        self.base_url = shared_emulator.base_url

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "gemini-1.5-pro", "base_url": self.base_url, "max_retries": 0}

    @pytest.fixture(autouse=True)
    def _bundled_image(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        # The image tests fetch a picture from GitHub; answer with the bundled PNG instead.
        fetched: list[str] = []

        def get(url: str, **kwargs: Any) -> httpx.Response:
            fetched.append(url)
            return httpx.Response(200, content=PNG, request=httpx.Request("GET", url))

        monkeypatch.setattr(httpx, "get", get)
        return fetched

    def test_image_inputs_arrive_as_image_parts(
        self, model: BaseChatModel, shared_emulator: WebsimEmulator, _bundled_image: list[str]
    ) -> None:
        """The standard image tests pass; here is what they sent, as the emulator saw it."""
        self.test_image_inputs(model)
        self.test_image_tool_message(model)
        assert len(_bundled_image) == 2  # the bundled picture, not a download
        requests = shared_emulator.requests_for("chat")
        assert [r.status for r in requests] == [200] * 5
        data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
        urls = [
            part["image_url"]["url"]
            for r in requests
            for part in r.body["messages"][-1]["content"]
            if part["type"] == "image_url"
        ]
        assert urls[:2] == [data_url, data_url]  # OpenAI and standard base64 blocks
        assert urls[2].startswith("https://raw.githubusercontent.com/")  # a URL, passed on
        assert urls[3:] == [data_url, data_url]  # the two tool messages
        assert all(r.body["messages"][-1]["content"][0]["type"] == "text" for r in requests[3:])

    @pytest.mark.xfail(
        reason=_NEEDS_VALUES.format(what="the argument 3 of magic_function(3)"),
        raises=AssertionError,
        strict=True,
    )
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(
        reason=_NEEDS_VALUES.format(what="the argument 3 of magic_function(3)"),
        raises=AssertionError,
        strict=True,
    )
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(
        reason=_NEEDS_VALUES.format(what="the Chinese customer name"),
        raises=AssertionError,
        strict=True,
    )
    def test_unicode_tool_call_integration(
        self,
        model: BaseChatModel,
        *,
        tool_choice: str | None = None,
        force_tool_call: bool = True,
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )
