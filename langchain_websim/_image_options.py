"""The ``flux`` image options, declared once: ``IMAGE_OPTIONS``.

Websim's app runtime documents five image parameters beyond the prompt and aspect ratio
(``seed``, ``width``, ``height``, ``transparent``, ``image_inputs``).  Its HTTP API has not
been seen taking them, so each is sent only when set.  Every place that knows about them
reads the one table below:

- ``ImageRequest`` checks them with the entry's ``check`` (``_requests``), and the wire body
  carries them under ``wire`` names, encoded by ``to_wire`` (``ImageOptionValues``);
- ``WebsimImageResponse`` echoes them (it inherits ``ImageOptionValues``);
- ``ChatWebsim`` and ``WebsimImageTool`` have them as fields (``ImageOptionFields``),
  described by ``help`` and checked by the same ``check``;
- the tool's argument schema offers the ones with a ``for_model`` description to the model
  and hides the rest (``tools.py``);
- the ``websim image`` and ``websim batch image`` commands have a flag for each
  (``_cli_common.add_image_flags``), and a batch image line takes each by name;
- the emulator's contract check decodes them with ``from_wire`` and checks them with the
  same ``check`` (``testing/_contract.py``);
- the options table of the image tool's page is ``docs_table()``
  (https://github.com/langchain-websim/langchain-websim/blob/main/docs/image_tool.md).

Python's type checkers need each option's name and type written in the three typed views
below the table (keyword arguments, the request/response dataclass, the LangChain fields):
``check_declarations`` compares them with the table when this module is imported, so an
option added in one place only fails at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from langchain_websim import _wire
from langchain_websim._content import image_url_problem

__all__ = [
    "IMAGE_OPTIONS",
    "IMAGE_OPTION_NAMES",
    "MAX_SEED",
    "MAX_SIDE",
    "MIN_SIDE",
    "CliFlag",
    "ImageOption",
    "ImageOptionFields",
    "ImageOptionValues",
    "ImageOptions",
    "check_declarations",
    "check_image_field",
    "docs_table",
    "validate_image_option",
]

MIN_SIDE, MAX_SIDE = 64, 2048
MAX_SEED = 2**53 - 1
"""The largest integer a JSON number keeps exactly in JavaScript, which reads Websim's bodies."""


# --------------------------------------------------------------------------- the checks


def _whole_number(name: str, value: Any, low: int, high: int, hint: str) -> int:
    # bool is an int subclass: True would otherwise be sent as seed 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number ({hint}), got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be {hint}, got {value}")
    return value


def validate_seed(seed: Any) -> int:
    return _whole_number("seed", seed, 0, MAX_SEED, f"0 to {MAX_SEED}")


def _side(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        return _whole_number(name, value, MIN_SIDE, MAX_SIDE, f"{MIN_SIDE} to {MAX_SIDE} pixels")

    return check


def validate_transparent(transparent: Any) -> bool:
    if not isinstance(transparent, bool):
        raise TypeError(f"transparent must be True or False, got {transparent!r}")
    return transparent


def validate_image_inputs(image_inputs: Any) -> tuple[str, ...]:
    """A non-empty list of http(s) or ``data:image/...`` URLs, returned as a tuple."""
    if isinstance(image_inputs, (str, bytes)) or not isinstance(image_inputs, Sequence):
        raise TypeError(
            f"image_inputs must be a list of image URLs (http(s) or data:image/...), "
            f"got {_wire.excerpt(repr(image_inputs), 80)}"
        )
    if not image_inputs:
        raise ValueError("image_inputs is empty; give at least one image URL, or leave it unset")
    urls: list[str] = []
    for i, url in enumerate(image_inputs):
        value = url.strip() if isinstance(url, str) else url
        if not isinstance(value, str):
            raise ValueError(
                f"image_inputs[{i}] must be an http(s) URL or a data:image/... URL, "
                f"got {_wire.excerpt(repr(url), 80)}"
            )
        problem = image_url_problem(value)
        if problem is not None:
            raise ValueError(
                f"image_inputs[{i}] must be an http(s) URL or a data:image/... URL: {problem}"
            )
        urls.append(value)
    return tuple(urls)


def _same(value: Any) -> Any:
    return value


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class CliFlag:
    """How ``websim image`` takes an option: ``--flag METAVAR`` (a switch for a bool option,
    repeatable for a list option: the kind follows the entry's ``example``)."""

    flag: str
    metavar: str | None = None


@dataclass(frozen=True, slots=True)
class ImageOption:
    """One image option: everything the package says or does about it."""

    name: str
    """The Python name: field, keyword argument, response attribute, metadata key."""
    wire: str
    """The field of the JSON body that carries it."""
    check: Callable[[Any], Any]
    """Validates a set value (``TypeError``/``ValueError`` naming the option) and returns
    the form that is kept (a list option as a tuple)."""
    values: str
    """The values it takes, in words (docs, ``--help``)."""
    help: str
    """What it does, for people: field descriptions, docs, ``--help``."""
    example: Any
    """A valid value, for the docs and the tests every option goes through."""
    flag: CliFlag
    for_model: str | None = None
    """The description the model reads in the tool's schema; ``None``: the application's
    alone, hidden from the model."""
    to_wire: Callable[[Any], Any] = _same
    """The checked value as the JSON body carries it."""
    from_wire: Callable[[Any], Any] = _same
    """The inverse, for the emulator: a body's value back in Python's form (``ValueError``
    naming the expected shape when it has another)."""

    def validate(self, value: Any) -> Any:
        """``check`` for a set value; ``None`` (not set) passes as it is."""
        return None if value is None else self.check(value)


def _pixels(name: str, *, example: int) -> ImageOption:
    """A side of the image in pixels (``width``, ``height``)."""
    return ImageOption(
        name=name,
        wire=name,
        check=_side(name),
        values=f"{MIN_SIDE} to {MAX_SIDE} pixels",
        help=f"Image {name} in pixels.",
        example=example,
        flag=CliFlag(f"--{name}", "PX"),
    )


IMAGE_OPTIONS: tuple[ImageOption, ...] = (
    ImageOption(
        name="seed",
        wire="seed",
        check=validate_seed,
        values="a whole number, 0 to 2⁵³ \N{MINUS SIGN} 1",
        help="The same seed, prompt and options give the same image.",
        example=42,
        flag=CliFlag("--seed", "N"),
        for_model=(
            "Optional whole number (0 or more) that makes the image reproducible: the same "
            "prompt with the same seed gives the same picture. Give one when the user wants "
            "to repeat or slightly adjust an earlier image (reuse its seed), otherwise leave "
            "it out for a new one."
        ),
    ),
    _pixels("width", example=512),
    _pixels("height", example=384),
    ImageOption(
        name="transparent",
        wire="transparent",
        check=validate_transparent,
        values="true or false",
        help="True asks for a transparent background (a PNG with an alpha channel).",
        example=True,
        flag=CliFlag("--transparent"),
        for_model=(
            "Set to true for a transparent background, for logos, icons, stickers and "
            "sprites that will be placed on something else. Leave it out for an ordinary "
            "picture."
        ),
    ),
    ImageOption(
        name="image_inputs",
        wire="image_inputs",
        check=validate_image_inputs,
        values='http(s) or data:image/... URLs, sent as [{"url": ...}]',
        help="Reference images to edit or vary.",
        example=["https://example.com/reference.png"],
        flag=CliFlag("--image-input", "URL_OR_FILE"),
        # The runtime takes reference images as objects, leaving room for more fields.
        to_wire=_wire.url_objects,
        from_wire=_wire.urls_of_objects,
    ),
)

IMAGE_OPTION_NAMES: tuple[str, ...] = tuple(option.name for option in IMAGE_OPTIONS)
_BY_NAME: dict[str, ImageOption] = {option.name: option for option in IMAGE_OPTIONS}


def validate_image_option(name: str, value: Any) -> Any:
    """Check one image option by name; ``None`` (not set) passes as it is."""
    option = _BY_NAME.get(name)
    if option is None:
        raise TypeError(
            f"unknown image option {name!r}; the options are {', '.join(IMAGE_OPTION_NAMES)}"
        )
    return option.validate(value)


def docs_table() -> str:
    """The options table of the image tool's documentation page (a test keeps them equal)."""
    rows = ["| Option | Values | What it does | Who sets it |", "| :--- | :--- | :--- | :--- |"]
    for option in IMAGE_OPTIONS:
        who = (
            "the model (offered in the schema) or the tool's setting"
            if option.for_model
            else "the application: tool setting or per-call argument"
        )
        rows.append(f"| `{option.name}` | {option.values} | {option.help} | {who} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- typed views
# Each names every option with its type, in the table's order (``check_declarations``).


class ImageOptions(TypedDict, total=False):
    """The image options as keyword arguments (``WebsimClient.generate_image``)."""

    seed: int | None
    width: int | None
    height: int | None
    transparent: bool | None
    image_inputs: Sequence[str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOptionValues:
    """The image options of one request or response (``None``: not sent)."""

    seed: int | None = None
    width: int | None = None
    height: int | None = None
    transparent: bool | None = None
    image_inputs: Sequence[str] | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The options that are set, by name (a list option as a list)."""
        values = {name: getattr(self, name) for name in IMAGE_OPTION_NAMES}
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in values.items()
            if value is not None
        }

    def wire_options(self) -> dict[str, Any]:
        """The options that are set, as the JSON body carries them."""
        return {
            option.wire: option.to_wire(value)
            for option in IMAGE_OPTIONS
            if (value := getattr(self, option.name)) is not None
        }


def check_image_field(value: Any, info: ValidationInfo) -> Any:
    """A pydantic "before" validator for an image option field named like the option.

    It runs before pydantic's own coercion, which would turn True into seed 1 and "7" into
    7, and raises ``ValueError`` only: pydantic passes a ``TypeError`` through unwrapped,
    which would escape a tool's validation-error handling and end an agent's loop.
    """
    assert info.field_name is not None
    try:
        checked = validate_image_option(info.field_name, value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return list(checked) if isinstance(checked, tuple) else checked


def _described(name: str) -> Any:
    option = _BY_NAME[name]
    return Field(default=None, description=f"{option.help} Values: {option.values}.")


class ImageOptionFields(BaseModel):
    """The image options as fields of ``ChatWebsim`` and ``WebsimImageTool`` (``None``: not
    sent); the defaults of every image call, overridable per call.  See ``IMAGE_OPTIONS``."""

    seed: int | None = _described("seed")
    width: int | None = _described("width")
    height: int | None = _described("height")
    transparent: bool | None = _described("transparent")
    image_inputs: list[str] | None = _described("image_inputs")

    _check_image_option = field_validator(*IMAGE_OPTION_NAMES, mode="before")(check_image_field)

    def image_options(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The fields, each replaced by the value of the same name in ``overrides``."""
        return {name: overrides.get(name, getattr(self, name)) for name in IMAGE_OPTION_NAMES}


def check_declarations() -> None:
    """Raise ``TypeError`` when a typed view and the table name different options."""
    views = {
        "ImageOptions": tuple(ImageOptions.__annotations__),
        "ImageOptionValues": tuple(f.name for f in fields(ImageOptionValues)),
        "ImageOptionFields": tuple(ImageOptionFields.model_fields),
    }
    for view, names in views.items():
        if names != IMAGE_OPTION_NAMES:
            raise TypeError(
                f"{view} declares the image options {names}, IMAGE_OPTIONS {IMAGE_OPTION_NAMES}: "
                "an option is one table entry plus its name and type in each typed view"
            )


check_declarations()
