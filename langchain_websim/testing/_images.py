"""The emulator's generated images: real PNG files, drawn without an imaging library.

An image URL carries everything needed to draw the picture again (a name derived from the
request, the size, whether it has an alpha channel), so the emulator keeps no images: any
URL it handed out serves the same bytes for as long as the emulator runs.  A picture is a
vertical gradient with a disc, its colours and layout taken from the name -- the same
request (the same seed) always draws the same picture.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from langchain_websim import _wire
from langchain_websim._image_options import IMAGE_OPTIONS, MAX_SIDE

__all__ = [
    "DEFAULT_LONG_SIDE",
    "encode_png",
    "image_path",
    "image_size",
    "parse_image_path",
    "picture",
]

DEFAULT_LONG_SIDE = 1024
"""The long side of a picture whose request gives neither width nor height."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIZED_PATH = re.compile(r"^/images/([A-Za-z0-9_]{1,64})-([0-9]{1,4})x([0-9]{1,4})(-alpha)?\.png$")
# Names without a size (URLs from older emulators, or made up by hand) still serve a picture.
_BARE_PATH = re.compile(r"^/images/([A-Za-z0-9_-]{1,128})\.png$")


def image_path(body: Mapping[str, Any]) -> str:
    """The path of the picture for an image request's body (already checked, or lenient)."""
    prompt, ratio = str(body.get("prompt", "")), str(body.get("aspect_ratio", ""))
    options = {o.wire: body[o.wire] for o in IMAGE_OPTIONS if o.wire in body}
    # A plain request keeps the name it always had: sha256(prompt + aspect_ratio).
    key = prompt + ratio + (json.dumps(options, sort_keys=True, default=str) if options else "")
    name = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16]
    width, height = image_size(ratio, _side(body.get("width")), _side(body.get("height")))
    alpha = "-alpha" if body.get("transparent") is True else ""
    return f"/images/{name}-{width}x{height}{alpha}.png"


def image_size(aspect_ratio: str, width: int | None, height: int | None) -> tuple[int, int]:
    """Width and height win; a missing side follows the aspect ratio (``1:1`` if unreadable);
    with neither, the long side is ``DEFAULT_LONG_SIDE``."""
    match = _wire.ASPECT_RATIO_RE.match(aspect_ratio)
    across, down = (int(match[1]), int(match[2])) if match else (1, 1)
    if width is not None and height is not None:
        return width, height
    if width is not None:
        return width, _clamp(width * down / across)
    if height is not None:
        return _clamp(height * across / down), height
    if across >= down:
        return DEFAULT_LONG_SIDE, _clamp(DEFAULT_LONG_SIDE * down / across)
    return _clamp(DEFAULT_LONG_SIDE * across / down), DEFAULT_LONG_SIDE


class ImagePath(NamedTuple):
    """What an image path says to draw (``picture`` takes the same, in this order)."""

    name: str
    width: int
    height: int
    alpha: bool


def parse_image_path(path: str) -> ImagePath | None:
    """What an image path says to draw, or ``None`` if it is not one."""
    sized = _SIZED_PATH.match(path)
    if sized:
        width = int(sized[2])
        height = int(sized[3])
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            return None
        return ImagePath(sized[1], width, height, alpha=sized[4] is not None)
    bare = _BARE_PATH.match(path)
    if bare:
        return ImagePath(bare[1], DEFAULT_LONG_SIDE, DEFAULT_LONG_SIDE, alpha=False)
    return None


@functools.lru_cache(maxsize=16)
def picture(name: str, width: int, height: int, alpha: bool) -> bytes:
    """The PNG for an image path's parts; the same parts always give the same bytes."""
    return encode_png(width, height, _rows(name, width, height, alpha), alpha=alpha)


def encode_png(width: int, height: int, rows: Iterator[bytes], *, alpha: bool) -> bytes:
    """A PNG of 8-bit RGB (RGBA with ``alpha``) pixel rows, each row unfiltered."""
    color_type = 6 if alpha else 2
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _rows(name: str, width: int, height: int, alpha: bool) -> Iterator[bytes]:
    digest = hashlib.sha256(name.encode()).digest()
    top, bottom, disc = digest[0:3], digest[3:6], bytes(255 - b for b in digest[6:9])
    cx = width * (0.3 + 0.4 * digest[9] / 255)
    cy = height * (0.3 + 0.4 * digest[10] / 255)
    radius = min(width, height) * (0.15 + 0.15 * digest[11] / 255)
    # Transparent: the background keeps its colour but is fully transparent; the disc is opaque.
    bg_alpha, fg_alpha = (b"\x00", b"\xff") if alpha else (b"", b"")
    disc_pixel = disc + fg_alpha
    for y in range(height):
        t = y / (height - 1) if height > 1 else 0.0
        bg = bytes(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)) + bg_alpha
        dy = y + 0.5 - cy
        if abs(dy) >= radius:
            yield bg * width
            continue
        half = math.sqrt(radius * radius - dy * dy)
        x0 = max(0, min(width, round(cx - half)))
        x1 = max(x0, min(width, round(cx + half)))
        yield bg * x0 + disc_pixel * (x1 - x0) + bg * (width - x1)


def _side(value: Any) -> int | None:
    # Lenient emulators answer bodies that break the contract too: ignore a side that is
    # not a usable number rather than fail on it.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        return None
    return value


def _clamp(value: float) -> int:
    return max(1, min(MAX_SIDE, round(value)))
