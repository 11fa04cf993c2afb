"""What the ``websim`` subcommands share: the parser's voice, exit codes, and keeping images.

Every line the command writes to stderr about a problem starts with ``websim:``, whether
argparse or the command found it.  Images from ``--emulator`` runs are served by an emulator
that stops with the command, so they are downloaded before it does.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
import tempfile
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from langchain_websim import _download
from langchain_websim._download import MAX_DOWNLOAD_BYTES, image_type, writable_path

__all__ = [
    "EXIT_OK",
    "EXIT_SERVICE",
    "EXIT_USAGE",
    "CommandParser",
    "image_file_name",
    "image_input",
    "keep_dir",
    "note",
    "output_dir",
    "output_file",
    "save_image",
]

EXIT_OK, EXIT_SERVICE, EXIT_USAGE = 0, 1, 2

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
_URL_SCHEMES = ("http://", "https://", "data:")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


class CommandParser(argparse.ArgumentParser):
    """``argparse`` in the command's voice: ``websim: <problem> (see '<prog> --help')``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"websim: {message} (see '{self.prog} --help')\n")


def note(text: str) -> None:
    """A remark for the person at the terminal, on stderr in parentheses (not an error)."""
    print(f"({text})", file=sys.stderr, flush=True)


def output_file(value: str | None) -> Path | None:
    """``--output``: checked before the emulator starts or a request is sent."""
    return None if value is None else writable_path(value)


def output_dir(value: str | None) -> Path | None:
    """``--output-dir``: created (with its parents) before anything else happens."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("--output-dir is empty; give a directory such as 'images'")
    path = Path(value).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot use --output-dir {value}: {exc.strerror or exc}") from None
    return path


def keep_dir() -> Path:
    """A fresh directory for the images of an ``--emulator`` run given no output option."""
    return Path(tempfile.mkdtemp(prefix="websim-images-"))


def image_file_name(url: str, data: bytes, number: int) -> str:
    """The URL's own file name when it is a plain image name, else ``image-<number><suffix>``."""
    kind = image_type(data)
    suffix = kind[0] if kind else ".img"
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if _SAFE_NAME.match(name) and Path(name).suffix.lower() in _IMAGE_SUFFIXES:
        return name
    return f"image-{number}{suffix}"


def save_image(
    base_url: str,
    url: str,
    *,
    file: Path | None = None,
    directory: Path | None = None,
    number: int = 1,
) -> Path:
    """Download ``url`` through the shared client for ``base_url`` and write it to ``file``,
    or into ``directory`` under ``image_file_name`` (``number`` names an unnamed image)."""
    from langchain_websim._client import WebsimClient

    if (file is None) == (directory is None):
        raise TypeError("save_image needs a file or a directory, and not both")
    data = WebsimClient.shared(base_url).download(url)
    if file is not None:
        target = file
    else:
        assert directory is not None
        target = directory / image_file_name(url, data, number)
    _download.write_file(target, data)
    return target


def image_input(value: str) -> str:
    """``--image-input``: a URL as given, or a local image file turned into a data URL."""
    if value.strip().lower().startswith(_URL_SCHEMES):
        return value  # checked with the other image options
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(
            f"--image-input {value!r} is neither an http(s) or data: URL nor an image file"
        )
    data = path.read_bytes()
    kind = image_type(data[:16])
    if kind is None:
        raise ValueError(f"--image-input {value!r} is not a PNG, JPEG, GIF or WebP file")
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ValueError(f"--image-input {value!r} is larger than 20 MiB")
    return f"data:{kind[1]};base64,{base64.b64encode(data).decode('ascii')}"
