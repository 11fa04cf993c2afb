"""The ``flux`` image options as settings of ``ChatWebsim`` and ``WebsimImageTool``.

Both classes inherit ``ImageOptionFields``: the same five fields, checked by the same
functions as ``ImageRequest`` (so a bad value is refused with the same words wherever it is
given), used as the defaults of every image call and overridable per call.  Websim's app
runtime documents these options; its HTTP API has not been seen taking them, so each is
sent only when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage
from pydantic import BaseModel, ValidationInfo, field_validator

from langchain_websim._messages import answer_metadata, image_content
from langchain_websim._requests import IMAGE_OPTIONS, validate_image_option
from langchain_websim._responses import WebsimImageResponse

__all__ = ["IMAGE_OPTIONS", "ImageOptionFields", "check_image_field", "image_message"]


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


class ImageOptionFields(BaseModel):
    """``seed``, ``width``, ``height``, ``transparent``, ``image_inputs``; ``None``: not sent."""

    seed: int | None = None
    """Same seed, prompt and options: the same image (a whole number, 0 to 2**53 - 1)."""
    width: int | None = None
    """Image width in pixels, 64-2048."""
    height: int | None = None
    """Image height in pixels, 64-2048."""
    transparent: bool | None = None
    """``True`` asks for a transparent background (a PNG with an alpha channel)."""
    image_inputs: list[str] | None = None
    """Reference images to edit or vary: http(s) or ``data:image/...;base64,...`` URLs."""

    _check_image_option = field_validator(*IMAGE_OPTIONS, mode="before")(check_image_field)

    def image_options(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The fields, each replaced by the value of the same name in ``overrides``."""
        return {name: overrides.get(name, getattr(self, name)) for name in IMAGE_OPTIONS}


def image_message(model: str, image: WebsimImageResponse) -> AIMessage:
    """``ChatWebsim``'s answer for a generated image; the options sent are echoed."""
    metadata = answer_metadata(model, image.project_id, image.attempts, image.rate_wait)
    metadata.update(image_url=image.url, aspect_ratio=image.aspect_ratio, **image.options)
    return AIMessage(content=image_content(image.url), response_metadata=metadata)
