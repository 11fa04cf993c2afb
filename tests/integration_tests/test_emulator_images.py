"""The emulator's pictures: real PNGs of the requested size, alpha when transparent,
deterministic per seed; and its checks of the image options."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from langchain_websim import WebsimClient, _requests, _wire
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.emulator_http import image_request, post
from tests.png import read_png


@pytest.mark.parametrize(
    ("options", "size"),
    [
        ({}, (1024, 1024)),
        ({"aspect_ratio": "16:9"}, (1024, 576)),
        ({"aspect_ratio": "9:16"}, (576, 1024)),
        ({"width": 640, "height": 200}, (640, 200)),
        ({"width": 64, "height": 2048, "aspect_ratio": "16:9"}, (64, 2048)),
        ({"width": 320, "aspect_ratio": "16:9"}, (320, 180)),
        ({"height": 300, "aspect_ratio": "4:3"}, (400, 300)),
    ],
)
async def test_pictures_have_the_requested_size(
    make_client: Any, options: dict[str, Any], size: tuple[int, int]
) -> None:
    client: WebsimClient = make_client()
    image = await client.agenerate_image("a lighthouse", **options)
    png = read_png(await client.adownload(image.url))
    assert (png.width, png.height) == size
    assert png.channels == 3  # no alpha unless asked for
    assert image.url.endswith(f"-{size[0]}x{size[1]}.png")


async def test_transparent_pictures_have_an_alpha_channel(make_client: Any) -> None:
    client: WebsimClient = make_client()
    image = await client.agenerate_image("an icon", transparent=True, width=128, height=128)
    png = read_png(await client.adownload(image.url))
    assert (png.width, png.height, png.channels) == (128, 128, 4)
    alphas = {png.pixel(x, y)[3] for y in range(png.height) for x in range(png.width)}
    # A transparent background around an opaque shape, nothing in between.
    assert alphas == {0, 255}
    assert png.pixel(0, 0)[3] == 0


async def test_the_same_seed_draws_the_same_picture(
    make_client: Any, emulator: WebsimEmulator
) -> None:
    client: WebsimClient = make_client()
    first = await client.agenerate_image("a fox", seed=42, width=200, height=100)
    again = await client.agenerate_image("a fox", seed=42, width=200, height=100)
    other = await client.agenerate_image("a fox", seed=43, width=200, height=100)
    assert first.url == again.url != other.url
    first_png = await client.adownload(first.url)
    assert await client.adownload(again.url) == first_png
    assert await client.adownload(other.url) != first_png
    assert [r.body["seed"] for r in emulator.requests_for("image")] == [42, 42, 43]


async def test_image_inputs_are_accepted_and_change_the_picture(
    make_client: Any, emulator: WebsimEmulator
) -> None:
    client: WebsimClient = make_client()
    plain = await client.agenerate_image("a fox")
    edited = await client.agenerate_image(
        "a fox", image_inputs=["https://cdn.example/ref.png", "data:image/png;base64,iVBORw0KGgo="]
    )
    assert plain.url != edited.url
    (_, request) = emulator.requests_for("image")
    assert request.violations == []
    assert request.body["image_inputs"] == [
        {"url": "https://cdn.example/ref.png"},
        {"url": "data:image/png;base64,iVBORw0KGgo="},
    ]


async def test_image_urls_serve_head_and_refuse_other_methods_and_sizes(
    emulator: WebsimEmulator, http: aiohttp.ClientSession
) -> None:
    base = emulator.base_url + "/images/abc"
    async with http.head(base + "-10x20.png") as resp:
        assert (resp.status, resp.content_type) == (200, "image/png")
    async with http.post(base + "-10x20.png") as resp:
        assert (resp.status, resp.headers["Allow"]) == (405, "GET, HEAD")
    for too_big in ("-2049x10.png", "-0x10.png"):
        async with http.get(base + too_big) as resp:
            assert resp.status == 404
    # A bare name (a URL from an older emulator, or made up) still serves a picture.
    async with http.get(base + ".png") as resp:
        png = read_png(await resp.read())
    assert (png.width, png.height) == (1024, 1024)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("seed", -1, "seed must be 0 to"),
        ("seed", True, "seed must be a whole number"),
        ("seed", 1.5, "seed must be a whole number"),
        ("seed", None, "'seed' is null; leave the field out"),
        ("width", 63, "width must be 64 to 2048 pixels, got 63"),
        ("height", 2049, "height must be 64 to 2048 pixels, got 2049"),
        ("height", "512", "height must be a whole number"),
        ("transparent", "yes", "transparent must be True or False"),
        ("image_inputs", [], "image_inputs is empty"),
        ("image_inputs", ["https://x.test/a.png"], 'must be a list of {"url": ...} objects'),
        ("image_inputs", [{"url": "ftp://x.test/a.png"}], "image_inputs[0] must be an http(s)"),
        ("image_inputs", [{"url": "https://x.test/a", "w": 1}], 'must be a list of {"url"'),
    ],
)
async def test_bad_image_options_get_400(
    emulator: WebsimEmulator, http: aiohttp.ClientSession, field: str, value: Any, expected: str
) -> None:
    url, headers, _ = image_request(emulator)
    payload = {
        "project_id": _requests.new_project_id(_wire.IMAGE),
        "prompt": "a cat",
        "aspect_ratio": "1:1",
        field: value,
    }
    status, _, raw = await post(http, (url, headers, json.dumps(payload).encode()))
    assert status == 400
    violations = json.loads(raw)["violations"]
    assert any(expected in v for v in violations), violations


async def test_lenient_emulator_draws_despite_bad_sides() -> None:
    # Out-of-range sides are recorded as violations but do not break the answer.
    async with WebsimEmulator(strict=False) as emu, aiohttp.ClientSession() as http:
        url, headers, _ = image_request(emu)
        body = {"project_id": "p", "prompt": "x", "aspect_ratio": "2:1", "width": 99999}
        status, _, raw = await post(http, (url, headers, json.dumps(body).encode()))
        assert status == 200
        async with http.get(json.loads(raw)["url"]) as resp:
            png = read_png(await resp.read())
    assert (png.width, png.height) == (1024, 512)
    assert any("width must be 64 to 2048" in v for v in emu.requests[0].violations)
