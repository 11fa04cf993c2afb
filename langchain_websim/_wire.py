"""The Websim wire format: endpoints, headers, payloads, project ids, response parsing.

Everything the service sees or sends back is decided here and nowhere else, so the client,
the emulator and the tests agree by construction.  Websim publishes no documentation; the
contract was reconstructed from the original provider and public clients (see the project's
API notes), which is why parsing is strict and every refusal says what arrived instead.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from langchain_websim.errors import WebsimResponseError

DEFAULT_BASE_URL = "https://websim.ai"
BASE_URL_ENV = "WEBSIM_BASE_URL"

# A current desktop browser: the service sits behind bot protection that looks at it.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/133.0.0.0 Safari/537.36"
)
# The body is JSON text, but the service (and the browser app it serves) sends text/plain.
CONTENT_TYPE = "text/plain;charset=UTF-8"

CHAT_ROLES = ("system", "user", "assistant")
CHAT_MODELS = ("gemini-1.5-pro", "gemini-1.5-flash", "gemini-2.5-pro", "gemini-2.5-flash")
IMAGE_MODELS = ("flux",)
DEFAULT_CHAT_MODEL = "gemini-1.5-pro"
DEFAULT_IMAGE_MODEL = "flux"
DEFAULT_ASPECT_RATIO = "1:1"
KNOWN_ASPECT_RATIOS = ("1:1", "16:9", "9:16")

MAX_BODY_BYTES = 10 * 1024 * 1024
EXCERPT_CHARS = 500

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_BASE = len(_ID_ALPHABET)
# Random bytes below 252 (7 * 36) map to characters by their value mod 36, each character
# from exactly 7 byte values; the 4 bytes above are dropped and drawn again.  Rejection keeps
# the ids uniform, and ``bytes.translate`` does the mapping in C: a fraction of the cost of
# a ``secrets.choice`` per character.
_ID_TABLE = bytes(ord(_ID_ALPHABET[b % _ID_BASE]) for b in range(256))
_ID_REJECTED = bytes(range(256 - 256 % _ID_BASE, 256))
_ASPECT_RATIO_RE = re.compile(r"^([1-9][0-9]{0,2}):([1-9][0-9]{0,2})$")

EndpointName = Literal["chat", "image"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: EndpointName
    path: str
    referer_path: str
    id_prefix_len: int
    id_suffix_len: int

    @property
    def project_id_re(self) -> re.Pattern[str]:
        return re.compile(rf"^[a-z0-9]{{{self.id_prefix_len}}}_[a-z0-9]{{{self.id_suffix_len}}}$")


CHAT = Endpoint(
    name="chat",
    path="/api/v1/inference/run_chat_completion",
    referer_path="/@ISWEARIAMNOTADDICTEDTOPILLOW/zelos-ai-assistant",
    id_prefix_len=3,
    id_suffix_len=15,
)
IMAGE = Endpoint(
    name="image",
    path="/api/v1/inference/run_image_generation",
    referer_path="/@ISWEARIAMNOTADDICTEDTOPILLOW/ai-image-prompt-generator",
    id_prefix_len=7,
    id_suffix_len=12,
)
ENDPOINTS: dict[EndpointName, Endpoint] = {"chat": CHAT, "image": IMAGE}


# --------------------------------------------------------------------------- project ids


def _random_chars(n: int) -> str:
    chars = b""
    while len(chars) < n:
        # Four spare bytes make a second draw rare (p < 1e-4 of too few usable ones).
        chars += secrets.token_bytes(n + 4).translate(_ID_TABLE, _ID_REJECTED)
    return chars[:n].decode("ascii")


def new_project_id(endpoint: Endpoint) -> str:
    """A fresh project id in the endpoint's format, drawn from a cryptographic source."""
    prefix = endpoint.id_prefix_len
    chars = _random_chars(prefix + endpoint.id_suffix_len)
    return f"{chars[:prefix]}_{chars[prefix:]}"


# --------------------------------------------------------------------------- caller input


def normalize_base_url(base_url: str) -> str:
    """Validate a base URL and drop any trailing slash; only http(s) hosts are accepted."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url must be a non-empty http(s) URL, e.g. 'https://websim.ai'")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an absolute http:// or https:// URL, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not carry a query or fragment, got {base_url!r}")
    return base_url.strip().rstrip("/")


def origin_of(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def validate_aspect_ratio(aspect_ratio: str) -> str:
    """Accept ``W:H`` with small positive integers (1-999); the server decides the rest."""
    if not isinstance(aspect_ratio, str):
        raise TypeError(f"aspect_ratio must be a string like '16:9', got {type(aspect_ratio)!r}")
    value = aspect_ratio.strip()
    if not _ASPECT_RATIO_RE.match(value):
        raise ValueError(
            f"aspect_ratio must look like 'W:H' with positive whole numbers up to 999 "
            f"(known values: {', '.join(KNOWN_ASPECT_RATIOS)}), got {aspect_ratio!r}"
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


def validate_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Extra headers from the caller: names are HTTP tokens, values carry no CR/LF."""
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(
                f"header name {name!r} is not a valid HTTP token (letters, digits, '-', ...; "
                "no spaces, ';', ':' or control characters)"
            )
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} has a value with CR, LF or NUL, which is refused")
        out[name] = value
    return out


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
        if role not in CHAT_ROLES:
            raise ValueError(
                f"message {i} has role {role!r}; Websim accepts {', '.join(CHAT_ROLES)}"
            )
        content = msg.get("content")
        if not isinstance(content, (str, list)):
            raise ValueError(
                f"message {i} content must be a string or a list of content parts, "
                f"got {type(content).__name__}"
            )
        if isinstance(content, list):
            _check_parts(i, content)
        out.append({"role": role, "content": content})
    if not any(_has_content(msg["content"]) for msg in out):
        raise ValueError("every message is empty (or only white space); there is nothing to answer")
    return out


def _has_content(content: str | list[Any]) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return any(part["type"] != "text" or part["text"].strip() for part in content)


def _check_parts(i: int, parts: list[Any]) -> None:
    # The service would answer a malformed part with a vague 4xx after the request was sent.
    for j, part in enumerate(parts):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise ValueError(
                f"message {i} content part {j} must be a dict with a string 'type' "
                f"(e.g. {{'type': 'text', 'text': ...}}), got {excerpt(repr(part), 80)}"
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise ValueError(f"message {i} content part {j} is a text part without a string 'text'")


# --------------------------------------------------------------------------- requests


def build_headers(base_url: str, endpoint: Endpoint, extra: Mapping[str, str]) -> dict[str, str]:
    origin = origin_of(base_url)
    headers = {
        "accept": "*/*",
        "accept-language": "en-US,en;q=0.9",
        "content-type": CONTENT_TYPE,
        "origin": origin,
        "referer": origin + endpoint.referer_path,
        "user-agent": USER_AGENT,
        # The original wrote 'websim-flags;' (curl's spelling of an empty header); a header
        # name may not contain ';', and strict servers answer 400, so the name goes bare.
        "websim-flags": "",
    }
    # HTTP header names are case-insensitive: a caller's "User-Agent" replaces ours instead
    # of travelling next to it as a second, conflicting header.
    overridden = {name.lower() for name in extra}
    headers = {name: value for name, value in headers.items() if name not in overridden}
    headers.update(extra)
    return headers


def chat_body(messages: list[dict[str, Any]], project_id: str, json_mode: bool = False) -> bytes:
    payload: dict[str, Any] = {"project_id": project_id, "messages": messages}
    if json_mode:
        payload["json"] = True  # unconfirmed by the original; opt-in only
    return _encode(payload)


def image_body(prompt: str, aspect_ratio: str, project_id: str) -> bytes:
    payload = {"project_id": project_id, "prompt": prompt, "aspect_ratio": aspect_ratio}
    return _encode(payload)


# ``json.dumps`` with a non-default argument builds a new encoder on every call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _encode(payload: dict[str, Any]) -> bytes:
    text = _JSON_ENCODER.encode(payload)
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        # Otherwise a bare codec error about a position in the JSON body, not in the input.
        raise ValueError(
            f"the text contains {text[exc.start : exc.end]!r}, a lone surrogate: not valid "
            "Unicode (often a string decoded with errors='surrogateescape'), so it cannot be sent"
        ) from None


def image_prompt_from_messages(
    messages: Sequence[Mapping[str, Any]], prompt: str | None = None
) -> str:
    """An explicit prompt wins; else the trailing run of user messages, stripped, joined."""
    if prompt is not None:
        return validate_prompt(prompt)
    tail: list[str] = []
    for msg in reversed(messages):
        if msg.get("role") != "user":
            break
        tail.append(_text_of(msg.get("content")).strip())
    text = "\n".join(reversed(tail)).strip()
    if not text:
        raise ValueError(
            "no image prompt: pass prompt=... or end the conversation with user messages "
            "that describe the image"
        )
    return text


def _text_of(content: Any) -> str:
    # OpenAI-style content parts: the text parts describe the image; others carry no prompt.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(t.strip() for t in texts if isinstance(t, str) and t.strip())
    return ""


# --------------------------------------------------------------------------- responses


def excerpt(body: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def looks_like_html(content_type: str, body: bytes) -> bool:
    if "html" in content_type.lower():
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


_CHALLENGE_MARKERS = (
    b"challenge-platform",
    b"cf-chl",
    b"cf_chl",
    b"just a moment...",
    b"attention required! | cloudflare",
    b"checking your browser",
    b"cf-browser-verification",
)


def looks_like_challenge(content_type: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """A bot-protection page (Cloudflare and alike) rather than an answer from the API."""
    if headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    if not looks_like_html(content_type, body):
        return False
    lowered = body[:65536].lower()
    return any(marker in lowered for marker in _CHALLENGE_MARKERS)


def _parse_object(
    endpoint: Endpoint, status: int, url: str, content_type: str, body: bytes
) -> dict[str, Any]:
    def fail(problem: str) -> WebsimResponseError:
        return WebsimResponseError(
            problem,
            endpoint=endpoint.name,
            url=url,
            status_code=status,
            content_type=content_type,
            body=excerpt(body),
        )

    if looks_like_html(content_type, body):
        raise fail("the service answered with an HTML page instead of JSON")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise fail("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {_json_type(data)}")
    return data


def parse_chat_response(status: int, url: str, content_type: str, body: bytes) -> str:
    data = _parse_object(CHAT, status, url, content_type, body)
    content = data.get("content")
    problem: str | None = None
    if not isinstance(content, str):
        problem = (
            "the JSON object has no 'content' field"
            if "content" not in data
            else f"'content' is {_json_type(content)}, expected a string"
        )
    elif not content.strip():
        # An empty answer passed on as "" reads as a reply in an agent loop; the caller
        # must see that the service said nothing.
        problem = "'content' is empty (or only white space): the service returned no answer"
    if problem is not None:
        raise WebsimResponseError(
            problem,
            endpoint="chat",
            url=url,
            status_code=status,
            content_type=content_type,
            body=excerpt(body),
        )
    assert isinstance(content, str)
    return content.strip()


def parse_image_response(status: int, url: str, content_type: str, body: bytes) -> str:
    data = _parse_object(IMAGE, status, url, content_type, body)
    image_url = data.get("url")
    problem: str | None = None
    if not isinstance(image_url, str):
        problem = (
            "the JSON object has no 'url' field"
            if "url" not in data
            else f"'url' is {_json_type(image_url)}, expected a string"
        )
    elif not is_absolute_http_url(image_url.strip()):
        problem = f"'url' is not an absolute http(s) URL: {excerpt(image_url, 80)!r}"
    if problem is not None:
        raise WebsimResponseError(
            problem,
            endpoint="image",
            url=url,
            status_code=status,
            content_type=content_type,
            body=excerpt(body),
        )
    assert isinstance(image_url, str)
    return image_url.strip()


def is_absolute_http_url(value: str) -> bool:
    if any(c.isspace() or ord(c) < 32 for c in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number in range raises here
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 bracket)
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value ("integer" for whole numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _json_type(value: Any) -> str:
    """``json_type`` as a phrase for error messages: "a number", "an array", "null"."""
    name = json_type(value)
    if name == "integer":
        name = "number"
    if name == "null" or name not in ("boolean", "number", "string", "array", "object"):
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name
