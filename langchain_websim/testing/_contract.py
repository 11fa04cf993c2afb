"""Contract checks the emulator runs on every API request.

Each check adds a plain-language violation instead of stopping at the first, so one 400
answer (and one recorded request) tells a test everything that was wrong.  Formats come from
``_wire``, the same module the client builds requests with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_websim import _wire
from langchain_websim._content import MAX_PART_DEPTH, nesting_problem, part_problem
from langchain_websim._image_options import IMAGE_OPTIONS
from langchain_websim._requests import validate_aspect_ratio

REQUIRED_HEADERS = ("accept", "accept-language", "origin", "referer", "user-agent")
FLAGS_HEADER = "websim-flags"

# A chat body nests messages, then a part: a few levels above the deepest part allowed.
MAX_BODY_DEPTH = MAX_PART_DEPTH + 4

_CHAT_KEYS = frozenset({"project_id", "messages", "json"})
_IMAGE_KEYS = frozenset({"project_id", "prompt", "aspect_ratio", *(o.wire for o in IMAGE_OPTIONS)})


def check_headers(
    raw_headers: Sequence[tuple[str, str]], allowed_origins: Sequence[str]
) -> list[str]:
    problems: list[str] = []
    # No check for header names with ';' (the original client's 'websim-flags;'): aiohttp's
    # request parser refuses any name that is not an HTTP token before this code runs, and
    # the server answers that with a JSON 400 of its own (_server._JsonErrorHandler).
    headers = {name.lower(): value for name, value in raw_headers}
    content_type = headers.get("content-type")
    if content_type is None:
        problems.append(f"missing header content-type (expected {_wire.CONTENT_TYPE!r})")
    elif _squash(content_type) != _squash(_wire.CONTENT_TYPE):
        problems.append(
            f"content-type is {content_type!r}, expected {_wire.CONTENT_TYPE!r} "
            "(the body is JSON text sent as text/plain)"
        )
    for name in REQUIRED_HEADERS:
        if not headers.get(name, "").strip():
            problems.append(f"missing header {name}")
    if FLAGS_HEADER not in headers:
        problems.append(f"missing header {FLAGS_HEADER} (sent with an empty value)")
    elif headers[FLAGS_HEADER] != "":
        problems.append(f"header {FLAGS_HEADER} must be empty, got {headers[FLAGS_HEADER]!r}")
    origin = headers.get("origin", "").strip()
    if origin and origin not in allowed_origins:
        problems.append(f"origin is {origin!r}, expected {allowed_origins[0]!r}")
    referer = headers.get("referer", "").strip()
    if referer and not any(referer.startswith(o + "/") or referer == o for o in allowed_origins):
        problems.append(f"referer {referer!r} does not start with {allowed_origins[0]!r}")
    return problems


def parse_body(raw: bytes) -> tuple[Any, list[str]]:
    """The JSON body (or ``None``) and what was wrong with it."""
    if not raw:
        return None, ["the body is empty; expected a JSON object"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"the body is not valid UTF-8 ({exc.reason} at byte {exc.start})"]
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, [f"the body is not valid JSON ({exc})"]
    except RecursionError:
        # Python's parser gives up on deep nesting; no Websim body nests more than a few levels.
        return None, ["the body nests JSON arrays and objects too deeply to be parsed"]
    too_deep = nesting_problem(data, MAX_BODY_DEPTH)
    if too_deep is not None:
        return None, [f"the body {too_deep}"]
    if not isinstance(data, dict):
        return data, [f"the body is a JSON {type(data).__name__}, expected an object"]
    return data, []


def check_body(
    endpoint: _wire.Endpoint, body: Mapping[str, Any], require_project_id_format: bool
) -> list[str]:
    problems = _check_project_id(endpoint, body, require_project_id_format)
    allowed = _CHAT_KEYS if endpoint is _wire.CHAT else _IMAGE_KEYS
    unknown = sorted(set(body) - allowed)
    if unknown:
        problems.append(f"unexpected field(s) {', '.join(map(repr, unknown))}")
    if endpoint is _wire.CHAT:
        problems += _check_chat(body)
    else:
        problems += _check_image(body)
    return problems


def _check_project_id(
    endpoint: _wire.Endpoint, body: Mapping[str, Any], require_format: bool
) -> list[str]:
    if "project_id" not in body:
        return ["missing field 'project_id'"]
    project_id = body["project_id"]
    if not isinstance(project_id, str) or not project_id.strip():
        return [f"'project_id' must be a non-empty string, got {project_id!r}"]
    if require_format and not endpoint.project_id_re.match(project_id):
        return [
            f"'project_id' {project_id!r} does not match the {endpoint.name} format "
            f"{endpoint.project_id_re.pattern}"
        ]
    return []


def _check_chat(body: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if "json" in body and body["json"] is not True:
        problems.append(f"'json' may only be true (JSON mode), got {body['json']!r}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, f"'messages' must be a non-empty list, got {_short(messages)}"]
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            problems.append(f"message {i} must be an object, got {_short(msg)}")
            continue
        extra = sorted(set(msg) - {"role", "content"})
        if extra:
            problems.append(f"message {i} has unexpected field(s) {', '.join(map(repr, extra))}")
        if msg.get("role") not in _wire.CHAT_ROLES:
            problems.append(
                f"message {i} has role {msg.get('role')!r}, "
                f"expected one of {', '.join(_wire.CHAT_ROLES)}"
            )
        problems += _check_content(i, msg.get("content"), msg.get("role"))
    return problems


def _check_content(i: int, content: Any, role: Any) -> list[str]:
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        return [f"message {i} content must be a string or a list of parts, got {_short(content)}"]
    # The client's own part check (types, image roles, data URLs, sizes), so the emulator
    # refuses exactly what the client refuses before sending.
    return [
        f"message {i} part {j}: {problem}"
        for j, part in enumerate(content)
        if (problem := part_problem(part, str(role))) is not None
    ]


def _check_image(body: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(f"'prompt' must be a non-empty string, got {_short(prompt)}")
    aspect_ratio = body.get("aspect_ratio")
    if aspect_ratio is None:
        problems.append("missing field 'aspect_ratio' (e.g. '1:1')")
    else:
        try:
            if validate_aspect_ratio(aspect_ratio) != aspect_ratio:
                problems.append(f"'aspect_ratio' {aspect_ratio!r} has surrounding white space")
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
    return problems + _check_image_options(body)


def _check_image_options(body: Mapping[str, Any]) -> list[str]:
    # The optional fields Websim's app runtime documents, decoded and checked as the client
    # encodes and checks them (one table, ``IMAGE_OPTIONS``).
    problems: list[str] = []
    for option in IMAGE_OPTIONS:
        if option.wire not in body:
            continue
        value = body[option.wire]
        if value is None:
            problems.append(f"'{option.wire}' is null; leave the field out when it is not set")
            continue
        try:
            decoded = option.from_wire(value)
        except ValueError as exc:
            problems.append(f"'{option.wire}' must be {exc}, got {_short(value)}")
            continue
        try:
            option.check(decoded)
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
    return problems


def user_text(messages: Any) -> str:
    """Text of the last user message (text parts joined by newlines); '' if there is none."""
    content = _last_user_content(messages)
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in _parts(content, "text") if isinstance(p.get("text"), str))


def user_images(messages: Any) -> int:
    """How many image parts the last user message carries."""
    return len(_parts(_last_user_content(messages), "image_url"))


def _last_user_content(messages: Any) -> Any:
    if not isinstance(messages, list):
        return None
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return msg.get("content")
    return None


def _parts(content: Any, kind: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") == kind]


def _squash(value: str) -> str:
    return "".join(value.split()).lower()


def _short(value: Any) -> str:
    # Safe to serialise: parse_body refused anything nested deeper than MAX_BODY_DEPTH.
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:79] + "…"
