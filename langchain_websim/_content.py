"""What a wire message's content parts may hold: text, and images as http(s) or data URLs.

Shared by the client (``ChatRequest`` checks every part before anything is sent), the image
options (``image_inputs``) and the emulator, so the client and the stand-in service refuse
the same parts with the same words.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

from langchain_websim import _wire

__all__ = ["IMAGE_MIME_TYPES", "MAX_IMAGE_BYTES", "PART_TYPES", "image_url_problem", "part_problem"]


IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""The image types a data URL may carry (what public clients send and vision models read)."""
MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""The largest image, decoded, one data URL may carry."""
PART_TYPES = ("text", "image_url")

# Base64 text longer than this decodes to more than the limit whatever its padding, so it
# is refused before any decoding.
_MAX_BASE64_CHARS = -(-MAX_IMAGE_BYTES // 3) * 4


def part_problem(part: Any, role: str) -> str | None:
    """What is wrong with one wire content part of a ``role`` message (``None``: nothing).

    Shared with the emulator, so the client and the stand-in service refuse the same parts.
    """
    if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
        return (
            "must be a dict with a string 'type' (e.g. {'type': 'text', 'text': ...}), "
            f"got {_wire.excerpt(repr(part), 80)}"
        )
    kind = part["type"]
    if kind == "text":
        return None if isinstance(part.get("text"), str) else "a text part without a string 'text'"
    if kind != "image_url":
        return f"has type {kind!r}; Websim takes {' and '.join(map(repr, PART_TYPES))} parts only"
    if role != "user":
        return f"an image in a {role!r} message; Websim takes images in user messages only"
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str):
        return "an image_url part must be {'type': 'image_url', 'image_url': {'url': <string>}}"
    return image_url_problem(url)


def image_url_problem(url: str) -> str | None:
    """What is wrong with an image URL: an http(s) URL or a base64 image data URL."""
    if url[:5].lower() == "data:":
        return _data_url_problem(url)
    if _wire.is_absolute_http_url(url):
        return None
    return (
        f"the image URL {_wire.excerpt(url, 80)!r} is neither an absolute http(s) URL nor a "
        "data URL (data:image/png;base64,...)"
    )


def _data_url_problem(url: str) -> str | None:
    header, comma, data = url.partition(",")
    params = [field.strip().lower() for field in header[5:].split(";")]
    if not comma or len(params) < 2 or params[-1] != "base64":
        return "the data URL is not of the form data:<image type>;base64,<data>"
    mime = params[0]
    if mime not in IMAGE_MIME_TYPES:
        hint = " (JPEG is 'image/jpeg')" if mime == "image/jpg" else ""
        return (
            f"the data URL has the type {mime!r}{hint}; Websim takes {', '.join(IMAGE_MIME_TYPES)}"
        )
    if not data:
        return "the data URL holds no data"
    if len(data) > _MAX_BASE64_CHARS:
        return _too_large(None)
    try:
        size = len(binascii.a2b_base64(data, strict_mode=True))
    except binascii.Error as exc:
        return f"the data URL's base64 data is malformed ({exc})"
    return _too_large(size) if size > MAX_IMAGE_BYTES else None


def _too_large(size: int | None) -> str:
    what = f"{size:,} bytes" if size is not None else "more than that"
    return (
        f"the image is too large: Websim takes at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB "
        f"({MAX_IMAGE_BYTES:,} bytes) per image, decoded; this one is {what}"
    )
