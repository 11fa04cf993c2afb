"""The Websim wire format: endpoints, headers, request bodies and response parsing.

Everything the service sees or sends back is decided here and nowhere else, so the client,
the emulator and the tests agree by construction.  Websim publishes no documentation; the
contract was reconstructed from the original provider and public clients (see the project's
API notes), which is why parsing is strict and every refusal says what arrived instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from langchain_websim.errors import WebsimResponseError

# The host of the most recent public clients; websim.ai (the original's) and websim.com
# still answer when given.
DEFAULT_BASE_URL = "https://api.websim.com"
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


def is_image_model(model: str) -> bool:
    """Whether a model name routes to image generation (names are never sent)."""
    return model.lower() in IMAGE_MODELS


MAX_BODY_BYTES = 10 * 1024 * 1024
EXCERPT_CHARS = 500

ASPECT_RATIO_RE = re.compile(r"^([1-9][0-9]{0,2}):([1-9][0-9]{0,2})$")

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


def origin_of(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


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


# RFC 9110 section 5.5 allows visible characters, spaces and tabs in a field value; aiohttp
# refuses the other control characters at send time, naming no header.  Tabs are refused
# as well: no header this API takes needs one, and one in a value is almost surely a paste.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def header_value_problem(name: str, value: str) -> str | None:
    """What is wrong with one header value (``None``: nothing), naming the header."""
    found = _CONTROL_CHARS.search(value)
    if found is None:
        return None
    return (
        f"header {name!r} has a value with the control character {found.group()!r} at "
        f"position {found.start()}; header values may hold visible characters and spaces only"
    )


def header_problem(headers: Mapping[str, str]) -> str | None:
    """The first header whose value cannot be sent, in words (``None``: all can)."""
    for name, value in headers.items():
        problem = header_value_problem(name, value)
        if problem is not None:
            return problem
    return None


class _ChatFields(Protocol):
    @property
    def messages(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def project_id(self) -> str | None: ...
    @property
    def json_mode(self) -> bool: ...


class _ImageFields(Protocol):
    @property
    def prompt(self) -> str: ...
    @property
    def aspect_ratio(self) -> str: ...
    @property
    def project_id(self) -> str | None: ...
    def wire_options(self) -> dict[str, Any]:
        """The image options that are set, by wire name (``_image_options``)."""
        ...


def chat_body(request: _ChatFields) -> bytes:
    payload: dict[str, Any] = {"project_id": request.project_id, "messages": request.messages}
    if request.json_mode:
        payload["json"] = True
    return _encode(payload)


def image_body(request: _ImageFields) -> bytes:
    payload: dict[str, Any] = {
        "project_id": request.project_id,
        "prompt": request.prompt,
        "aspect_ratio": request.aspect_ratio,
        # Websim's app runtime documents more image parameters; none has been seen on the
        # HTTP API, so each goes into the body only when the caller sets it.
        **request.wire_options(),
    }
    return _encode(payload)


def url_objects(urls: Sequence[str]) -> list[dict[str, str]]:
    """URLs as the image runtime takes them: ``[{"url": ...}]`` (room for more fields)."""
    return [{"url": url} for url in urls]


def urls_of_objects(value: Any) -> list[Any]:
    """The inverse of ``url_objects``; ``ValueError`` naming the shape for anything else."""
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and set(item) == {"url"} for item in value
    ):
        raise ValueError('a list of {"url": ...} objects')
    return [item["url"] for item in value]


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


def _response_error(
    endpoint: Endpoint, status: int, url: str, content_type: str, body: bytes, problem: str
) -> WebsimResponseError:
    return WebsimResponseError(
        problem,
        endpoint=endpoint.name,
        url=url,
        status_code=status,
        content_type=content_type,
        body=excerpt(body),
    )


def _parse_field(
    endpoint: Endpoint, field: str, status: int, url: str, content_type: str, body: bytes
) -> str:
    """The string ``field`` of the JSON object in ``body``, stripped."""
    try:
        return _field_of(field, content_type, body).strip()
    except _Unusable as exc:
        raise _response_error(endpoint, status, url, content_type, body, str(exc)) from None


class _Unusable(Exception):
    """What keeps a body from being the answer, in words (turned into the typed error)."""


def _field_of(field: str, content_type: str, body: bytes) -> str:
    if looks_like_html(content_type, body):
        raise _Unusable("the service answered with an HTML page instead of JSON")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _Unusable("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _Unusable(f"expected a JSON object, got {_json_type(data)}")
    if field not in data:
        raise _Unusable(f"the JSON object has no {field!r} field")
    value = data[field]
    if not isinstance(value, str):
        raise _Unusable(f"{field!r} is {_json_type(value)}, expected a string")
    return value


def parse_chat_response(status: int, url: str, content_type: str, body: bytes) -> str:
    content = _parse_field(CHAT, "content", status, url, content_type, body)
    if not content:
        # An empty answer passed on as "" reads as a reply in an agent loop; the caller
        # must see that the service said nothing.
        problem = "'content' is empty (or only white space): the service returned no answer"
        raise _response_error(CHAT, status, url, content_type, body, problem)
    return content


def parse_image_response(status: int, url: str, content_type: str, body: bytes) -> str:
    image_url = _parse_field(IMAGE, "url", status, url, content_type, body)
    if not is_absolute_http_url(image_url):
        problem = f"'url' is not an absolute http(s) URL: {excerpt(image_url, 80)!r}"
        raise _response_error(IMAGE, status, url, content_type, body, problem)
    return image_url


def is_absolute_http_url(value: str) -> bool:
    if any(c.isspace() or ord(c) < 32 for c in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number in range raises here
    except ValueError:  # e.g. "http://[" (an unclosed IPv6 bracket)
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# bool before int: True is an int to Python, a boolean to JSON.
_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value ("integer" for whole numbers)."""
    if value is None:
        return "null"
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _json_type(value: Any) -> str:
    """``json_type`` as a phrase for error messages: "a number", "an array", "null"."""
    name = json_type(value)
    if name == "integer":
        name = "number"
    if name == "null" or name not in ("boolean", "number", "string", "array", "object"):
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name
