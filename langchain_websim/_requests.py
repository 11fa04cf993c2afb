"""One Websim call as an object: ``ChatRequest`` and ``ImageRequest``.

A request is built and validated once, where the caller's input arrives (``WebsimClient``'s
methods, ``ChatWebsim``, the tool), and then only read: the client sends it, retries send
the same bytes, errors and results quote it.  A new request parameter is one field on the
dataclass (with its check) and one entry where ``_wire`` builds the body.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from langchain_websim import _wire
from langchain_websim._content import image_url_problem, part_problem

__all__ = [
    "IMAGE_OPTIONS",
    "MAX_SEED",
    "MAX_SIDE",
    "MIN_SIDE",
    "ChatRequest",
    "ImageOptions",
    "ImageRequest",
    "new_project_id",
    "set_image_options",
    "validate_aspect_ratio",
    "validate_image_option",
    "validate_project_id",
    "validate_prompt",
    "validate_wire_messages",
]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """``messages`` are wire messages (``{"role", "content"}``), checked on construction."""

    messages: Sequence[Mapping[str, Any]]
    project_id: str | None = None
    """``None`` draws a fresh id; after construction it is always the id that is sent."""
    json_mode: bool = False
    endpoint: _wire.Endpoint = field(default=_wire.CHAT, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", validate_wire_messages(self.messages))
        object.__setattr__(self, "project_id", _project_id(_wire.CHAT, self.project_id))

    def body(self) -> bytes:
        return _wire.chat_body(self)


IMAGE_OPTIONS: tuple[str, ...] = _wire.IMAGE_OPTIONS
"""The optional image parameters, each sent only when set (``None`` leaves it out)."""
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_SEED = 2**53 - 1
"""The largest integer a JSON number keeps exactly in JavaScript, which reads Websim's bodies."""


class ImageOptions(TypedDict, total=False):
    """The optional image parameters, as keyword arguments (``WebsimClient.generate_image``)."""

    seed: int | None
    width: int | None
    height: int | None
    transparent: bool | None
    image_inputs: Sequence[str] | None


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """One ``flux`` image: the prompt (stripped) and its options, checked on construction.

    ``seed``, ``width``, ``height``, ``transparent`` and ``image_inputs`` are documented by
    Websim's app runtime and unconfirmed on its HTTP API: each is sent only when not ``None``.
    """

    prompt: str
    aspect_ratio: str = _wire.DEFAULT_ASPECT_RATIO
    project_id: str | None = None
    seed: int | None = field(default=None, kw_only=True)
    """Same seed, same prompt and options: the same image (int, 0 to ``MAX_SEED``)."""
    width: int | None = field(default=None, kw_only=True)
    """Pixels, ``MIN_SIDE`` to ``MAX_SIDE``."""
    height: int | None = field(default=None, kw_only=True)
    """Pixels, ``MIN_SIDE`` to ``MAX_SIDE``."""
    transparent: bool | None = field(default=None, kw_only=True)
    """A transparent background (an image with an alpha channel)."""
    image_inputs: Sequence[str] | None = field(default=None, kw_only=True)
    """Reference images to edit or vary: http(s) or ``data:image/...`` URLs, kept as a tuple
    and sent as ``[{"url": ...}]``."""
    endpoint: _wire.Endpoint = field(default=_wire.IMAGE, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", validate_prompt(self.prompt))
        object.__setattr__(self, "aspect_ratio", validate_aspect_ratio(self.aspect_ratio))
        object.__setattr__(self, "project_id", _project_id(_wire.IMAGE, self.project_id))
        for name in IMAGE_OPTIONS:
            object.__setattr__(self, name, validate_image_option(name, getattr(self, name)))

    def body(self) -> bytes:
        return _wire.image_body(self)

    @property
    def options(self) -> dict[str, Any]:
        """The options that are set, by name (``image_inputs`` as a list of URLs)."""
        return set_image_options(self)


def set_image_options(source: Any) -> dict[str, Any]:
    """The image options ``source`` (a request or a response) has set, by name."""
    options = {name: getattr(source, name) for name in IMAGE_OPTIONS}
    if options["image_inputs"] is not None:
        options["image_inputs"] = list(options["image_inputs"])
    return {name: value for name, value in options.items() if value is not None}


def _project_id(endpoint: _wire.Endpoint, project_id: str | None) -> str:
    # A caller's own id is checked, then used as given.
    if project_id is None:
        return new_project_id(endpoint)
    return validate_project_id(project_id)


# --------------------------------------------------------------------------- project ids

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_BASE = len(_ID_ALPHABET)
# Random bytes below 252 (7 * 36) map to characters by their value mod 36, each character
# from exactly 7 byte values; the 4 bytes above are dropped and drawn again.  Rejection keeps
# the ids uniform, and ``bytes.translate`` does the mapping in C: a fraction of the cost of
# a ``secrets.choice`` per character.
_ID_TABLE = bytes(ord(_ID_ALPHABET[b % _ID_BASE]) for b in range(256))
_ID_REJECTED = bytes(range(256 - 256 % _ID_BASE, 256))


def _random_chars(n: int) -> str:
    chars = b""
    while len(chars) < n:
        # Four spare bytes make a second draw rare (p < 1e-4 of too few usable ones).
        chars += secrets.token_bytes(n + 4).translate(_ID_TABLE, _ID_REJECTED)
    return chars[:n].decode("ascii")


def new_project_id(endpoint: _wire.Endpoint) -> str:
    """A fresh project id in the endpoint's format, drawn from a cryptographic source."""
    prefix = endpoint.id_prefix_len
    chars = _random_chars(prefix + endpoint.id_suffix_len)
    return f"{chars[:prefix]}_{chars[prefix:]}"


# --------------------------------------------------------------------------- caller input


def validate_aspect_ratio(aspect_ratio: str) -> str:
    """Accept ``W:H`` with small positive integers (1-999); the server decides the rest."""
    if not isinstance(aspect_ratio, str):
        raise TypeError(f"aspect_ratio must be a string like '16:9', got {type(aspect_ratio)!r}")
    value = aspect_ratio.strip()
    if not _wire.ASPECT_RATIO_RE.match(value):
        raise ValueError(
            f"aspect_ratio must look like 'W:H' with positive whole numbers up to 999 "
            f"(known values: {', '.join(_wire.KNOWN_ASPECT_RATIOS)}), got {aspect_ratio!r}"
        )
    return value


def validate_prompt(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    value = prompt.strip()
    if not value:
        raise ValueError("prompt is empty (or only white space); describe the image to generate")
    return value


def validate_project_id(project_id: str) -> str:
    # A caller's own id is used as given (the contract says so), but it must still be a
    # non-empty string without control characters, or the service answers with a vague 4xx.
    if not isinstance(project_id, str) or not project_id.strip():
        raise ValueError("project_id must be a non-empty string")
    if any(ord(c) < 32 for c in project_id):
        raise ValueError("project_id must not contain control characters")
    return project_id


def validate_wire_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check already-mapped ``{"role", "content"}`` dicts before anything is sent."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    if not messages:
        raise ValueError("messages is empty; Websim needs at least one message")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise TypeError(f"message {i} must be a dict with 'role' and 'content'")
        role = msg.get("role")
        if role not in _wire.CHAT_ROLES:
            raise ValueError(
                f"message {i} has role {role!r}; Websim accepts {', '.join(_wire.CHAT_ROLES)}"
            )
        content = msg.get("content")
        if not isinstance(content, (str, list)):
            raise ValueError(
                f"message {i} content must be a string or a list of content parts, "
                f"got {type(content).__name__}"
            )
        if isinstance(content, list):
            _check_parts(i, content, role)
        out.append({"role": role, "content": content})
    if not any(_has_content(msg["content"]) for msg in out):
        raise ValueError("every message is empty (or only white space); there is nothing to answer")
    return out


def _has_content(content: str | list[Any]) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return any(part["type"] != "text" or part["text"].strip() for part in content)


def _check_parts(i: int, parts: list[Any], role: str) -> None:
    # The service would answer a malformed part with a vague 4xx after the request was sent.
    for j, part in enumerate(parts):
        problem = part_problem(part, role)
        if problem is not None:
            raise ValueError(f"message {i} content part {j}: {problem}")


# --------------------------------------------------------------------------- image options


def validate_image_option(name: str, value: Any) -> Any:
    """Check one image option by name; ``None`` (not set) passes as it is."""
    check = _OPTION_CHECKS.get(name)
    if check is None:
        raise TypeError(
            f"unknown image option {name!r}; the options are {', '.join(IMAGE_OPTIONS)}"
        )
    return None if value is None else check(value)


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


_OPTION_CHECKS: dict[str, Callable[[Any], Any]] = {
    "seed": validate_seed,
    "width": _side("width"),
    "height": _side("height"),
    "transparent": validate_transparent,
    "image_inputs": validate_image_inputs,
}
