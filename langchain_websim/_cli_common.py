"""What the ``websim`` subcommands share: the parser's voice, exit codes, and keeping images.

Every line the command writes to stderr about a problem starts with ``websim:``, whether
argparse or the command found it.  Images from ``--emulator`` runs are served by an emulator
that stops with the command, so they are downloaded before it does.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

from langchain_websim import _download, _wire
from langchain_websim._download import MAX_DOWNLOAD_BYTES, image_type, writable_dir, writable_path
from langchain_websim._image_options import IMAGE_OPTIONS, ImageOption

__all__ = [
    "EXIT_OK",
    "EXIT_SERVICE",
    "EXIT_USAGE",
    "CommandParser",
    "add_image_flags",
    "image_file_name",
    "image_input",
    "image_options_from_flags",
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
    return None if value is None else writable_dir(value, "--output-dir")


def keep_dir() -> Path:
    """A fresh directory for the images of an ``--emulator`` run given no output option."""
    return Path(tempfile.mkdtemp(prefix="websim-images-"))


def image_file_name(url: str, data: bytes, number: int) -> str:
    """The URL's own file name when it is a plain image name, else ``image-<number><suffix>``."""
    kind = image_type(data)
    suffix = kind.suffix if kind else ".img"
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
    or into ``directory`` under ``image_file_name`` (``number`` names an unnamed image).

    In a directory, no file is ever replaced: a name already taken (by another image of the
    same run, or by anything else) becomes ``name-2``, ``name-3``, ...
    """
    from langchain_websim._client import WebsimClient

    if (file is None) == (directory is None):
        raise TypeError("save_image needs a file or a directory, and not both")
    data = WebsimClient.shared(base_url).download(url)
    if file is not None:
        _download.write_file(file, data)
        return file
    assert directory is not None
    target = _claim_name(directory, image_file_name(url, data, number))
    try:
        _download.write_file(target, data)
    except BaseException:
        target.unlink(missing_ok=True)  # give the claimed name back
        raise
    return target


def _claim_name(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name-2``, ``name-3``, ...: the first that no file has.

    The name is claimed by creating the file exclusively, so nothing else (another image of
    this run, another run writing there at the same time) can take it meanwhile; the atomic
    write then replaces only this empty placeholder.
    """
    stem, suffix = Path(name).stem, Path(name).suffix
    for n in itertools.count(1):
        target = directory / (name if n == 1 else f"{stem}-{n}{suffix}")
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return target
    raise AssertionError("unreachable")  # pragma: no cover - count() never ends


def image_input(value: str) -> str:
    """``--image-input``: a URL as given, or a local image file turned into a data URL.

    A file is judged by its size and first bytes before it is read: a video picked by
    mistake is refused at once, not read whole into memory first.
    """
    if value.strip().lower().startswith(_URL_SCHEMES):
        return value  # checked with the other image options
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(
            f"--image-input {value!r} is neither an http(s) or data: URL nor an image file"
        )
    limit = f"{MAX_DOWNLOAD_BYTES // (1024 * 1024)} MiB"
    try:
        with path.open("rb") as file:
            kind = image_type(file.read(16))
            if kind is None:
                raise ValueError(f"--image-input {value!r} is not a PNG, JPEG, GIF or WebP file")
            if os.fstat(file.fileno()).st_size > MAX_DOWNLOAD_BYTES:
                raise ValueError(f"--image-input {value!r} is larger than {limit}")
            file.seek(0)
            # One byte past the limit: a file that grew since it was measured is caught too.
            data = file.read(MAX_DOWNLOAD_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read --image-input {value!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ValueError(f"--image-input {value!r} is larger than {limit}")
    return f"data:{kind.media_type};base64,{base64.b64encode(data).decode('ascii')}"


# --------------------------------------------------------------------------- image flags


def add_image_flags(image: argparse.ArgumentParser) -> None:
    """``--aspect-ratio`` and a flag per image option (``websim image``, ``websim batch
    image``); ``image_options_from_flags`` reads them back."""
    image.add_argument(
        "--aspect-ratio",
        default=_wire.DEFAULT_ASPECT_RATIO,
        metavar="W:H",
        help=f"shape, e.g. {', '.join(_wire.KNOWN_ASPECT_RATIOS)} (default: %(default)s)",
    )
    for option in IMAGE_OPTIONS:
        image.add_argument(option.flag.flag, dest=option.name, **_flag_kind(option))


def image_options_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Every image option by name (``None``: not given), local files read as data URLs."""
    options = {option.name: getattr(args, option.name) for option in IMAGE_OPTIONS}
    for name, read in _FROM_FILES.items():
        if options[name] is not None:
            options[name] = [read(value) for value in options[name]]
    return options


def _flag_kind(option: ImageOption) -> dict[str, Any]:
    """argparse's keywords for an image option: the kind of flag follows its values."""
    said = option.help[0].lower() + option.help[1:].rstrip(".")
    about = f"{said}; {option.values}"
    if isinstance(option.example, bool):  # a switch: giving it is the value
        return {"action": "store_const", "const": True, "help": f"{said} (default: not sent)"}
    if isinstance(option.example, list):
        files = ", or local image files (sent as data URLs)" if option.name in _FROM_FILES else ""
        return {
            "action": "append",
            "metavar": option.flag.metavar,
            "help": f"{about}{files}; repeat for several (default: none)",
        }
    return {
        "type": type(option.example),
        "metavar": option.flag.metavar,
        "help": f"{about} (default: not sent)",
    }


# How a flag's items are read: a reference image may be a local file (sent as a data URL).
_FROM_FILES: dict[str, Callable[[str], str]] = {"image_inputs": image_input}
