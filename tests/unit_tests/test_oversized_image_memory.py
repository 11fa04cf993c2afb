"""A refused oversized image costs no copy of itself.

Each form is refused by length before a data URL is built or split: the peak traced memory
while the call fails grows by less than half the payload's size beyond what langchain-core
copies itself (at most 1.5 x the payload in all), where the package's own two copies (the
data URL, then splitting it) made it grow by 3 x.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from aioresponses import aioresponses
from langchain_core.messages import HumanMessage

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool

SIZE = 32 * 1024 * 1024  # base64 characters: past the 10 MiB decoded limit
BASE = "http://websim.test"


def _langchain_base64(data: str) -> dict[str, Any]:
    return {"type": "image", "base64": data, "mime_type": "image/png"}


def _langchain_v0(data: str) -> dict[str, Any]:
    return {"type": "image", "source_type": "base64", "data": data, "mime_type": "image/png"}


def _anthropic(data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


def _openai(data: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + data}}


def _langchain_url(data: str) -> dict[str, Any]:
    return {"type": "image", "url": "data:image/png;base64," + data}


FORMS: dict[str, Callable[[str], dict[str, Any]]] = {
    "langchain-base64": _langchain_base64,
    "langchain-v0": _langchain_v0,
    "anthropic": _anthropic,
    "openai": _openai,
    "langchain-data-url": _langchain_url,
}
# langchain-core's ``BaseChatModel`` formats the messages for its callbacks before the model
# runs, building a data URL out of LangChain's own base64 blocks: one copy that is core's,
# held for the whole call.  The package adds none on top.
CORE_COPIES = {"langchain-base64": 1, "langchain-v0": 1}


def _growth_while(fail: Callable[[], object]) -> int:
    """Peak traced memory while ``fail()`` refuses the image, above what was held before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(ValueError, match="too large"):
            fail()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("form", FORMS)
def test_chat_model_refuses_an_oversized_image_without_copying_it(
    form: str, http: aioresponses
) -> None:
    llm = ChatWebsim(base_url=BASE)
    message = HumanMessage(["what is this?", FORMS[form]("A" * SIZE)])
    growth = _growth_while(lambda: llm.invoke([message]))
    bound = CORE_COPIES.get(form, 0) + 0.5
    assert growth <= bound * SIZE, f"grew by {growth / SIZE:.2f} x the payload"
    assert not http.requests


def test_client_refuses_an_oversized_data_url_part_without_copying_it(http: aioresponses) -> None:
    messages = [{"role": "user", "content": [_openai("A" * SIZE)]}]
    client = WebsimClient(BASE)
    try:
        growth = _growth_while(lambda: client.chat(messages))
    finally:
        client.close()
    assert growth <= 0.5 * SIZE, f"grew by {growth / SIZE:.2f} x the payload"
    assert not http.requests


def test_image_tool_refuses_an_oversized_reference_image_without_copying_it(
    http: aioresponses,
) -> None:
    tool = WebsimImageTool(base_url=BASE)
    args = {"prompt": "a fox", "image_inputs": ["data:image/png;base64," + "A" * SIZE]}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        answer = tool.invoke(args)  # invalid arguments come back as text for the model
        growth = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert "too large" in answer
    assert growth <= 0.5 * SIZE, f"grew by {growth / SIZE:.2f} x the payload"
    assert not http.requests
