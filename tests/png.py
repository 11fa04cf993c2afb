"""Read a PNG file the way an image viewer would, without an imaging library.

Strict on purpose: the signature, every chunk's length and CRC, IHDR first, IEND last, and
the decompressed pixel data exactly the size the header promises.  Only unfiltered rows
(filter type 0) are decoded, which is what the emulator writes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type -> samples per pixel (RGB, RGBA)


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    channels: int
    rows: list[bytes]

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        start = x * self.channels
        return tuple(self.rows[y][start : start + self.channels])


def read_png(data: bytes) -> Png:
    assert data.startswith(SIGNATURE), f"not a PNG: {data[:16]!r}"
    pos, chunks = len(SIGNATURE), []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data), "trailing bytes after the last chunk"
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds, kinds
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and colour in _CHANNELS, (depth, colour)
    channels = _CHANNELS[colour]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + width * channels
    assert len(raw) == height * stride, "pixel data does not match the header's size"
    rows = []
    for y in range(height):
        assert raw[y * stride] == 0, "only unfiltered rows are expected"
        rows.append(raw[y * stride + 1 : (y + 1) * stride])
    return Png(width, height, channels, rows)
