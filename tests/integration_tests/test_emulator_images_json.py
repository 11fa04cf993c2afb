"""Image inputs and JSON mode against the emulator over loopback: it checks content parts as
the client does, says how many images it received, answers JSON in JSON mode, and an agent
looks at the picture its own tool drew."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import aiohttp
import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool, _content
from langchain_websim.testing import WebsimEmulator, agent_responder
from tests.integration_tests.emulator_http import chat_request, post

B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(32)).decode()
DATA_URL = f"data:image/png;base64,{B64}"
ASK = {"type": "text", "text": "what is this?"}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


class Joke(BaseModel):
    """A joke to tell the user."""

    setup: str = Field(description="The question that sets up the joke")
    punchline: str = Field(description="The answer that resolves the joke")
    rating: int = Field(ge=1, le=10)


# --------------------------------------------------------------------------- content parts


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "user", "content": [image_part("data:image/bmp;base64," + B64)]}],
            "message 0 part 0: the data URL has the type 'image/bmp'",
        ),
        (
            [{"role": "user", "content": [ASK, image_part("data:image/png;base64,%%")]}],
            "message 0 part 1: the data URL's base64 data is malformed",
        ),
        (
            [{"role": "user", "content": [image_part("data:image/png," + B64)]}],
            "not of the form data:<image type>;base64,<data>",
        ),
        (
            [{"role": "user", "content": [image_part("file:///etc/passwd")]}],
            "neither an absolute http(s) URL nor a data URL",
        ),
        (
            [{"role": "system", "content": [image_part(DATA_URL)]}],
            "message 0 part 0: an image in a 'system' message",
        ),
        (
            [{"role": "assistant", "content": [image_part(DATA_URL)]}],
            "an image in a 'assistant' message",
        ),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            "has type 'input_audio'; Websim takes 'text' and 'image_url' parts only",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/a"}]}],
            "an image_url part must be",
        ),
    ],
)
async def test_content_part_violations_get_400_and_are_logged(
    emulator: WebsimEmulator, http: aiohttp.ClientSession, messages: Any, expected: str
) -> None:
    status, _, raw = await post(http, chat_request(emulator, messages))
    assert status == 400
    assert any(expected in v for v in json.loads(raw)["violations"]), raw
    (recorded,) = emulator.requests
    assert any(expected in v for v in recorded.violations)


async def test_the_largest_image_passes_and_a_larger_one_gets_400(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    answers = []
    for size in (_content.MAX_IMAGE_BYTES, _content.MAX_IMAGE_BYTES + 1):
        data = base64.b64encode(bytes(size)).decode()
        messages = [{"role": "user", "content": [image_part("data:image/webp;base64," + data)]}]
        url, headers, body = chat_request(emulator, messages)
        # A BytesIO: aiohttp warns about bytes bodies this large.
        async with http.post(url, headers=headers, data=io.BytesIO(body)) as resp:
            answers.append((resp.status, await resp.json()))
    assert answers[0] == (200, {"content": "Echo: [1 image]"})
    assert answers[1][0] == 400
    assert "the image is too large" in answers[1][1]["violations"][0]


async def test_the_client_sends_a_large_image_without_warnings(emulator: WebsimEmulator) -> None:
    # Over aiohttp's 1 MiB bytes-body threshold: sent from a buffer, with no ResourceWarning.
    data = base64.b64encode(bytes(3 * 1024 * 1024)).decode()
    block = {"type": "image", "base64": data, "mime_type": "image/gif"}
    async with WebsimClient(emulator.base_url, max_retries=0) as client:
        answer = await ChatWebsim(client=client).ainvoke([HumanMessage([ASK, block])])
    assert answer.text == "Echo: what is this? [1 image]"
    (recorded,) = emulator.requests
    assert recorded.headers["content-length"] == str(len(recorded.raw))
    assert recorded.headers["content-type"] == "text/plain;charset=UTF-8"
    assert recorded.body["messages"][0]["content"][1] == image_part("data:image/gif;base64," + data)


async def test_the_echo_counts_the_images_it_received(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    one = [{"role": "user", "content": [ASK, image_part(DATA_URL)]}]
    two = [{"role": "user", "content": [image_part(DATA_URL), ASK, image_part("https://x/a.png")]}]
    answers = [json.loads((await post(http, chat_request(emulator, m)))[2]) for m in (one, two)]
    assert answers == [
        {"content": "Echo: what is this? [1 image]"},
        {"content": "Echo: what is this? [2 images]"},
    ]
    assert [r.violations for r in emulator.requests] == [[], []]


# --------------------------------------------------------------------------- through ChatWebsim


async def test_every_image_form_arrives_as_a_part(emulator: WebsimEmulator) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "image", "base64": B64, "mime_type": "image/png"},
        {"type": "image", "url": "https://cdn.example/a.png"},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "image_url", "image_url": "https://cdn.example/b.png"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
    ]
    async with WebsimClient(emulator.base_url, max_retries=0) as client:
        llm = ChatWebsim(client=client)
        answer = await llm.ainvoke([HumanMessage([ASK, *blocks])])
        text_only = await llm.ainvoke([HumanMessage([ASK])])
    assert answer.text == "Echo: what is this? [5 images]"
    assert text_only.text == "Echo: what is this?"
    sent, plain = (r.body["messages"][0]["content"] for r in emulator.requests)
    assert [part["image_url"]["url"] for part in sent[1:]] == [
        DATA_URL,
        "https://cdn.example/a.png",
        DATA_URL,
        "https://cdn.example/b.png",
        DATA_URL,
    ]
    assert plain == "what is this?"  # a text-only message stays a plain string
    assert all(r.status == 200 and r.violations == [] for r in emulator.requests)


async def test_a_refused_image_reaches_nothing(emulator: WebsimEmulator) -> None:
    async with WebsimClient(emulator.base_url, max_retries=0) as client:
        llm = ChatWebsim(client=client)
        bad = {"type": "image", "base64": B64, "mime_type": "image/svg+xml"}
        with pytest.raises(ValueError, match=r"message 0 \(HumanMessage\) has an image at posi"):
            await llm.ainvoke([HumanMessage([ASK, bad])])
    assert emulator.requests == []


# --------------------------------------------------------------------------- JSON mode


async def test_structured_output_runs_against_the_plain_emulator(emulator: WebsimEmulator) -> None:
    async with WebsimClient(emulator.base_url, max_retries=0) as client:
        llm = ChatWebsim(client=client)
        for method in ("json_schema", "json_mode", "function_calling"):
            joke = await llm.with_structured_output(Joke, method=method).ainvoke("a cat joke")
            assert joke == Joke(setup="example setup", punchline="example punchline", rating=1)
        anything = await llm.with_structured_output(None, method="json_mode").ainvoke("hi")
        assert anything == {"echo": "hi"}
        forced = await llm.bind_tools([Joke], tool_choice="any").ainvoke("call it")
        assert forced.tool_calls[0]["args"]["rating"] == 1
        plain = await llm.ainvoke("hello")
    assert plain.text == "Echo: hello"
    assert [r.body.get("json") for r in emulator.requests] == [True] * 5 + [None]


def test_json_answers_follow_the_schema_shape() -> None:
    from langchain_websim.testing._answers import placeholder

    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date-time"},
            "code": {"type": "string", "minLength": 14, "maxLength": 16},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
            "score": {"type": "number", "exclusiveMinimum": 5, "maximum": 9},
            "owner": {"$ref": "#/$defs/Person"},
            "note": {"type": "string"},
        },
        "required": ["when", "code", "tags", "score", "owner"],
        "$defs": {
            "Person": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
    }
    assert placeholder(schema) == {
        "when": "2000-01-01T00:00:00Z",
        "code": "example codexx",
        "tags": ["a", "a"],
        "score": 6,
        "owner": {"name": "example name"},
    }


# --------------------------------------------------------------------------- looking at it


def test_an_agent_looks_at_the_image_its_tool_drew() -> None:
    with WebsimEmulator(chat_responder=agent_responder) as emulator:
        with WebsimClient(emulator.base_url, max_retries=0) as client:
            tool = WebsimImageTool(client=client, return_image=True)
            agent = create_agent(ChatWebsim(client=client), tools=[tool])
            result = agent.invoke({"messages": [("human", "Draw a red fox in fresh snow.")]})
    messages = result["messages"]
    tool_message = next(m for m in messages if isinstance(m, ToolMessage))
    url = tool_message.artifact["url"]
    assert [b["type"] for b in tool_message.content_blocks] == ["text", "image"]
    first, second = (r.body["messages"] for r in emulator.requests_for("chat"))
    assert not any(isinstance(m["content"], list) for m in first)
    # The second model request carries the picture as an image part after the tool result.
    assert second[-1] == {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": f"Result of the call {tool_message.tool_call_id} to tool "
                f"'websim_image_generation':\n{url}",
            },
            image_part(url),
        ],
    }
    assert url in messages[-1].text
    assert all(r.violations == [] for r in emulator.requests)
