"""WebsimImageTool without a network: schema, argument validation, client resolution,
copying and pickling, and every service failure turned into an agent-readable message.

HTTP is mocked with aioresponses; the wire body is checked for real against the emulator in
the integration tests.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import ToolException
from pydantic import ValidationError
from yarl import URL

from langchain_websim import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimClient,
    WebsimConnectionError,
    WebsimError,
    WebsimImageInput,
    WebsimImageTool,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)
from langchain_websim.tools import MAX_PROMPT_CHARS, _tool_error

BASE = "http://websim.test"
IMAGE_URL = BASE + "/api/v1/inference/run_image_generation"
CDN = "https://cdn.websim.test/img/abc.png"
IMAGE_ID = re.compile(r"^[a-z0-9]{7}_[a-z0-9]{12}$")

ToolFactory = Callable[..., WebsimImageTool]


@pytest.fixture
def make_tool() -> Iterator[ToolFactory]:
    """Build tools against the mocked host; close every client they resolved."""
    made: list[WebsimImageTool] = []

    def factory(**kwargs: Any) -> WebsimImageTool:
        if "client" not in kwargs:
            kwargs.setdefault("base_url", BASE)
            kwargs.setdefault("retry_base_delay", 0.0)
        tool = WebsimImageTool(**kwargs)
        made.append(tool)
        return tool

    yield factory
    for tool in made:
        for client in (tool.client, tool._shared_client):
            if client is not None:
                client.close()


def sent_bodies(mocked: aioresponses) -> list[dict[str, Any]]:
    calls = mocked.requests.get(("POST", URL(IMAGE_URL)), [])
    return [json.loads(call.kwargs["data"]) for call in calls]


def tool_call(args: dict[str, Any], call_id: str = "call_1") -> ToolCall:
    return ToolCall(name="websim_image_generation", args=args, id=call_id, type="tool_call")


# --------------------------------------------------------------------------- the schema


def test_name_description_and_schema_speak_to_the_model() -> None:
    tool = WebsimImageTool(base_url=BASE)
    assert tool.name == "websim_image_generation"
    assert "URL" in tool.description and "image" in tool.description
    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert schema["required"] == ["prompt"]
    props = schema["properties"]
    # The model is offered seed and transparent; width, height and image_inputs are the
    # application's and stay out of its schema.
    assert set(props) == {"prompt", "aspect_ratio", "seed", "transparent"}
    assert "reproducible" in props["seed"]["description"]
    assert "transparent background" in props["transparent"]["description"]
    assert str(MAX_PROMPT_CHARS) in props["prompt"]["description"]
    assert props["aspect_ratio"]["default"] == "1:1"
    for ratio in ("'1:1'", "'16:9'", "'9:16'"):
        assert ratio in props["aspect_ratio"]["description"]
    assert tool.response_format == "content_and_artifact"
    assert tool.handle_tool_error is True


def test_input_strips_the_prompt_and_accepts_other_ratios() -> None:
    args = WebsimImageInput(prompt="  a red fox in snow \n", aspect_ratio=" 4:3 ")
    assert (args.prompt, args.aspect_ratio) == ("a red fox in snow", "4:3")
    padded = "  " + "x" * MAX_PROMPT_CHARS + " \n"
    assert len(WebsimImageInput(prompt=padded).prompt) == MAX_PROMPT_CHARS


@pytest.mark.parametrize(
    ("args", "field", "needle"),
    [
        ({}, "prompt", "Field required"),
        ({"prompt": " \n\t"}, "prompt", "prompt is empty"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt", "4001 characters long"),
        ({"prompt": 42}, "prompt", "valid string"),
        ({"prompt": "fox", "aspect_ratio": "wide"}, "aspect_ratio", "'W:H'"),
        ({"prompt": "fox", "aspect_ratio": "0:1"}, "aspect_ratio", "'W:H'"),
        ({"prompt": "fox", "aspect_ratio": "16/9"}, "aspect_ratio", "'W:H'"),
        ({"prompt": "fox", "aspect_ratio": "1000:1"}, "aspect_ratio", "up to 999"),
        ({"prompt": "fox", "style": "anime"}, "style", "Extra inputs are not permitted"),
    ],
)
def test_invalid_arguments_name_the_field(args: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebsimImageInput(**args)
    (error,) = info.value.errors()
    assert error["loc"] == (field,)
    assert needle in error["msg"]


def test_bad_model_arguments_come_back_as_an_error_message(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    tool = make_tool()
    message = tool.invoke(tool_call({"prompt": "", "aspect_ratio": "wide"}))
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert message.content.startswith("Invalid arguments: prompt is empty")
    assert "aspect_ratio must look like 'W:H'" in message.content
    assert message.content.endswith("call the tool again.")
    assert http.requests == {}


def test_bad_arguments_raise_when_validation_handling_is_off(make_tool: ToolFactory) -> None:
    tool = make_tool(handle_validation_error=False)
    with pytest.raises(ValidationError) as info:
        tool.invoke({"prompt": "fox", "aspect_ratio": "sideways"})
    assert info.value.errors()[0]["loc"] == ("aspect_ratio",)


def test_default_aspect_ratio_is_what_the_schema_advertises(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    tool = make_tool(default_aspect_ratio="9:16")
    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert schema["properties"]["aspect_ratio"]["default"] == "9:16"
    assert "Leave it out for '9:16'" in schema["properties"]["aspect_ratio"]["description"]
    tool.invoke({"prompt": "a tall tower"})
    tool.invoke({"prompt": "a wide field", "aspect_ratio": "16:9"})
    assert [b["aspect_ratio"] for b in sent_bodies(http)] == ["9:16", "16:9"]
    # The plain class keeps the default for everyone else.
    assert WebsimImageTool(base_url=BASE).args_schema is WebsimImageInput


# --------------------------------------------------------------------------- construction


def test_construction_resolves_no_client(make_tool: ToolFactory) -> None:
    tool = make_tool()
    assert tool.client is None
    assert tool._shared_client is None


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"base_url": "ftp://websim.test"}, "base_url"),
        ({"base_url": "websim.ai"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_base_delay": -0.5}, "retry_base_delay"),
        ({"retry_max_delay": -1}, "retry_max_delay"),
        ({"proxy": "socks5://127.0.0.1:1080"}, "proxy"),
        ({"default_aspect_ratio": "square"}, "default_aspect_ratio"),
        ({"project_id": ""}, "project_id"),
    ],
)
def test_invalid_settings_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebsimImageTool(**settings)
    assert info.value.errors()[0]["loc"] == (field,)


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        WebsimImageTool(base_ur=BASE)
    assert info.value.errors()[0]["loc"] == ("base_ur",)


def test_a_proxy_password_stays_out_of_repr_and_errors() -> None:
    tool = WebsimImageTool(proxy="http://user:hunter2@proxy.test:3128")
    assert "hunter2" not in repr(tool)
    with pytest.raises(ValidationError) as info:
        WebsimImageTool(proxy="socks5://user:hunter2@proxy.test:1080")
    assert "hunter2" not in str(info.value)


def test_client_and_conflicting_connection_settings_are_refused() -> None:
    with WebsimClient(BASE, timeout=9) as client:
        with pytest.raises(ValidationError, match=r"timeout=5\.0 conflicts with the explicit"):
            WebsimImageTool(client=client, timeout=5)
        # The same value is no conflict, and the fields report the client's settings.
        tool = WebsimImageTool(client=client, timeout=9)
        assert (tool.base_url, tool.timeout) == (BASE, 9.0)


def test_base_url_is_read_from_the_environment(
    make_tool: ToolFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSIM_BASE_URL", "http://env.websim.test/")
    tool = WebsimImageTool(retry_base_delay=0)
    try:
        assert tool.base_url == "http://env.websim.test"
        assert tool._websim_client().base_url == "http://env.websim.test"
    finally:
        tool._websim_client().close()


# --------------------------------------------------------------------------- the client


def test_tools_with_the_same_settings_share_one_client(make_tool: ToolFactory) -> None:
    first, second = make_tool(), make_tool()
    other = make_tool(timeout=5)
    client = first._websim_client()
    assert second._websim_client() is client
    assert first._websim_client() is client  # cached, not looked up again
    assert client is WebsimClient.shared(BASE, retry_base_delay=0.0)
    assert other._websim_client() is not client
    assert other._websim_client().timeout == 5


def test_a_closed_shared_client_is_replaced(make_tool: ToolFactory, http: aioresponses) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    tool = make_tool()
    stale = tool._websim_client()
    stale.close()
    assert tool.invoke({"prompt": "fox"}) == CDN
    assert tool._shared_client is not stale
    assert tool._shared_client is not None and not tool._shared_client.closed


def test_an_explicit_client_is_used_as_given(make_tool: ToolFactory, http: aioresponses) -> None:
    http.post(IMAGE_URL, payload={"url": CDN})
    client = WebsimClient(BASE, headers={"x-trace": "t1"})
    tool = make_tool(client=client)
    assert tool.invoke({"prompt": "fox"}) == CDN
    (call,) = http.requests[("POST", URL(IMAGE_URL))]
    assert call.kwargs["headers"]["x-trace"] == "t1"
    assert tool._shared_client is None
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        tool.invoke({"prompt": "fox"})


# --------------------------------------------------------------------------- results


def test_plain_invoke_returns_the_url(make_tool: ToolFactory, http: aioresponses) -> None:
    http.post(IMAGE_URL, payload={"url": CDN})
    assert make_tool().invoke({"prompt": "  a lighthouse at dusk "}) == CDN
    (body,) = sent_bodies(http)
    assert body["prompt"] == "a lighthouse at dusk"
    assert body["aspect_ratio"] == "1:1"
    assert IMAGE_ID.match(body["project_id"])


def _check_tool_message(message: Any, http: aioresponses) -> None:
    assert isinstance(message, ToolMessage)
    (body,) = sent_bodies(http)
    assert message.status == "success"
    assert message.tool_call_id == "call_1"
    assert message.name == "websim_image_generation"
    assert message.content == CDN
    assert message.artifact == {
        "url": CDN,
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
        "model": "flux",
        "project_id": body["project_id"],
    }


def test_tool_call_invoke_returns_a_message_with_the_artifact(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    http.post(IMAGE_URL, payload={"url": CDN})
    args = {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9"}
    _check_tool_message(make_tool().invoke(tool_call(args)), http)


async def test_async_tool_call_invoke(make_tool: ToolFactory, http: aioresponses) -> None:
    http.post(IMAGE_URL, payload={"url": CDN})
    args = {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9"}
    _check_tool_message(await make_tool().ainvoke(tool_call(args)), http)


async def test_return_image_puts_an_image_block_in_the_content(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    looking = make_tool(return_image=True)
    assert make_tool().return_image is False
    args = {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9"}
    message = await looking.ainvoke(tool_call(args))
    assert isinstance(message, ToolMessage)
    assert without_ids(message.content) == [
        {"type": "text", "text": CDN},
        {"type": "image", "url": CDN},
    ]
    assert message.text == CDN  # what a text-only reader (and StrOutputParser) sees
    assert [block["type"] for block in message.content_blocks] == ["text", "image"]
    assert message.artifact is not None and message.artifact["url"] == CDN  # unchanged
    # Invoked with plain arguments, the content itself comes back.
    assert without_ids(looking.invoke({"prompt": "a fox"})) == without_ids(message.content)


def without_ids(content: Any) -> list[dict[str, Any]]:
    # Standard blocks carry a fresh "lc_..." id each.
    return [{k: v for k, v in block.items() if k != "id"} for block in content]


async def test_sync_invoke_runs_on_the_client_loop_even_inside_a_running_loop(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    threads: list[str] = []

    def record(url: URL, **kwargs: Any) -> None:
        threads.append(threading.current_thread().name)

    http.post(IMAGE_URL, payload={"url": CDN}, callback=record, repeat=True)
    tool = make_tool()
    # asyncio.run() would refuse to start here; the client's background loop does not care.
    assert tool.invoke({"prompt": "fox"}) == CDN
    assert threads == ["langchain-websim"]
    assert await tool.ainvoke({"prompt": "fox"}) == CDN
    assert threads[1] == threading.current_thread().name


def test_project_id_fixed_or_fresh(make_tool: ToolFactory, http: aioresponses) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    fresh, fixed = make_tool(), make_tool(project_id="myproj1_abcdefghijkl")
    fresh.invoke({"prompt": "a"})
    fresh.invoke({"prompt": "b"})
    fixed.invoke({"prompt": "c"})
    message = fixed.invoke(tool_call({"prompt": "d"}))
    ids = [body["project_id"] for body in sent_bodies(http)]
    assert all(IMAGE_ID.match(pid) for pid in ids[:2]) and ids[0] != ids[1]
    assert ids[2:] == ["myproj1_abcdefghijkl", "myproj1_abcdefghijkl"]
    assert message.artifact["project_id"] == "myproj1_abcdefghijkl"


# --------------------------------------------------------------------------- failures

CHALLENGE = "<html><title>Just a moment...</title><script src='/cdn-cgi/challenge-platform/x'>"

# (mock response, tool settings, expected message, typed cause, expected attempts)
FAILURES: dict[str, tuple[dict[str, Any], dict[str, Any], str, type[Exception], int]] = {
    "rate-limit-retry-after": (
        {"status": 429, "payload": {"error": "slow down"}, "headers": {"Retry-After": "12"}},
        {"retry_max_delay": 1.0},
        "Image generation failed: rate limited; retry after 12 s.",
        WebsimRateLimitError,
        1,
    ),
    "rate-limit-no-hint": (
        {"status": 429, "payload": {"error": "slow down"}},
        {"max_retries": 1},
        "Image generation failed: rate limited after 2 attempts; wait a minute before retrying.",
        WebsimRateLimitError,
        2,
    ),
    "blocked": (
        {"status": 403, "body": CHALLENGE, "content_type": "text/html"},
        {},
        "Image generation failed: blocked by a challenge page (HTTP 403) before reaching the "
        "image service; retrying now will not help, tell the user image generation is "
        "unavailable at the moment.",
        WebsimBlockedError,
        1,
    ),
    "timeout": (
        {"exception": TimeoutError()},
        {"max_retries": 2, "timeout": 7},
        "Image generation failed: timed out after 3 attempts of 7 s each; try again later.",
        WebsimTimeoutError,
        3,
    ),
    "connection": (
        {"exception": aiohttp.ClientConnectionResetError("Connection reset by peer")},
        {"max_retries": 1},
        "Image generation failed: could not reach the image service after 2 attempts (the "
        "connection to websim.test:80 was reset); try again later.",
        WebsimConnectionError,
        2,
    ),
    "no-url": (
        {"payload": {"image": CDN}},
        {},
        "Image generation failed: the image service sent an unusable answer (the JSON object "
        "has no 'url' field); calling again may work.",
        WebsimResponseError,
        1,
    ),
    "relative-url": (
        {"payload": {"url": "/relative.png"}},
        {},
        "not an absolute http(s) URL",
        WebsimResponseError,
        1,
    ),
    "client-error": (
        {"status": 400, "payload": {"error": "prompt rejected by the safety filter"}},
        {},
        "Image generation failed: the image service rejected the request with HTTP 400: "
        '{"error": "prompt rejected by the safety filter"}; change the prompt or '
        "aspect_ratio before calling again.",
        WebsimAPIError,
        1,
    ),
    "server-error": (
        {"status": 502, "body": "bad gateway", "content_type": "text/plain"},
        {"max_retries": 1},
        "Image generation failed: the image service failed with HTTP 502 after 2 attempts; "
        "try again later.",
        WebsimAPIError,
        2,
    ),
    "redirect": (
        {"status": 302, "headers": {"Location": "https://websim.com/login"}},
        {},
        "base_url is misconfigured",
        WebsimAPIError,
        1,
    ),
}


def _mock_failure(http: aioresponses, response: dict[str, Any]) -> None:
    http.post(IMAGE_URL, repeat=True, **response)


@pytest.mark.parametrize("case", FAILURES)
def test_failure_becomes_an_error_tool_message(
    case: str, make_tool: ToolFactory, http: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    response, settings, expected, _, attempts = FAILURES[case]
    _mock_failure(http, response)
    with caplog.at_level(logging.WARNING, logger="langchain_websim"):
        message = make_tool(**settings).invoke(tool_call({"prompt": "fox"}))
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert expected in message.content
    assert message.artifact is None
    assert len(http.requests[("POST", URL(IMAGE_URL))]) == attempts
    # The model sees the short hint; the log keeps the full diagnostics.
    assert any("websim_image_generation failed: Websim image" in r.message for r in caplog.records)


@pytest.mark.parametrize("case", FAILURES)
async def test_failure_raises_a_chained_tool_exception_when_unhandled(
    case: str, make_tool: ToolFactory, http: aioresponses
) -> None:
    response, settings, expected, cause, attempts = FAILURES[case]
    _mock_failure(http, response)
    tool = make_tool(handle_tool_error=False, **settings)
    with pytest.raises(ToolException) as info:
        await tool.ainvoke({"prompt": "fox"})
    assert expected in str(info.value)
    assert type(info.value.__cause__) is cause
    assert info.value.__cause__.attempts == attempts  # type: ignore[attr-defined]


def test_sync_failure_is_chained_too(make_tool: ToolFactory, http: aioresponses) -> None:
    response, settings, expected, cause, _ = FAILURES["rate-limit-retry-after"]
    _mock_failure(http, response)
    with pytest.raises(ToolException, match=re.escape(expected)) as info:
        make_tool(handle_tool_error=False, **settings).invoke({"prompt": "fox"})
    assert isinstance(info.value.__cause__, cause)
    assert info.value.__cause__.retry_after == 12


def test_an_unclassified_websim_error_keeps_its_own_message() -> None:
    err = WebsimError("Websim image: something new went wrong")
    assert str(_tool_error(err)) == (
        "Image generation failed: Websim image: something new went wrong."
    )


def test_plain_invoke_of_a_failure_returns_the_message(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    _mock_failure(http, FAILURES["blocked"][0])
    result = make_tool().invoke({"prompt": "fox"})
    assert result == FAILURES["blocked"][2]


# --------------------------------------------------------------------------- copy and pickle


def test_pickle_after_use_drops_the_live_client(make_tool: ToolFactory, http: aioresponses) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    tool = make_tool(default_aspect_ratio="16:9", project_id="fixed12_abcdefghijkl")
    tool.invoke({"prompt": "fox"})
    live = tool._shared_client
    assert live is not None
    restored = pickle.loads(pickle.dumps(tool))
    assert restored._shared_client is None
    assert restored.model_dump() == tool.model_dump()
    schema = restored.tool_call_schema.model_json_schema()
    assert schema["properties"]["aspect_ratio"]["default"] == "16:9"
    assert restored.invoke({"prompt": "fox"}) == CDN
    assert restored._shared_client is live  # same settings, same process-wide client
    assert sent_bodies(http)[-1]["aspect_ratio"] == "16:9"


def test_pickle_carries_an_explicit_client_as_its_configuration(make_tool: ToolFactory) -> None:
    client = WebsimClient(BASE, timeout=9, max_retries=0, headers={"x-trace": "t1"})
    tool = make_tool(client=client)
    restored = pickle.loads(pickle.dumps(tool))
    try:
        assert restored.client is not client and restored.client is not None
        assert restored.client.base_url == BASE
        assert (restored.client.timeout, restored.client.max_retries) == (9, 0)
        assert restored.client.settings.headers == {"x-trace": "t1"}
    finally:
        assert restored.client is not None
        restored.client.close()
        client.close()


def test_copies_share_the_client_instead_of_cloning_it(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    explicit = make_tool(client=WebsimClient(BASE))
    shared = make_tool()
    shared.invoke({"prompt": "fox"})
    for original in (explicit, shared):
        for clone in (
            copy.copy(original),
            copy.deepcopy(original),
            original.model_copy(deep=True),
            original.model_copy(update={"project_id": "other12_abcdefghijkl"}),
        ):
            assert clone.client is original.client
            assert clone._shared_client is original._shared_client
            assert clone.invoke({"prompt": "fox"}) == CDN


def test_model_copy_with_a_new_default_ratio_updates_the_schema(
    make_tool: ToolFactory, http: aioresponses
) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    tall = make_tool().model_copy(update={"default_aspect_ratio": "9:16"})
    schema = tall.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert schema["properties"]["aspect_ratio"]["default"] == "9:16"
    tall.invoke({"prompt": "a tower"})
    assert sent_bodies(http)[-1]["aspect_ratio"] == "9:16"
    with pytest.raises(ValueError, match="aspect_ratio must look like"):
        make_tool().model_copy(update={"default_aspect_ratio": "tall"})


def test_the_client_is_not_serialized(make_tool: ToolFactory) -> None:
    tool = make_tool(client=WebsimClient(BASE))
    dumped = tool.model_dump()
    assert "client" not in dumped
    assert dumped["name"] == "websim_image_generation"
