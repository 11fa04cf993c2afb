"""Bad input from the caller: a clear ``ValueError``/``TypeError`` before any request is sent.

HTTP is mocked to answer every request successfully, so a missing check shows up as a call
that succeeds; every test also asserts that the mock received zero requests.  Each kind of
bad input goes through ``WebsimClient`` (async and sync) and through the public classes
where they take it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aioresponses import aioresponses
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage
from pydantic import ValidationError

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool

BASE = "http://websim.test"
CHAT_URL = BASE + "/api/v1/inference/run_chat_completion"
IMAGE_URL = BASE + "/api/v1/inference/run_image_generation"


@pytest.fixture
def http() -> Iterator[aioresponses]:
    """Both endpoints answer successfully: only a missing check would reach them."""
    with aioresponses() as mocked:
        mocked.post(CHAT_URL, payload={"content": "answered"}, repeat=True)
        mocked.post(IMAGE_URL, payload={"url": "https://cdn.websim.test/a.png"}, repeat=True)
        yield mocked
        assert mocked.requests == {}, "a request was sent for bad input"


@pytest.fixture
def made() -> Iterator[Callable[[Any], Any]]:
    """Registers clients, models and tools; closes whatever they opened."""
    objects: list[Any] = []
    yield lambda obj: objects.append(obj) or obj
    for obj in objects:
        for client in (getattr(obj, "client", None), getattr(obj, "_shared_client", None), obj):
            if isinstance(client, WebsimClient):
                client.close()


def client(made: Callable[[Any], Any]) -> WebsimClient:
    built: WebsimClient = made(WebsimClient(BASE, retry_base_delay=0))
    return built


def chat(made: Callable[[Any], Any], **kwargs: Any) -> ChatWebsim:
    built: ChatWebsim = made(ChatWebsim(base_url=BASE, retry_base_delay=0, **kwargs))
    return built


def tool(made: Callable[[Any], Any], **kwargs: Any) -> WebsimImageTool:
    built: WebsimImageTool = made(WebsimImageTool(base_url=BASE, retry_base_delay=0, **kwargs))
    return built


# --------------------------------------------------------------------------- image prompts

BLANK_PROMPTS = ["", " ", "\n\t  \r\n", "\u3000\u2003"]


@pytest.mark.parametrize("prompt", BLANK_PROMPTS)
async def test_blank_image_prompt(
    prompt: str, http: aioresponses, made: Callable[[Any], Any]
) -> None:
    websim = client(made)
    with pytest.raises(ValueError, match="prompt is empty"):
        await websim.agenerate_image(prompt)
    with pytest.raises(ValueError, match="prompt is empty"):
        websim.generate_image(prompt)
    flux = chat(made, model="flux")
    with pytest.raises(ValueError, match="no image prompt"):
        await flux.ainvoke(prompt)
    with pytest.raises(ValueError, match="prompt is empty"):
        await flux.ainvoke("a cat", prompt=prompt)
    with pytest.raises(ValueError, match="no image prompt"):
        flux.invoke([HumanMessage("a cat"), AIMessage("here"), HumanMessage(prompt)])
    # The tool answers the model with what to fix (or raises, when asked to).
    message = await tool(made).ainvoke({"prompt": prompt})
    assert message.startswith("Invalid arguments: prompt is empty")
    with pytest.raises(ValidationError, match="prompt is empty"):
        await tool(made, handle_validation_error=False).ainvoke({"prompt": prompt})


@pytest.mark.parametrize("prompt", [None, 42, b"a cat", ["a cat"]])
async def test_image_prompt_that_is_not_a_string(
    prompt: Any, http: aioresponses, made: Callable[[Any], Any]
) -> None:
    with pytest.raises(TypeError, match="prompt must be a string"):
        await client(made).agenerate_image(prompt)


# The tool's schema is pydantic's: UTF-8 bytes decode to the same text, so they are fine there.
@pytest.mark.parametrize("prompt", [None, 42, ["a cat"], {"text": "a cat"}])
async def test_tool_prompt_that_is_not_a_string(
    prompt: Any, http: aioresponses, made: Callable[[Any], Any]
) -> None:
    with pytest.raises(ValidationError, match="prompt"):
        await tool(made, handle_validation_error=False).ainvoke({"prompt": prompt})


# --------------------------------------------------------------------------- aspect ratios

BAD_RATIOS = [
    "16x9",
    "16/9",
    "0:1",
    "1:0",
    "-1:1",
    "1:1:1",
    "1000:1",
    "1.5:1",
    "wide",
    "",
    "１６:９",
]


@pytest.mark.parametrize("ratio", BAD_RATIOS)
async def test_malformed_aspect_ratio(
    ratio: str, http: aioresponses, made: Callable[[Any], Any]
) -> None:
    with pytest.raises(ValueError, match="aspect_ratio must look like 'W:H'"):
        await client(made).agenerate_image("a cat", aspect_ratio=ratio)
    with pytest.raises(ValueError, match="aspect_ratio must look like 'W:H'"):
        await chat(made, model="flux").ainvoke("a cat", aspect_ratio=ratio)
    with pytest.raises(ValidationError, match="aspect_ratio"):
        ChatWebsim(model="flux", aspect_ratio=ratio)
    with pytest.raises(ValidationError, match="default_aspect_ratio"):
        WebsimImageTool(default_aspect_ratio=ratio)
    message = await tool(made).ainvoke({"prompt": "a cat", "aspect_ratio": ratio})
    assert message.startswith("Invalid arguments: aspect_ratio must look like 'W:H'")


async def test_aspect_ratio_that_is_not_a_string(
    http: aioresponses, made: Callable[[Any], Any]
) -> None:
    with pytest.raises(TypeError, match="aspect_ratio must be a string"):
        await client(made).agenerate_image("a cat", aspect_ratio=16 / 9)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- messages


async def test_empty_message_list(http: aioresponses, made: Callable[[Any], Any]) -> None:
    websim = client(made)
    with pytest.raises(ValueError, match="messages is empty"):
        await websim.achat([])
    with pytest.raises(ValueError, match="messages is empty"):
        websim.chat([])
    llm = chat(made)
    with pytest.raises(ValueError, match="messages is empty"):
        await llm.ainvoke([])
    with pytest.raises(ValueError, match="messages is empty"):
        llm.invoke([])


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": ""}],
        [{"role": "system", "content": "  "}, {"role": "user", "content": "\n"}],
        [{"role": "user", "content": [{"type": "text", "text": " \t "}]}],
    ],
)
async def test_conversation_with_nothing_but_white_space(
    messages: list[dict[str, Any]], http: aioresponses, made: Callable[[Any], Any]
) -> None:
    with pytest.raises(ValueError, match="every message is empty"):
        await client(made).achat(messages)


async def test_blank_chat_prompt_through_chat_websim(
    http: aioresponses, made: Callable[[Any], Any]
) -> None:
    llm = chat(made)
    with pytest.raises(ValueError, match="every message is empty"):
        await llm.ainvoke("   ")
    with pytest.raises(ValueError, match="every message is empty"):
        llm.invoke([SystemMessage(""), HumanMessage([{"type": "text", "text": "\n"}])])


@pytest.mark.parametrize(
    ("messages", "error", "needle"),
    [
        ("hello", TypeError, "messages must be a list"),
        ([("user", "hello")], TypeError, "message 0 must be a dict"),
        ([{"role": "tool", "content": "x"}], ValueError, "message 0 has role 'tool'"),
        ([{"content": "x"}], ValueError, "message 0 has role None"),
        ([{"role": "user", "content": None}], ValueError, "message 0 content must be"),
        ([{"role": "user", "content": 7}], ValueError, "message 0 content must be"),
        ([{"role": "user", "content": ["hello"]}], ValueError, "content part 0: must be a dict"),
        ([{"role": "user", "content": [{"text": "hi"}]}], ValueError, "with a string 'type'"),
        ([{"role": "user", "content": [{"type": "text"}]}], ValueError, "without a string 'text'"),
        (
            [{"role": "user", "content": "ok"}, {"role": "user", "content": [{"type": 3}]}],
            ValueError,
            "message 1 content part 0",
        ),
    ],
)
async def test_malformed_wire_messages(
    messages: Any,
    error: type[Exception],
    needle: str,
    http: aioresponses,
    made: Callable[[Any], Any],
) -> None:
    websim = client(made)
    with pytest.raises(error, match=needle.replace("(", r"\(")):
        await websim.achat(messages)
    with pytest.raises(error, match=needle.replace("(", r"\(")):
        websim.chat(messages)


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (HumanMessage(content=[{"type": "image_url", "image_url": {"url": "x"}}]), "URL 'x'"),
        (
            HumanMessage(content=[{"type": "audio", "base64": "AAAA", "mime_type": "a/b"}]),
            "'audio'",
        ),
        (HumanMessage(content=[{"type": "file", "url": "https://x.test/a.pdf"}]), "'file'"),
        (HumanMessage(content=[{"type": "text"}]), "no string 'text'"),
        (ChatMessage("be terse", role="developer"), "role 'developer'"),
    ],
)
async def test_unsupported_content_blocks_through_chat_websim(
    message: BaseMessage, needle: str, http: aioresponses, made: Callable[[Any], Any]
) -> None:
    llm = chat(made)
    conversation = [HumanMessage("describe this"), message]
    with pytest.raises(ValueError, match=f"message 1 .*{needle}") as info:
        await llm.ainvoke(conversation)
    assert "message 1" in str(info.value)
    with pytest.raises(ValueError, match=needle):
        llm.invoke(conversation)


@pytest.mark.parametrize("project_id", ["", "   ", "abc\ndef", "abc\x00"])
async def test_bad_project_id(
    project_id: str, http: aioresponses, made: Callable[[Any], Any]
) -> None:
    with pytest.raises(ValueError, match="project_id"):
        await client(made).achat([{"role": "user", "content": "hi"}], project_id=project_id)
    with pytest.raises(ValueError, match="project_id"):
        await client(made).agenerate_image("a cat", project_id=project_id)
    with pytest.raises(ValueError, match="project_id"):
        await chat(made).ainvoke("hi", project_id=project_id)


# --------------------------------------------------------------------------- configuration

BAD_BASE_URLS = [
    "",
    "   ",
    "websim.ai",
    "ftp://websim.ai",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/plain,hi",
    "http://",
    "https://websim.ai/?debug=1",
    "https://websim.ai/#top",
]


@pytest.mark.parametrize("base_url", BAD_BASE_URLS)
def test_non_http_base_url(base_url: str, http: aioresponses) -> None:
    with pytest.raises(ValueError, match="base_url"):
        WebsimClient(base_url)
    with pytest.raises(ValidationError, match="base_url"):
        ChatWebsim(base_url=base_url)
    with pytest.raises(ValidationError, match="base_url"):
        WebsimImageTool(base_url=base_url)


@pytest.mark.parametrize("base_url", ["ftp://websim.ai", "websim.ai", "file:///etc/passwd"])
def test_non_http_base_url_from_the_environment(
    base_url: str, http: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSIM_BASE_URL", base_url)
    with pytest.raises(ValueError, match="base_url"):
        WebsimClient()
    with pytest.raises(ValidationError, match="base_url"):
        ChatWebsim()
    with pytest.raises(ValidationError, match="base_url"):
        WebsimImageTool()


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        (
            {"X-Trace": "a\r\nSet-Cookie: session=stolen"},
            "'X-Trace' has a value with the control character",
        ),
        ({"X-Trace": "a\nb"}, "'X-Trace' has a value with the control character"),
        ({"X-Trace": "a\rb"}, "'X-Trace' has a value with the control character"),
        ({"X-Trace": "a\x00b"}, "'X-Trace' has a value with the control character"),
        ({"X-Trace\r\nInjected": "a"}, "not a valid HTTP token"),
        ({"X-Trace\n": "a"}, "not a valid HTTP token"),
        ({"Bad Name": "a"}, "not a valid HTTP token"),
        ({"websim-flags;": ""}, "not a valid HTTP token"),
        ({"": "a"}, "not a valid HTTP token"),
    ],
)
def test_header_injection_is_refused(
    headers: dict[str, str], needle: str, http: aioresponses
) -> None:
    with pytest.raises(ValueError, match=needle):
        WebsimClient(BASE, headers=headers)
    with pytest.raises(ValueError, match=needle):
        WebsimClient.shared(BASE, headers=headers)


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("timeout", -1, ValueError),
        ("timeout", 0, ValueError),
        ("timeout", float("nan"), ValueError),
        ("timeout", float("inf"), ValueError),
        ("timeout", "10", TypeError),
        ("max_retries", -1, ValueError),
        ("max_retries", 1.5, TypeError),
        ("max_retries", True, TypeError),
        ("retry_base_delay", -0.5, ValueError),
        ("retry_max_delay", -1, ValueError),
    ],
)
def test_bad_timeout_and_retry_settings(
    setting: str, value: Any, error: type[Exception], http: aioresponses
) -> None:
    with pytest.raises(error, match=setting):
        WebsimClient(BASE, **{setting: value})


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("timeout", -1),
        ("timeout", 0),
        ("max_retries", -1),
        ("retry_base_delay", -0.5),
        ("retry_max_delay", -1),
    ],
)
def test_bad_timeout_and_retry_settings_on_the_public_classes(
    setting: str, value: Any, http: aioresponses
) -> None:
    with pytest.raises(ValidationError, match=setting):
        ChatWebsim(**{setting: value})
    with pytest.raises(ValidationError, match=setting):
        WebsimImageTool(**{setting: value})
