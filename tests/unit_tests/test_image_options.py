"""The image options (seed, width, height, transparent, image_inputs) without a network: on
the wire only when set, refused before anything is sent, echoed in every result.

HTTP is mocked with aioresponses; the emulator's end of it is tested in the integration
tests.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aioresponses import aioresponses
from langchain_core.messages import ToolCall
from pydantic import ValidationError
from yarl import URL

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageResponse, WebsimImageTool
from langchain_websim._image_options import MAX_SEED
from langchain_websim._requests import ImageRequest

BASE = "http://websim.test"
IMAGE_URL = BASE + "/api/v1/inference/run_image_generation"
CDN = "https://cdn.websim.test/img/abc.png"
DATA_URL = "data:image/png;base64,iVBORw0KGgo="
PROJECT = "abcdefg_0123456789ab"


@pytest.fixture
def client() -> Iterator[WebsimClient]:
    with WebsimClient(BASE, max_retries=0) as made:
        yield made


def sent(mocked: aioresponses) -> list[dict[str, Any]]:
    calls = mocked.requests.get(("POST", URL(IMAGE_URL)), [])
    return [json.loads(call.kwargs["data"]) for call in calls]


# --------------------------------------------------------------------------- the wire body


def test_a_plain_request_sends_only_the_three_known_fields() -> None:
    body = json.loads(ImageRequest("a fox", "16:9", PROJECT).body())
    assert body == {"project_id": PROJECT, "prompt": "a fox", "aspect_ratio": "16:9"}
    assert ImageRequest("a fox").options == {}


@pytest.mark.parametrize(
    ("option", "value", "on_the_wire"),
    [
        ("seed", 0, 0),
        ("seed", MAX_SEED, MAX_SEED),
        ("width", 64, 64),
        ("height", 2048, 2048),
        ("transparent", True, True),
        ("transparent", False, False),
        ("image_inputs", [CDN], [{"url": CDN}]),
        ("image_inputs", (f" {CDN} ", DATA_URL), [{"url": CDN}, {"url": DATA_URL}]),
    ],
)
def test_each_option_goes_on_the_wire_only_when_set(
    option: str, value: Any, on_the_wire: Any
) -> None:
    request = ImageRequest("a fox", "1:1", PROJECT, **{option: value})
    raw = request.body()
    body = json.loads(raw)
    assert body == {
        "project_id": PROJECT,
        "prompt": "a fox",
        "aspect_ratio": "1:1",
        option: on_the_wire,
    }
    # The known fields keep their place; an option follows them.
    assert raw.startswith(b'{"project_id": "abcdefg_0123456789ab", "prompt": "a fox"')
    expected = on_the_wire if option != "image_inputs" else [u["url"] for u in on_the_wire]
    assert request.options == {option: expected}


def test_all_options_together_in_a_fixed_order() -> None:
    request = ImageRequest(
        "a fox", "1:1", PROJECT, image_inputs=[CDN], transparent=True, height=80, width=90, seed=3
    )
    assert list(json.loads(request.body())) == [
        "project_id", "prompt", "aspect_ratio", "seed", "width", "height", "transparent",
        "image_inputs",
    ]  # fmt: skip
    assert isinstance(request.image_inputs, tuple)  # a frozen request holds no mutable list


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"seed": -1}, ValueError, f"seed must be 0 to {MAX_SEED}, got -1"),
        ({"seed": MAX_SEED + 1}, ValueError, "seed must be 0 to"),
        ({"seed": True}, TypeError, "seed must be a whole number"),
        ({"seed": 1.0}, TypeError, "seed must be a whole number"),
        ({"seed": "7"}, TypeError, "seed must be a whole number"),
        ({"width": 63}, ValueError, "width must be 64 to 2048 pixels, got 63"),
        ({"height": 2049}, ValueError, "height must be 64 to 2048 pixels, got 2049"),
        ({"width": 512.0}, TypeError, "width must be a whole number"),
        ({"transparent": 1}, TypeError, "transparent must be True or False, got 1"),
        ({"transparent": "true"}, TypeError, "transparent must be True or False"),
        ({"image_inputs": CDN}, TypeError, "image_inputs must be a list of image URLs"),
        ({"image_inputs": []}, ValueError, "image_inputs is empty"),
        ({"image_inputs": ["ftp://x.test/a.png"]}, ValueError, "image_inputs[0] must be an http"),
        ({"image_inputs": [CDN, "/local.png"]}, ValueError, "image_inputs[1] must be an http"),
        ({"image_inputs": ["data:text/plain,hi"]}, ValueError, "data:image/... URL"),
        ({"image_inputs": ["data:image/png;base64,"]}, ValueError, "image_inputs[0]"),
        ({"image_inputs": [None]}, ValueError, "image_inputs[0]"),
    ],
)
async def test_bad_options_are_refused_before_anything_is_sent(
    http: aioresponses,
    client: WebsimClient,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        ImageRequest("a fox", **options)
    assert message in str(caught.value)
    with pytest.raises(error, match=re.escape(message)):
        await client.agenerate_image("a fox", **options)
    with pytest.raises(error, match=re.escape(message)):
        client.generate_image("a fox", **options)
    assert sent(http) == []


# --------------------------------------------------------------------------- the client


async def test_client_sends_the_options_and_echoes_them(
    http: aioresponses, client: WebsimClient
) -> None:
    http.post(IMAGE_URL, payload={"url": CDN})
    image = await client.agenerate_image("a fox", seed=9, width=640, transparent=True)
    assert sent(http)[0]["seed"] == 9
    assert (image.seed, image.width, image.height, image.transparent) == (9, 640, None, True)
    assert image.image_inputs is None
    assert image.options == {"seed": 9, "width": 640, "transparent": True}
    assert image.client is client
    http.post(IMAGE_URL, payload={"url": CDN})
    edit = await client.agenerate_image("a fox", image_inputs=[DATA_URL])
    assert edit.image_inputs == (DATA_URL,) and edit.options == {"image_inputs": [DATA_URL]}
    assert hash(edit) != hash(image)  # frozen and hashable, like a response without options


def test_an_image_response_pickles_without_its_client(client: WebsimClient) -> None:
    image = WebsimImageResponse(
        CDN, "a fox", "1:1", PROJECT, 1, 0.1, seed=4, image_inputs=(CDN,), client=client
    )
    restored = pickle.loads(pickle.dumps(image))
    assert restored == image  # the client is not part of equality
    assert restored.client is None and restored.seed == 4 and restored.image_inputs == (CDN,)
    assert "client" not in repr(image)


# --------------------------------------------------------------------------- ChatWebsim


async def test_chat_model_fields_and_per_call_options(http: aioresponses) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    llm = ChatWebsim(model="flux", base_url=BASE, seed=1, width=512, image_inputs=[DATA_URL])
    try:
        first = await llm.ainvoke("a fox")
        second = await llm.ainvoke("a fox", seed=2, transparent=True, image_inputs=None)
    finally:
        llm._websim_client().close()
    plain = {"prompt": "a fox", "aspect_ratio": "1:1"}
    bodies = [{k: v for k, v in body.items() if k != "project_id"} for body in sent(http)]
    assert bodies == [
        {**plain, "seed": 1, "width": 512, "image_inputs": [{"url": DATA_URL}]},
        {**plain, "seed": 2, "width": 512, "transparent": True},  # None per call: not sent
    ]
    meta = second.response_metadata
    assert (meta["seed"], meta["width"], meta["transparent"]) == (2, 512, True)
    assert "image_inputs" not in meta and "height" not in meta
    assert first.response_metadata["image_inputs"] == [DATA_URL]


def test_chat_model_refuses_bad_option_fields_with_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="seed must be a whole number"):
        ChatWebsim(model="flux", seed=True)
    with pytest.raises(ValidationError, match="height must be 64 to 2048"):
        ChatWebsim(model="flux", height=4096)
    with pytest.raises(ValidationError, match="image_inputs must be a list"):
        ChatWebsim(model="flux", image_inputs=CDN)


async def test_chat_model_refuses_image_options_for_chat_and_bad_per_call_values(
    http: aioresponses,
) -> None:
    llm = ChatWebsim(base_url=BASE)
    with pytest.raises(ValueError, match="seed=, transparent= apply to image models"):
        await llm.ainvoke("hi", seed=3, transparent=True)
    with pytest.raises(ValueError, match="width must be 64 to 2048"):
        await llm.ainvoke("a fox", model="flux", width=10)
    with pytest.raises(TypeError, match=r"unexpected call arguments: dpi .*image_inputs"):
        await llm.ainvoke("a fox", model="flux", dpi=300)
    assert http.requests == {}


# --------------------------------------------------------------------------- the tool


async def test_tool_takes_seed_and_transparent_from_the_model_and_the_rest_from_the_app(
    http: aioresponses,
) -> None:
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    tool = WebsimImageTool(base_url=BASE, width=300, height=200, seed=5)
    try:
        by_model = await tool.ainvoke(
            ToolCall(
                name=tool.name,
                args={"prompt": "a logo", "seed": 11, "transparent": True},
                id="call_1",
                type="tool_call",
            )
        )
        by_app = await tool.ainvoke({"prompt": "a logo", "width": 800, "image_inputs": [CDN]})
    finally:
        tool._websim_client().close()
    first, second = sent(http)
    # The model's seed wins over the tool's; the tool's size applies.
    assert {k: first[k] for k in ("seed", "width", "height", "transparent")} == {
        "seed": 11,
        "width": 300,
        "height": 200,
        "transparent": True,
    }
    assert "image_inputs" not in first
    # Per call, the application overrides the tool's width and adds reference images.
    assert (second["seed"], second["width"], second["height"]) == (5, 800, 200)
    assert second["image_inputs"] == [{"url": CDN}]
    assert "transparent" not in second
    assert by_model.artifact == {
        "url": CDN,
        "prompt": "a logo",
        "aspect_ratio": "1:1",
        "model": "flux",
        "project_id": first["project_id"],
        "seed": 11,
        "width": 300,
        "height": 200,
        "transparent": True,
    }
    assert by_app == CDN


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"seed": -5}, "Invalid arguments: seed must be 0 to"),
        ({"seed": True}, "Invalid arguments: seed must be a whole number"),
        ({"transparent": "yes"}, "Invalid arguments: transparent must be True or False"),
        ({"image_inputs": ["file:///etc/passwd"]}, "image_inputs[0] must be an http(s) URL"),
    ],
)
async def test_tool_reports_bad_option_arguments_to_the_model(
    http: aioresponses, args: dict[str, Any], message: str
) -> None:
    tool = WebsimImageTool(base_url=BASE)
    call = ToolCall(name=tool.name, args={"prompt": "a logo", **args}, id="c", type="tool_call")
    reply = await tool.ainvoke(call)
    assert reply.status == "error"
    assert message in reply.content
    assert http.requests == {}


def test_tool_refuses_bad_option_settings() -> None:
    with pytest.raises(ValidationError, match="width must be 64 to 2048"):
        WebsimImageTool(width=32)
    with pytest.raises(ValidationError, match="image_inputs is empty"):
        WebsimImageTool(image_inputs=[])
