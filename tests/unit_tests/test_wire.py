"""The wire format, as pure functions: headers, bodies, project ids, validators, parsers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from langchain_websim import _messages, _requests, _settings, _wire
from langchain_websim._wire import CHAT, IMAGE
from langchain_websim.errors import WebsimResponseError


def _chat_body(messages: Any, project_id: str, json_mode: bool = False) -> bytes:
    return _requests.ChatRequest(messages, project_id, json_mode).body()


def _image_body(prompt: str, aspect_ratio: str, project_id: str) -> bytes:
    return _requests.ImageRequest(prompt, aspect_ratio, project_id).body()


CHAT_URL = "https://websim.ai/api/v1/inference/run_chat_completion"
IMAGE_URL = "https://websim.ai/api/v1/inference/run_image_generation"
CHAT_REFERER = "https://websim.ai/@ISWEARIAMNOTADDICTEDTOPILLOW/zelos-ai-assistant"
IMAGE_REFERER = "https://websim.ai/@ISWEARIAMNOTADDICTEDTOPILLOW/ai-image-prompt-generator"


# --------------------------------------------------------------------------- headers


def test_chat_headers_are_exactly_the_contract() -> None:
    headers = _wire.build_headers("https://websim.ai", CHAT, {})
    assert headers == {
        "accept": "*/*",
        "accept-language": "en-US,en;q=0.9",
        "content-type": "text/plain;charset=UTF-8",
        "origin": "https://websim.ai",
        "referer": CHAT_REFERER,
        "user-agent": _wire.USER_AGENT,
        "websim-flags": "",
    }


def test_image_headers_use_the_image_referer() -> None:
    headers = _wire.build_headers("https://websim.ai", IMAGE, {})
    assert headers["referer"] == IMAGE_REFERER
    assert headers["origin"] == "https://websim.ai"


def test_user_agent_is_a_desktop_browser() -> None:
    ua = _wire.build_headers("https://websim.ai", CHAT, {})["user-agent"]
    assert ua.startswith("Mozilla/5.0 (")
    assert re.search(r"(Chrome|Firefox)/\d+", ua)
    assert not re.search(r"Mobile|Android|iPhone|python|aiohttp", ua, re.IGNORECASE)


def test_flags_header_is_bare_and_no_header_name_has_a_semicolon() -> None:
    for endpoint in (CHAT, IMAGE):
        headers = _wire.build_headers("https://websim.ai", endpoint, {})
        assert headers["websim-flags"] == ""
        assert not any(";" in name for name in headers)
        assert all(re.fullmatch(r"[a-z-]+", name) for name in headers)


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        ("https://api.websim.com", "https://api.websim.com"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
        ("https://websim.com/some/prefix", "https://websim.com"),
    ],
)
def test_origin_and_referer_follow_the_base_url(base_url: str, origin: str) -> None:
    chat = _wire.build_headers(base_url, CHAT, {})
    image = _wire.build_headers(base_url, IMAGE, {})
    assert chat["origin"] == image["origin"] == origin
    assert chat["referer"] == origin + "/@ISWEARIAMNOTADDICTEDTOPILLOW/zelos-ai-assistant"
    assert image["referer"] == origin + "/@ISWEARIAMNOTADDICTEDTOPILLOW/ai-image-prompt-generator"


def test_extra_headers_are_added_and_override_case_insensitively() -> None:
    headers = _wire.build_headers(
        "https://websim.ai", CHAT, {"X-Trace": "abc", "User-Agent": "mine/1.0"}
    )
    assert headers["X-Trace"] == "abc"
    assert headers["User-Agent"] == "mine/1.0"
    # One user agent only: the default must not travel next to the caller's.
    assert [n for n in headers if n.lower() == "user-agent"] == ["User-Agent"]
    assert headers["accept"] == "*/*"


# --------------------------------------------------------------------------- bodies


def test_chat_body_is_exact_json_text() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "héllo"},
    ]
    raw = _chat_body(messages, "abc_0123456789abcde")
    assert isinstance(raw, bytes)
    assert json.loads(raw) == {"project_id": "abc_0123456789abcde", "messages": messages}
    assert "héllo".encode() in raw  # UTF-8, not \u escapes


def test_json_flag_only_in_json_mode() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert "json" not in json.loads(_chat_body(messages, "p"))
    assert "json" not in json.loads(_chat_body(messages, "p", json_mode=False))
    assert json.loads(_chat_body(messages, "p", json_mode=True))["json"] is True


def test_image_body_is_exact_json_text() -> None:
    raw = _image_body("a lighthouse at dusk", "16:9", "kx0m131_rzz66qb2xoy7")
    assert json.loads(raw) == {
        "project_id": "kx0m131_rzz66qb2xoy7",
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
    }


# --------------------------------------------------------------------------- project ids


def test_project_id_formats() -> None:
    for _ in range(200):
        assert re.fullmatch(r"[a-z0-9]{3}_[a-z0-9]{15}", _requests.new_project_id(CHAT))
        assert re.fullmatch(r"[a-z0-9]{7}_[a-z0-9]{12}", _requests.new_project_id(IMAGE))
    assert CHAT.project_id_re.pattern == "^[a-z0-9]{3}_[a-z0-9]{15}$"
    assert IMAGE.project_id_re.pattern == "^[a-z0-9]{7}_[a-z0-9]{12}$"


def test_project_ids_are_fresh_and_use_the_whole_alphabet() -> None:
    ids = {_requests.new_project_id(CHAT) for _ in range(500)}
    assert len(ids) == 500
    seen = set("".join(ids).replace("_", ""))
    assert seen == set("abcdefghijklmnopqrstuvwxyz0123456789")


def test_project_ids_come_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    draws = iter(
        [
            bytes([35, 251] * 11),  # 35 and 251 (= 35 + 7 * 36) both spell '9'
            bytes([255, 252] * 4 + [0] * 10 + [37] * 4),  # bytes >= 252 are dropped...
            bytes([1] * 22),  # ... and the id is completed from a further draw
            bytes(range(23)),
        ]
    )

    def token_bytes(n: int) -> bytes:
        sizes.append(n)
        return next(draws)

    monkeypatch.setattr(_requests.secrets, "token_bytes", token_bytes)
    assert _requests.new_project_id(CHAT) == "999_" + "9" * 15
    assert _requests.new_project_id(CHAT) == "aaa_" + "a" * 7 + "b" * 8
    assert _requests.new_project_id(IMAGE) == "abcdefg_hijklmnopqrs"
    assert sizes == [22, 22, 22, 23]


def test_caller_project_id_is_used_as_given() -> None:
    assert _requests.validate_project_id("My-Own ID") == "My-Own ID"
    for bad in ("", "   ", "a\nb", "a\x00b"):
        with pytest.raises(ValueError, match="project_id"):
            _requests.validate_project_id(bad)
    with pytest.raises(ValueError, match="project_id"):
        _requests.validate_project_id(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- caller input


def test_normalize_base_url() -> None:
    assert _settings.normalize_base_url(" https://websim.ai/ ") == "https://websim.ai"
    assert _settings.normalize_base_url("http://127.0.0.1:9/x/") == "http://127.0.0.1:9/x"
    for bad in ("", "websim.ai", "ftp://websim.ai", "file:///etc/passwd", "https://"):
        with pytest.raises(ValueError, match="base_url"):
            _settings.normalize_base_url(bad)
    with pytest.raises(ValueError, match="query or fragment"):
        _settings.normalize_base_url("https://websim.ai/?a=1")


@pytest.mark.parametrize(
    "headers",
    [
        {"websim-flags;": ""},
        {"x bad": "1"},
        {"x:y": "1"},
        {"": "1"},
        {"x-ok": "a\r\nInjected: 1"},
        {"x-ok": "a\nb"},
        {"x-ok": "a\rb"},
        {"x-ok": "a\x00b"},
        {"x-ok": 3},
    ],
)
def test_bad_headers_are_refused(headers: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="header"):
        _settings.validate_headers(headers)


def test_good_headers_pass() -> None:
    assert _settings.validate_headers(None) == {}
    assert _settings.validate_headers({"X-Trace": "a b;c"}) == {"X-Trace": "a b;c"}


def test_aspect_ratio() -> None:
    for ok in ("1:1", "16:9", "9:16", " 4:3 ", "999:1"):
        assert _requests.validate_aspect_ratio(ok) == ok.strip()
    for bad in ("", "1", "0:1", "1:0", "16/9", "-1:1", "1000:1", "1.5:1", "a:b"):
        with pytest.raises(ValueError, match="aspect_ratio"):
            _requests.validate_aspect_ratio(bad)
    with pytest.raises(TypeError, match="aspect_ratio"):
        _requests.validate_aspect_ratio(1.0)  # type: ignore[arg-type]


def test_prompt() -> None:
    assert _requests.validate_prompt("  a cat \n") == "a cat"
    with pytest.raises(ValueError, match="prompt is empty"):
        _requests.validate_prompt(" \n\t")
    with pytest.raises(TypeError, match="prompt must be a string"):
        _requests.validate_prompt(None)  # type: ignore[arg-type]


def test_wire_messages() -> None:
    parts = [{"type": "text", "text": "hi"}]
    ok = _requests.validate_wire_messages(
        [
            {"role": "user", "content": "a", "name": "dropped-extra"},
            {"role": "user", "content": parts},
        ]
    )
    assert ok == [{"role": "user", "content": "a"}, {"role": "user", "content": parts}]
    with pytest.raises(ValueError, match="empty"):
        _requests.validate_wire_messages([])
    with pytest.raises(TypeError):
        _requests.validate_wire_messages("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message 0"):
        _requests.validate_wire_messages(["hello"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="message 1 has role 'tool'"):
        _requests.validate_wire_messages(
            [{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}]
        )
    with pytest.raises(ValueError, match="message 0 content"):
        _requests.validate_wire_messages([{"role": "user", "content": None}])


def test_image_prompt_from_messages() -> None:
    msgs = [
        {"role": "user", "content": "ignored: before the assistant"},
        {"role": "assistant", "content": "sure"},
        {"role": "user"},  # no content: nothing to add, but the run goes on
        {"role": "user", "content": "  a lighthouse  "},
        {"role": "user", "content": [{"type": "text", "text": " at dusk "}, {"type": "image_url"}]},
    ]
    assert _messages.image_prompt(msgs) == "a lighthouse\nat dusk"
    assert _messages.image_prompt(msgs, prompt=" explicit ") == "explicit"
    with pytest.raises(ValueError, match="no image prompt"):
        _messages.image_prompt([{"role": "user", "content": "x"}, {"role": "system"}])
    with pytest.raises(ValueError, match="no image prompt"):
        _messages.image_prompt([{"role": "user", "content": "   "}])


# --------------------------------------------------------------------------- responses


def test_chat_content_is_stripped() -> None:
    body = b'{"content": "  Hello!\\n "}'
    assert _wire.parse_chat_response(200, CHAT_URL, "application/json", body) == "Hello!"


@pytest.mark.parametrize("content", ["", " ", "\\n\\t \\r\\n", "\\u3000"])
def test_empty_chat_content_is_an_error(content: str) -> None:
    # The service said nothing: an empty string would pass for an answer, so it is refused.
    body = b'{"content": "' + content.encode() + b'"}'
    with pytest.raises(WebsimResponseError, match="'content' is empty") as info:
        _wire.parse_chat_response(200, CHAT_URL, "application/json", body)
    assert info.value.status_code == 200
    assert info.value.endpoint == "chat"


def test_image_url_is_returned() -> None:
    body = b'{"url": " https://cdn.websim.ai/x.png "}'
    got = _wire.parse_image_response(200, IMAGE_URL, "application/json", body)
    assert got == "https://cdn.websim.ai/x.png"


_CHAT_FAILURES = [
    ("text/html", b"<!DOCTYPE html><html><body>hi</body></html>", "HTML page"),
    ("application/json", b"<html>sneaky</html>", "HTML page"),
    ("application/json", b"{not json", "not valid JSON"),
    ("application/json", b"", "not valid JSON"),
    ("application/json", b"\xff\xfe\xfa", "not valid JSON"),
    ("application/json", b'["content"]', "got an array"),
    ("application/json", b'"just a string"', "got a string"),
    ("application/json", b"{}", "no 'content' field"),
    ("application/json", b'{"content": null}', "'content' is null"),
    ("application/json", b'{"content": 42}', "'content' is a number"),
    ("application/json", b'{"content": true}', "'content' is a boolean"),
    ("application/json", b'{"content": ["a"]}', "'content' is an array"),
    ("application/json", b'{"content": {"a": 1}}', "'content' is an object"),
]


@pytest.mark.parametrize(("content_type", "body", "problem"), _CHAT_FAILURES)
def test_unusable_chat_answers(content_type: str, body: bytes, problem: str) -> None:
    with pytest.raises(WebsimResponseError) as info:
        _wire.parse_chat_response(200, CHAT_URL, content_type, body)
    err = info.value
    assert problem in str(err)
    assert str(err).startswith("Websim chat: ")
    assert "HTTP 200" in str(err) and content_type in str(err)
    assert (err.endpoint, err.url, err.status_code, err.content_type) == (
        "chat",
        CHAT_URL,
        200,
        content_type,
    )
    assert err.body == _wire.excerpt(body)


_IMAGE_FAILURES = [
    (b"{}", "no 'url' field"),
    (b'{"url": null}', "'url' is null"),
    (b'{"url": 7}', "'url' is a number"),
    (b'{"url": "/images/x.png"}', "not an absolute http(s) URL"),
    (b'{"url": "images/x.png"}', "not an absolute http(s) URL"),
    (b'{"url": "javascript:alert(1)"}', "not an absolute http(s) URL"),
    (b'{"url": "data:image/png;base64,AAAA"}', "not an absolute http(s) URL"),
    (b'{"url": "ftp://cdn.websim.ai/x.png"}', "not an absolute http(s) URL"),
    (b'{"url": "https://"}', "not an absolute http(s) URL"),
    (b'{"url": "https://cdn.websim.ai/a b.png"}', "not an absolute http(s) URL"),
    (b'[{"url": "https://cdn.websim.ai/x.png"}]', "got an array"),
]


@pytest.mark.parametrize(("body", "problem"), _IMAGE_FAILURES)
def test_unusable_image_answers(body: bytes, problem: str) -> None:
    with pytest.raises(WebsimResponseError) as info:
        _wire.parse_image_response(201, IMAGE_URL, "application/json", body)
    err = info.value
    assert problem in str(err)
    assert str(err).startswith("Websim image: ")
    assert "HTTP 201" in str(err) and "application/json" in str(err)
    assert err.endpoint == "image" and err.status_code == 201


def test_error_quotes_a_short_excerpt() -> None:
    body = b"<html>" + b"x" * 5000 + b"</html>"
    with pytest.raises(WebsimResponseError) as info:
        _wire.parse_chat_response(200, CHAT_URL, "text/html", body)
    assert 0 < len(info.value.body) <= 500
    assert info.value.body.startswith("<html>xxx")
    assert repr(info.value.body) in str(info.value)


def test_excerpt_collapses_white_space_and_caps_length() -> None:
    assert _wire.excerpt(b"a \n\t b") == "a b"
    assert _wire.excerpt("x" * 501) == "x" * 499 + "…"
    assert len(_wire.excerpt("y" * 10_000)) == 500
    assert _wire.excerpt("z" * 500) == "z" * 500
    assert _wire.excerpt(b"\xff ok") == "\ufffd ok"


@pytest.mark.parametrize(
    ("content_type", "body", "headers", "expected"),
    [
        ("text/html", b"<html><title>Just a moment...</title></html>", {}, True),
        ("text/html", b"<html><script src='/cdn-cgi/challenge-platform/x'></script>", {}, True),
        ("text/html", b"<html>window._cf_chl_opt={}</html>", {}, True),
        ("application/json", b'{"error": "cf-chl"}', {}, False),
        ("text/html", b"<html>Forbidden</html>", {}, False),
        ("application/json", b"{}", {"cf-mitigated": "challenge"}, True),
    ],
)
def test_challenge_detection(
    content_type: str, body: bytes, headers: dict[str, str], expected: bool
) -> None:
    assert _wire.looks_like_challenge(content_type, body, headers) is expected


def test_known_names() -> None:
    assert _wire.DEFAULT_BASE_URL == "https://api.websim.com"
    assert _wire.BASE_URL_ENV == "WEBSIM_BASE_URL"
    assert _wire.CHAT_MODELS[0] == "gemini-1.5-pro"
    assert _wire.IMAGE_MODELS == ("flux",)
    assert _wire.DEFAULT_ASPECT_RATIO == "1:1"
    assert _wire.MAX_BODY_BYTES == 10 * 1024 * 1024
    assert CHAT.path == "/api/v1/inference/run_chat_completion"
    assert IMAGE.path == "/api/v1/inference/run_image_generation"
