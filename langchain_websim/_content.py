"""What a wire message's content parts may hold: text, and images as http(s) or data URLs.

Shared by the client (``ChatRequest`` checks every part before anything is sent), the image
options (``image_inputs``) and the emulator, so the client and the stand-in service refuse
the same parts with the same words.
"""

from __future__ import annotations

import binascii
import reprlib
from collections.abc import Mapping
from typing import Any

from langchain_websim import _wire

__all__ = [
    "IMAGE_MIME_TYPES",
    "MAX_IMAGE_BYTES",
    "MAX_PART_DEPTH",
    "PART_TYPES",
    "base64_length_problem",
    "image_url_problem",
    "nesting_problem",
    "part_problem",
    "safe_repr",
]


IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
"""The image types a data URL may carry (what public clients send and vision models read)."""
MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""The largest image, decoded, one data URL may carry."""
PART_TYPES = ("text", "image_url")
MAX_PART_DEPTH = 32
"""How deeply a content part may nest lists and objects.  A part is two levels deep; the
limit is far above any real one, and far below what ``json``, ``repr`` or a recursive walk
can take before ``RecursionError``."""

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
            f"got {safe_repr(part)}"
        )
    too_deep = nesting_problem(part, MAX_PART_DEPTH)
    if too_deep is not None:
        return too_deep
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


def nesting_problem(value: Any, limit: int) -> str | None:
    """``None`` when ``value`` nests lists and dicts at most ``limit`` levels deep.

    Walked with an explicit stack, not recursion: a value nested 100,000 deep would make a
    recursive walk (and ``json.dumps``, which builds the body) raise ``RecursionError``.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return f"nests lists and objects more than {limit} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel = 3
_REPR.maxstring = 40
_REPR.maxother = 40


def safe_repr(value: Any, limit: int = 80) -> str:
    """A short ``repr`` that neither recurses without bound nor copies a huge value whole."""
    return _wire.excerpt(_REPR.repr(value), limit)


def image_url_problem(url: str) -> str | None:
    """What is wrong with an image URL: an http(s) URL or a base64 image data URL."""
    if url[:5].lower() == "data:":
        return _data_url_problem(url)
    if _wire.is_absolute_http_url(url):
        return None
    return (
        f"the image URL {_wire.excerpt(url[:200], 80)!r} is neither an absolute http(s) URL "
        "nor a data URL (data:image/png;base64,...)"
    )


def base64_length_problem(chars: int) -> str | None:
    """Refuses base64 text that decodes past the limit, from its length alone: an oversized
    image is refused before any data URL is built, split or decoded (each a full copy)."""
    if chars <= _MAX_BASE64_CHARS:
        return None
    return _too_large(f"about {chars // 4 * 3:,} bytes ({chars:,} base64 characters)")


# A data URL's header (``data:image/png;base64``) is short; the comma is looked for only
# this far, so a URL without one is not scanned (or copied) whole.
_MAX_HEADER_CHARS = 256


def _data_url_problem(url: str) -> str | None:
    # Only the short header is sliced off; the data is measured by length and copied (to be
    # decoded) only once it is known to be small enough.
    comma = url.find(",", 0, _MAX_HEADER_CHARS)
    params = [field.strip().lower() for field in url[5 : max(comma, 5)].split(";")]
    if comma == -1 or len(params) < 2 or params[-1] != "base64":
        return "the data URL is not of the form data:<image type>;base64,<data>"
    mime = params[0]
    if mime not in IMAGE_MIME_TYPES:
        hint = " (JPEG is 'image/jpeg')" if mime == "image/jpg" else ""
        return (
            f"the data URL has the type {mime!r}{hint}; Websim takes {', '.join(IMAGE_MIME_TYPES)}"
        )
    chars = len(url) - comma - 1
    if not chars:
        return "the data URL holds no data"
    too_long = base64_length_problem(chars)
    if too_long is not None:
        return too_long
    try:
        size = len(binascii.a2b_base64(url[comma + 1 :], strict_mode=True))
    except binascii.Error as exc:
        return f"the data URL's base64 data is malformed ({exc})"
    return _too_large(f"{size:,} bytes") if size > MAX_IMAGE_BYTES else None


def _too_large(what: str) -> str:
    return (
        f"the image is too large: Websim takes at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB "
        f"({MAX_IMAGE_BYTES:,} bytes) per image, decoded; this one is {what}"
    )
