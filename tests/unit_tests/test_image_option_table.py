"""Every image option is declared once (``IMAGE_OPTIONS``) and every surface follows it.

Each test names one place that takes image options and compares the options it takes with
the table, so an option added in one place only (a field on the request, a flag, a tool
argument, a key the emulator accepts, a row of the docs) fails here, and an option added
to the table reaches every place with nothing else written.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import ChatWebsim, WebsimImageTool, _wire
from langchain_websim import _image_options as options_module
from langchain_websim._answers import image_answer, image_artifact
from langchain_websim._image_options import (
    IMAGE_OPTION_NAMES,
    IMAGE_OPTIONS,
    ImageOption,
    ImageOptionFields,
    ImageOptions,
    check_declarations,
    docs_table,
)
from langchain_websim._requests import ImageRequest
from langchain_websim._responses import WebsimImageResponse
from langchain_websim.cli import build_parser
from langchain_websim.testing import _contract
from langchain_websim.tools import WebsimImageInput

DOCS = Path(__file__).resolve().parents[2] / "docs" / "image_tool.md"
PROJECT = "abcdefg_0123456789ab"
NAMES = set(IMAGE_OPTION_NAMES)
BY_ID = [pytest.param(option, id=option.name) for option in IMAGE_OPTIONS]


def _kept(option: ImageOption) -> Any:
    """The example as a request keeps it (a list option as a tuple)."""
    return option.check(option.example)


def _listed(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def test_the_typed_views_name_the_options_of_the_table() -> None:
    check_declarations()
    assert tuple(ImageOptions.__annotations__) == IMAGE_OPTION_NAMES
    assert tuple(ImageOptionFields.model_fields) == IMAGE_OPTION_NAMES


def test_an_option_missing_from_a_typed_view_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(options_module, "IMAGE_OPTION_NAMES", (*IMAGE_OPTION_NAMES, "quality"))
    with pytest.raises(TypeError, match=r"ImageOptions declares the image options .*quality"):
        check_declarations()


def test_the_table_is_consistent() -> None:
    assert len(NAMES) == len(IMAGE_OPTIONS)
    assert len({option.wire for option in IMAGE_OPTIONS}) == len(IMAGE_OPTIONS)
    assert len({option.flag.flag for option in IMAGE_OPTIONS}) == len(IMAGE_OPTIONS)
    for option in IMAGE_OPTIONS:
        assert option.help.endswith(".") and option.values
        assert option.validate(None) is None
        # from_wire undoes to_wire: the emulator reads back what the client sends.
        kept = _kept(option)
        assert option.from_wire(option.to_wire(kept)) == _listed(kept)


def test_the_request_and_the_response_carry_exactly_the_table() -> None:
    own = {"prompt", "aspect_ratio", "project_id", "endpoint"}
    assert {f.name for f in fields(ImageRequest)} - own == NAMES
    response_own = {"url", "prompt", "aspect_ratio", "project_id", "attempts", "elapsed"}
    response_own |= {"rate_wait", "client"}
    assert {f.name for f in fields(WebsimImageResponse)} - response_own == NAMES


@pytest.mark.parametrize("option", BY_ID)
def test_each_option_goes_on_the_wire_under_its_wire_name(option: ImageOption) -> None:
    request = ImageRequest("a fox", "1:1", PROJECT, **{option.name: option.example})
    body = json.loads(request.body())
    assert body == {
        "project_id": PROJECT,
        "prompt": "a fox",
        "aspect_ratio": "1:1",
        option.wire: option.to_wire(_kept(option)),
    }
    assert request.options == {option.name: _listed(_kept(option))}
    # The emulator's contract check accepts what the client sends, and only that.
    assert _contract.check_body(request.endpoint, body, require_project_id_format=True) == []


def test_the_emulator_refuses_a_field_outside_the_table() -> None:
    plain = json.loads(ImageRequest("a fox", "1:1", PROJECT).body())
    problems = _contract.check_body(_wire.IMAGE, {**plain, "quality": 1}, True)
    assert problems == ["unexpected field(s) 'quality'"]


@pytest.mark.parametrize("option", BY_ID)
def test_each_option_is_checked_with_the_same_words_everywhere(option: ImageOption) -> None:
    bad = object()
    with pytest.raises((TypeError, ValueError)) as direct:
        option.check(bad)
    words = str(direct.value)
    assert option.name in words
    with pytest.raises((TypeError, ValueError), match=option.name):
        ImageRequest("a fox", **{option.name: bad})
    for owner in (ChatWebsim, WebsimImageTool, WebsimImageInput):
        with pytest.raises(ValueError, match=option.name) as caught:
            owner(
                **({"prompt": "a fox"} if owner is WebsimImageInput else {}), **{option.name: bad}
            )
        assert words in str(caught.value)
    problems = _contract.check_body(
        _wire.IMAGE,
        {"project_id": PROJECT, "prompt": "x", "aspect_ratio": "1:1", option.wire: bad},
        True,
    )
    assert len(problems) == 1 and option.name in problems[0]


@pytest.mark.parametrize("option", BY_ID)
def test_the_langchain_classes_take_each_option_as_a_field(option: ImageOption) -> None:
    for owner in (ChatWebsim, WebsimImageTool):
        assert set(owner.model_fields) >= NAMES
        made = owner(**{option.name: option.example})
        assert getattr(made, option.name) == _listed(_kept(option))
        assert made.image_options({}) == {
            name: (_listed(_kept(option)) if name == option.name else None)
            for name in IMAGE_OPTION_NAMES
        }
    assert option.help in (ChatWebsim.model_fields[option.name].description or "")


def test_the_tool_schema_offers_the_model_exactly_the_options_it_describes() -> None:
    tool = WebsimImageTool()
    assert set(WebsimImageInput.model_fields) == {"prompt", "aspect_ratio"} | NAMES
    offered = set(tool.tool_call_schema.model_json_schema()["properties"])
    for_model = {option.name for option in IMAGE_OPTIONS if option.for_model}
    assert offered == {"prompt", "aspect_ratio"} | for_model
    properties = tool.tool_call_schema.model_json_schema()["properties"]
    for option in IMAGE_OPTIONS:
        if option.for_model:
            assert properties[option.name]["description"] == option.for_model


def test_websim_image_has_a_flag_for_each_option_and_no_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["image", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    flags = set(re.findall(r"\[(--[a-z-]+)", usage))
    own = {"--base-url", "--emulator", "--json", "--aspect-ratio", "--output"}
    assert flags - own == {option.flag.flag for option in IMAGE_OPTIONS}


@pytest.mark.parametrize("option", BY_ID)
def test_each_flag_gives_its_option(option: ImageOption) -> None:
    if isinstance(option.example, bool):
        words = [option.flag.flag]
    elif isinstance(option.example, list):
        words = [word for item in option.example for word in (option.flag.flag, item)]
    else:
        words = [option.flag.flag, str(option.example)]
    args = build_parser().parse_args(["image", *words, "a fox"])
    assert getattr(args, option.name) == option.example


@pytest.mark.parametrize("option", BY_ID)
def test_each_option_is_echoed_in_every_result(option: ImageOption) -> None:
    request = ImageRequest("a fox", project_id=PROJECT, **{option.name: option.example})
    image = WebsimImageResponse.for_request(request, "https://cdn.test/a.png", (1, 0.1, 0.0), None)
    echoed = _listed(_kept(option))
    assert getattr(image, option.name) == _kept(option)
    assert image_artifact(image)[option.name] == echoed
    assert image_answer("flux", image).response_metadata[option.name] == echoed


def test_the_docs_table_is_the_table() -> None:
    page = DOCS.read_text(encoding="utf-8")
    assert docs_table() in page, "regenerate the table with _image_options.docs_table()"
    for option in IMAGE_OPTIONS:
        assert f"| `{option.name}` |" in docs_table()
