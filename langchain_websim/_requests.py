"""One Websim call as an object: ``ChatRequest`` and ``ImageRequest``.

A request is built and validated once, where the caller's input arrives (``WebsimClient``'s
methods, ``ChatWebsim``, the tool), and then only read: the client sends it, retries send
the same bytes, errors and results quote it.  A new image option is one entry in
``_image_options.IMAGE_OPTIONS``; any other new parameter is one field on the dataclass
(with its check) and one entry where ``_wire`` builds the body.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator

from langchain_websim import _wire
from langchain_websim._content import part_problem
from langchain_websim._image_options import IMAGE_OPTIONS, ImageOptionValues

__all__ = [
    "AspectRatio",
    "ChatRequest",
    "ImageRequest",
    "ProjectId",
    "new_project_id",
    "validate_aspect_ratio",
    "validate_model",
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


@dataclass(frozen=True, slots=True)
class ImageRequest(ImageOptionValues):
    """One ``flux`` image: the prompt (stripped), the aspect ratio and the image options
    (``IMAGE_OPTIONS``, keyword-only, each sent only when not ``None``), checked on
    construction; ``image_inputs`` is kept as a tuple."""

    prompt: str
    aspect_ratio: str = _wire.DEFAULT_ASPECT_RATIO
    project_id: str | None = None
    endpoint: _wire.Endpoint = field(default=_wire.IMAGE, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", validate_prompt(self.prompt))
        object.__setattr__(self, "aspect_ratio", validate_aspect_ratio(self.aspect_ratio))
        object.__setattr__(self, "project_id", _project_id(_wire.IMAGE, self.project_id))
        for option in IMAGE_OPTIONS:
            object.__setattr__(self, option.name, option.validate(getattr(self, option.name)))

    def body(self) -> bytes:
        return _wire.image_body(self)


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


def validate_model(model: Any, *, name: str = "model") -> str:
    """A model name (``name``: how the caller gave it, for the message); it only routes the
    call between chat and image generation, so any non-empty string is accepted."""
    if not isinstance(model, str):
        raise ValueError(
            f"{name} must be a model name such as {_wire.DEFAULT_CHAT_MODEL!r}, got {model!r}"
        )
    if not model.strip():
        raise ValueError(f"{name} is empty; give a model name such as {_wire.DEFAULT_CHAT_MODEL!r}")
    return model


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


# The same checks as pydantic field types, for the fields of the LangChain classes.
AspectRatio = Annotated[str, AfterValidator(validate_aspect_ratio)]
ProjectId = Annotated[str, AfterValidator(validate_project_id)]
