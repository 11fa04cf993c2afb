"""Image inputs, with HTTP mocked: every accepted form reaches the wire as an OpenAI-style
``image_url`` part, and every refused form fails before anything is sent, naming the message
and the block."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aioresponses import aioresponses
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from yarl import URL

from langchain_websim import ChatWebsim, WebsimClient, _content, _requests
from langchain_websim._messages import convert_messages

BASE = "http://websim.test"
CHAT_URL = BASE + "/api/v1/inference/run_chat_completion"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
B64 = base64.b64encode(PNG).decode()
DATA_URL = f"data:image/png;base64,{B64}"
HTTP_URL = "https://cdn.example/cat.png"
ASK = {"type": "text", "text": "What is this?"}
LIMIT = _content.MAX_IMAGE_BYTES


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture
def http() -> Iterator[aioresponses]:
    with aioresponses() as mocked:
        mocked.post(CHAT_URL, payload={"content": "a cat"}, repeat=True)
        yield mocked


@pytest.fixture
async def llm() -> AsyncIterator[ChatWebsim]:
    client = WebsimClient(BASE, max_retries=0)
    yield ChatWebsim(client=client)
    await client.aclose()


def sent(http: aioresponses) -> list[list[dict[str, Any]]]:
    """The ``messages`` of every chat request sent so far."""
    calls = http.requests.get(("POST", URL(CHAT_URL)), [])
    return [json.loads(call.kwargs["data"])["messages"] for call in calls]


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("block", "url"),
    [
        pytest.param(
            {"type": "image", "base64": B64, "mime_type": "image/png"}, DATA_URL, id="std-b64"
        ),
        pytest.param({"type": "image", "url": HTTP_URL}, HTTP_URL, id="std-url"),
        pytest.param({"type": "image", "url": DATA_URL}, DATA_URL, id="std-data-url"),
        pytest.param(
            {"type": "image", "source_type": "base64", "data": B64, "mime_type": "image/png"},
            DATA_URL,
            id="v0-b64",
        ),
        pytest.param(
            {"type": "image", "source_type": "url", "url": HTTP_URL}, HTTP_URL, id="v0-url"
        ),
        pytest.param({"type": "image_url", "image_url": {"url": DATA_URL}}, DATA_URL, id="openai"),
        pytest.param(
            {"type": "image_url", "image_url": {"url": HTTP_URL, "detail": "low"}},
            HTTP_URL,
            id="openai-detail",
        ),
        pytest.param({"type": "image_url", "image_url": HTTP_URL}, HTTP_URL, id="openai-str"),
        pytest.param(
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64}},
            DATA_URL,
            id="anthropic-b64",
        ),
        pytest.param(
            {"type": "image", "source": {"type": "url", "url": HTTP_URL}},
            HTTP_URL,
            id="anthropic-url",
        ),
    ],
)
async def test_every_accepted_image_form_becomes_an_image_url_part(
    http: aioresponses, llm: ChatWebsim, block: dict[str, Any], url: str
) -> None:
    message = HumanMessage(content=[ASK, block])
    before = message.model_dump()
    assert (await llm.ainvoke([SystemMessage("Be brief."), message])).text == "a cat"
    assert sent(http) == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [ASK, image_part(url)]},
        ]
    ]
    assert message.model_dump() == before  # the caller's message is not touched


@pytest.mark.parametrize("mime", _content.IMAGE_MIME_TYPES)
async def test_every_image_type_is_accepted(http: aioresponses, llm: ChatWebsim, mime: str) -> None:
    await llm.ainvoke([HumanMessage([{"type": "image", "base64": B64, "mime_type": mime}])])
    assert sent(http)[0][0]["content"] == [image_part(f"data:{mime};base64,{B64}")]


async def test_text_only_messages_stay_plain_strings(http: aioresponses, llm: ChatWebsim) -> None:
    await llm.ainvoke([HumanMessage([ASK, " Briefly.", {"type": "text", "text": ""}])])
    await llm.ainvoke("Hello")
    assert sent(http) == [
        [{"role": "user", "content": "What is this? Briefly."}],
        [{"role": "user", "content": "Hello"}],
    ]


async def test_text_and_images_keep_their_order(http: aioresponses, llm: ChatWebsim) -> None:
    first = {"type": "image", "url": HTTP_URL}
    second = {"type": "image_url", "image_url": {"url": DATA_URL}}
    content: list[Any] = ["Compare ", first, {"type": "text", "text": "with"}, " this:", second]
    await llm.ainvoke([HumanMessage(content), AIMessage("Sure."), HumanMessage("And?")])
    assert sent(http)[0] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare "},
                image_part(HTTP_URL),
                {"type": "text", "text": "with this:"},
                image_part(DATA_URL),
            ],
        },
        {"role": "assistant", "content": "Sure."},
        {"role": "user", "content": "And?"},
    ]


async def test_chat_message_with_the_user_role_takes_images(
    http: aioresponses, llm: ChatWebsim
) -> None:
    await llm.ainvoke([ChatMessage([ASK, {"type": "image", "url": HTTP_URL}], role="user")])
    assert sent(http)[0][0]["content"] == [ASK, image_part(HTTP_URL)]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "image", "base64": B64, "mime_type": "image/png"},
    ],
    ids=["openai", "standard"],
)
async def test_tool_message_images_follow_the_rendered_result(
    http: aioresponses, llm: ChatWebsim, block: dict[str, Any]
) -> None:
    call = {"type": "tool_call", "id": "1", "name": "random_image", "args": {}}
    history = [
        HumanMessage("Get a random diagram and describe it."),
        AIMessage([], tool_calls=[call]),
        ToolMessage(["Here it is:", block], tool_call_id="1", name="random_image"),
    ]
    await llm.ainvoke(history)
    assert sent(http)[0][2] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Result of the call 1 to tool 'random_image':\nHere it is:"},
            image_part(DATA_URL),
        ],
    }


def test_an_image_of_exactly_the_limit_is_accepted() -> None:
    url = "data:image/jpeg;base64," + base64.b64encode(bytes(LIMIT)).decode()
    assert _content.image_url_problem(url) is None
    request = _requests.ChatRequest([{"role": "user", "content": [image_part(url)]}])
    assert request.messages[0]["content"][0]["image_url"]["url"] == url


# --------------------------------------------------------------------------- refused


TOO_LARGE = base64.b64encode(bytes(LIMIT + 1)).decode()


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (
            HumanMessage([ASK, {"type": "audio", "base64": B64, "mime_type": "audio/wav"}]),
            "type 'audio' at position 1",
        ),
        (
            HumanMessage([ASK, {"type": "video", "url": "https://x.test/v.mp4"}]),
            "type 'video' at position 1",
        ),
        (
            HumanMessage([ASK, {"type": "file", "base64": B64, "mime_type": "application/pdf"}]),
            "type 'file' at position 1",
        ),
        (
            SystemMessage([ASK, {"type": "image", "url": HTTP_URL}]),
            r"\(SystemMessage\) has an image at position 1 .* not in system messages",
        ),
        (
            ChatMessage([{"type": "image", "url": HTTP_URL}], role="system"),
            "not in system messages",
        ),
        (
            HumanMessage(
                [ASK, {"type": "image", "base64": "not base64!", "mime_type": "image/png"}]
            ),
            "position 1 .*base64 data is malformed",
        ),
        (
            HumanMessage([ASK, {"type": "image", "base64": B64[:-2], "mime_type": "image/png"}]),
            "base64 data is malformed",
        ),
        (
            HumanMessage([ASK, {"type": "image", "base64": B64, "mime_type": "image/bmp"}]),
            "type 'image/bmp'; Websim takes image/png, image/jpeg, image/webp, image/gif",
        ),
        (
            HumanMessage([ASK, {"type": "image", "base64": B64, "mime_type": "image/jpg"}]),
            r"JPEG is 'image/jpeg'",
        ),
        (
            HumanMessage([ASK, {"type": "image", "base64": TOO_LARGE, "mime_type": "image/png"}]),
            "at most 10 MiB .* this one is 10,485,761 bytes",
        ),
        (
            HumanMessage(
                [ASK, {"type": "image_url", "image_url": {"url": "data:image/png," + B64}}]
            ),
            "not of the form data:<image type>;base64,<data>",
        ),
        (
            HumanMessage(
                [ASK, {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]
            ),
            "holds no data",
        ),
        (
            HumanMessage([ASK, {"type": "image_url", "image_url": {"url": "ftp://x.test/a.png"}}]),
            "neither an absolute http",
        ),
        (
            HumanMessage([ASK, {"type": "image_url", "image_url": {"detail": "low"}}]),
            "needs a string URL",
        ),
        (
            HumanMessage([ASK, {"type": "image", "file_id": "file-123"}]),
            "a file id, which Websim cannot fetch",
        ),
        (
            HumanMessage([ASK, {"type": "image", "source": {"type": "file", "file_id": "f"}}]),
            "source' of type 'file'",
        ),
        (
            HumanMessage([ASK, {"type": "image", "source": {"type": "base64", "data": B64}}]),
            "needs a 'mime_type'",
        ),
        (
            ToolMessage(
                [{"type": "image", "base64": "@@", "mime_type": "image/png"}], tool_call_id="1"
            ),
            r"\(ToolMessage\) has an image at position 0 .*malformed",
        ),
    ],
)
async def test_refused_forms_name_the_message_and_block_and_send_nothing(
    http: aioresponses, llm: ChatWebsim, message: BaseMessage, needle: str
) -> None:
    conversation = [HumanMessage("First, a question."), message]
    with pytest.raises(ValueError, match=needle) as info:
        await llm.ainvoke(conversation)
    assert str(info.value).startswith(f"message 1 ({type(message).__name__}) has ")
    with pytest.raises(ValueError, match=needle):
        llm.invoke(conversation)
    assert sent(http) == []


async def test_base64_without_a_mime_type_is_refused_before_sending(
    http: aioresponses, llm: ChatWebsim
) -> None:
    message = HumanMessage([ASK, {"type": "image", "base64": B64}])
    with pytest.raises(
        ValueError,
        match=r"message 0 \(HumanMessage\) has an image at position 1 .*"
        "needs a 'mime_type' \\(one of image/png",
    ):
        convert_messages([message])
    # Through a chat model, LangChain's own tracing formatter refuses it first.
    with pytest.raises(ValueError, match="mime_type"):
        await llm.ainvoke([message])
    assert sent(http) == []


def test_malformed_image_blocks_name_their_position() -> None:
    cases = [
        ({"type": "image"}, "needs 'url', or 'base64' with 'mime_type'"),
        ({"type": "image", "url": 42}, "must be a string, got int"),
        ({"type": "image", "data": B64, "mime_type": "image/png"}, "Unsupported source type"),
    ]
    for block, needle in cases:
        with pytest.raises(ValueError, match=needle) as info:
            convert_messages([HumanMessage([ASK, block])])
        assert str(info.value).startswith("message 0 (HumanMessage) has an image at position 1")


def test_far_too_large_data_is_refused_without_decoding() -> None:
    data = "A" * (LIMIT * 2)  # refused on its length alone
    problem = _content.image_url_problem("data:image/png;base64," + data)
    assert problem is not None
    assert f"this one is about {LIMIT * 2 // 4 * 3:,} bytes ({LIMIT * 2:,} base64 characters)" in (
        problem
    )


# --------------------------------------------------------------------------- WebsimClient


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        (
            [{"role": "user", "content": [image_part("data:image/tiff;base64," + B64)]}],
            "message 0 content part 0: the data URL has the type 'image/tiff'",
        ),
        (
            [{"role": "user", "content": [ASK, image_part("data:image/png;base64,%%%%")]}],
            "message 0 content part 1: the data URL's base64 data is malformed",
        ),
        (
            [{"role": "user", "content": [image_part("data:image/png;base64," + TOO_LARGE)]}],
            "content part 0: the image is too large",
        ),
        (
            [{"role": "user", "content": [image_part("javascript:alert(1)")]}],
            "content part 0: the image URL",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": HTTP_URL}]}],
            r"must be \{'type': 'image_url', 'image_url': \{'url'",
        ),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            "has type 'input_audio'; Websim takes 'text' and 'image_url' parts only",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [image_part(HTTP_URL)]},
            ],
            "message 1 content part 0: an image in a 'assistant' message",
        ),
        (
            [
                {"role": "system", "content": [image_part(HTTP_URL)]},
                {"role": "user", "content": "hi"},
            ],
            "message 0 content part 0: an image in a 'system' message",
        ),
    ],
)
async def test_the_client_checks_content_parts_before_sending(
    http: aioresponses, messages: list[dict[str, Any]], needle: str
) -> None:
    async with WebsimClient(BASE, max_retries=0) as client:
        with pytest.raises(ValueError, match=needle):
            await client.achat(messages)
    assert sent(http) == []


async def test_the_client_sends_valid_parts_as_given(http: aioresponses) -> None:
    messages = [{"role": "user", "content": [ASK, image_part(DATA_URL), image_part(HTTP_URL)]}]
    async with WebsimClient(BASE, max_retries=0) as client:
        assert (await client.achat(messages)).text == "a cat"
    assert sent(http) == [messages]
