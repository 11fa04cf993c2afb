"""Property-based tests (hypothesis) for message conversion and response parsing.

Arbitrary Unicode (lone surrogates included), huge strings and deeply nested JSON must
never crash the conversion or the parsers with anything but the documented errors --
``ValueError``/``TypeError`` for the caller's input, ``WebsimResponseError`` for what the
service sent -- and a parser must never hand back an empty answer or an unusable URL.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
from aioresponses import aioresponses
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_websim import ChatWebsim, WebsimClient, _content, _requests, _wire
from langchain_websim._messages import convert_messages
from langchain_websim._retry import parse_retry_after_header
from langchain_websim.errors import WebsimResponseError


def _chat_body(messages: Any, project_id: str, json_mode: bool = False) -> bytes:
    return _requests.ChatRequest(messages, project_id, json_mode).body()


def _image_body(prompt: str, aspect_ratio: str, project_id: str) -> bytes:
    return _requests.ImageRequest(prompt, aspect_ratio, project_id).body()


CHAT_URL = "http://websim.test" + _wire.CHAT.path
IMAGE_URL = "http://websim.test" + _wire.IMAGE.path
HEAVY = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])

# Every code point, lone surrogates too (they cannot be encoded as UTF-8).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=200)
BLANK = st.text(st.sampled_from(" \t\r\n\x0b\x0c\u00a0\u1680\u2003\u2028\u3000"), max_size=20)
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
CONTENT_TYPES = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "", "text/html"]
) | st.text(max_size=40)


def nested(depth: int, opener: str, closer: str) -> str:
    return opener * depth + closer * depth


# --------------------------------------------------------------------------- message conversion

TEXT_BLOCKS = ANY_TEXT.map(lambda t: {"type": "text", "text": t})
_PNG64 = "iVBORw0KGgo="  # base64 of the PNG signature
# Image blocks in every accepted form, with the URL each is sent as.
VALID_IMAGES: dict[str, tuple[dict[str, Any], str]] = {
    "url": ({"type": "image", "url": "https://x.test/a.png"}, "https://x.test/a.png"),
    "openai": (
        {"type": "image_url", "image_url": {"url": "https://x.test/b.png"}},
        "https://x.test/b.png",
    ),
    "openai-str": ({"type": "image_url", "image_url": "http://x.test/c"}, "http://x.test/c"),
    "base64": (
        {"type": "image", "base64": _PNG64, "mime_type": "image/png"},
        f"data:image/png;base64,{_PNG64}",
    ),
    "anthropic": (
        {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": _PNG64}},
        f"data:image/gif;base64,{_PNG64}",
    ),
}
INVALID_IMAGES = [
    {"type": "image", "base64": "abc", "mime_type": "image/png"},
    {"type": "image", "base64": _PNG64, "mime_type": "image/bmp"},
    {"type": "image", "base64": _PNG64},
    {"type": "image", "url": "ftp://x.test/a.png"},
    {"type": "image", "file_id": "file-1"},
    {"type": "image_url", "image_url": {}},
    {"type": "image_url", "image_url": {"url": "data:image/png,raw"}},
]
OTHER_BLOCKS = st.one_of(
    st.sampled_from([block for block, _ in VALID_IMAGES.values()] + INVALID_IMAGES),
    st.sampled_from(["audio", "file", "video", "tool_use", "thinking"]).map(
        lambda kind: {"type": kind, "url": "https://x.test/a"}
    ),
    st.just({"type": "text"}),
    st.integers().map(lambda n: {"type": "text", "text": n}),
    st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=3),
)
CONTENT = ANY_TEXT | st.lists(ANY_TEXT | TEXT_BLOCKS | OTHER_BLOCKS, max_size=5)
ROLES = st.sampled_from(["system", "user", "assistant", "tool", "developer", "function"]) | ANY_TEXT


@st.composite
def messages(draw: st.DrawFn) -> BaseMessage:
    content = draw(CONTENT)
    kind = draw(st.sampled_from(["human", "ai", "system", "chat", "tool", "function"]))
    if kind == "human":
        return HumanMessage(content=content)
    if kind == "ai":
        return AIMessage(content=content)
    if kind == "system":
        return SystemMessage(content=content)
    if kind == "chat":
        return ChatMessage(content=content, role=draw(ROLES))
    if kind == "tool":
        return ToolMessage(content=content, tool_call_id="call_1")
    return FunctionMessage(content=content, name="f")


def _sent_url(block: dict[str, Any]) -> str | None:
    for valid, url in VALID_IMAGES.values():
        if block == valid:
            return url
    return None


def expected_content(message: BaseMessage) -> str | list[dict[str, Any]] | None:
    """What a message's content maps to, or None when it holds something Websim cannot take:
    text stays a string; images (in user turns only) make a list of text and image_url parts."""
    content = message.content
    if isinstance(content, str):
        return content
    user = isinstance(message, HumanMessage) or getattr(message, "role", None) == "user"
    parts: list[dict[str, Any]] = []
    for block in content:
        text = block if isinstance(block, str) else block.get("text")
        if isinstance(block, dict) and block.get("type") != "text":
            url = _sent_url(block)
            if url is None or not user:
                return None
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif not isinstance(text, str):
            return None
        elif parts and parts[-1]["type"] == "text":
            parts[-1]["text"] += text
        else:
            parts.append({"type": "text", "text": text})
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return [part for part in parts if part["type"] != "text" or part["text"]]


def known(message: BaseMessage) -> bool:
    """A system, human or AI message without tool calls, or a ChatMessage with a Websim role."""
    if isinstance(message, ChatMessage):
        return message.role in _wire.CHAT_ROLES
    if isinstance(message, AIMessage) and (message.tool_calls or message.invalid_tool_calls):
        return False
    return isinstance(message, (HumanMessage, AIMessage, SystemMessage))


def assistant(message: BaseMessage) -> bool:
    """A past assistant turn: carried as text whatever it holds, never refused."""
    return isinstance(message, AIMessage) or getattr(message, "role", None) == "assistant"


def plain(message: BaseMessage) -> bool:
    return assistant(message) or (known(message) and expected_content(message) is not None)


@HEAVY
@given(st.lists(messages(), max_size=6))
def test_conversion_maps_or_refuses_and_never_crashes(conversation: list[BaseMessage]) -> None:
    before = [m.model_dump() for m in conversation]
    try:
        wire = convert_messages(conversation)
    except ValueError as exc:
        assert str(exc)  # says what is wrong
        assert not all(plain(m) for m in conversation) or not conversation
        return
    finally:
        assert [m.model_dump() for m in conversation] == before  # never mutated
    assert len(wire) == len(conversation)
    for message, mapped in zip(conversation, wire, strict=True):
        assert mapped["role"] in _wire.CHAT_ROLES
        content = mapped["content"]
        assert isinstance(content, str) or all(
            _content.part_problem(part, mapped["role"]) is None for part in content
        )
        if assistant(message):  # text only, and never a byte of inline data
            assert isinstance(content, str)
            assert "base64," not in content or "base64," in message.text
            if expected_content(message) is not None and isinstance(message.content, str):
                assert content == expected_content(message)
        elif known(message):  # passed on exactly; anything else was refused above
            assert content == expected_content(message)


@HEAVY
@given(st.lists(messages(), min_size=1, max_size=6))
def test_a_converted_conversation_is_sent_intact_or_refused(
    conversation: list[BaseMessage],
) -> None:
    try:
        wire = _requests.validate_wire_messages(convert_messages(conversation))
        body = _chat_body(wire, "abc_0123456789abcde")
    except ValueError as exc:
        assert str(exc)
        return
    sent = json.loads(body)
    assert sent["messages"] == wire
    # never an empty conversation
    assert any(
        part["type"] == "image_url" or part["text"].strip()
        for m in sent["messages"]
        for part in (
            [{"type": "text", "text": m["content"]}]
            if isinstance(m["content"], str)
            else m["content"]
        )
    )


@given(ANY_TEXT)
@example("\ud800 a lone surrogate")
def test_text_that_is_not_valid_unicode_is_refused_clearly(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        valid = False
    else:
        valid = True
    message = [{"role": "user", "content": f"say {text}"}]
    if valid:
        assert json.loads(_chat_body(message, "abc_0123456789abcde"))["messages"] == message
        return
    with pytest.raises(ValueError, match="not valid Unicode"):
        _chat_body(message, "abc_0123456789abcde")
    with pytest.raises(ValueError, match="not valid Unicode"):
        _image_body(f"a {text}", "1:1", "abcdefg_0123456789ab")


@given(ANY_TEXT | BLANK)
def test_image_prompt_is_stripped_text_or_refused(prompt: str) -> None:
    try:
        clean = _requests.validate_prompt(prompt)
    except ValueError:
        assert not prompt.strip()
        return
    assert clean == prompt.strip() and clean


# --------------------------------------------------------------------------- chat parsing


def parse_chat(body: bytes, content_type: str = "application/json") -> str:
    return _wire.parse_chat_response(200, CHAT_URL, content_type, body)


@given(st.binary(max_size=2000), CONTENT_TYPES)
def test_any_bytes_give_an_answer_or_a_response_error(body: bytes, content_type: str) -> None:
    try:
        text = parse_chat(body, content_type)
    except WebsimResponseError as exc:
        assert exc.endpoint == "chat" and exc.status_code == 200
        assert len(exc.body) <= _wire.EXCERPT_CHARS
        return
    assert text and text == text.strip()


@HEAVY
@given(JSON_VALUES)
def test_any_json_gives_its_content_or_a_response_error(value: Any) -> None:
    for document in (value, {"content": value}, {"content": value, "extra": [value]}):
        body = json.dumps(document, ensure_ascii=False).encode()
        content = document.get("content") if isinstance(document, dict) else None
        if isinstance(content, str) and content.strip():
            assert parse_chat(body) == content.strip()
        else:
            with pytest.raises(WebsimResponseError):
                parse_chat(body)


@given(ANY_TEXT.filter(lambda t: t.strip()), st.booleans())
def test_every_non_blank_string_content_is_answered_whatever_it_says(
    content: str, ascii_only: bool
) -> None:
    # HTML, JSON or code inside the answer is still the answer.
    for text in (content, f"<html>{content}</html>", f'{{"content": "{content}"}}'):
        body = json.dumps({"content": text}, ensure_ascii=ascii_only).encode(
            "utf-8", "surrogatepass"
        )
        if not ascii_only and any(0xD800 <= ord(c) <= 0xDFFF for c in text):
            continue  # not UTF-8 at all: covered by the bytes property above
        assert parse_chat(body) == text.strip()


@given(BLANK)
def test_blank_content_is_never_returned(blank: str) -> None:
    with pytest.raises(WebsimResponseError, match="'content' is empty"):
        parse_chat(json.dumps({"content": blank}).encode())


@settings(deadline=None, max_examples=15)
@given(st.integers(1, 12 * 1024 * 1024), st.booleans())
@example(11 * 1024 * 1024, False)
@example(11 * 1024 * 1024, True)
def test_huge_strings(size: int, blank: bool) -> None:
    text = " " * size if blank else "x" * size
    body = json.dumps({"content": f" {text} "}).encode()
    if blank:
        with pytest.raises(WebsimResponseError, match="'content' is empty") as info:
            parse_chat(body)
        assert len(info.value.body) <= _wire.EXCERPT_CHARS  # never the whole body
    else:
        assert parse_chat(body) == text


@settings(deadline=None, max_examples=25)
@given(st.integers(1, 200_000), st.sampled_from([("[", "]"), ('{"a":', "}")]))
@example(sys.getrecursionlimit() + 1, ("[", "]"))
@example(200_000, ('{"a":', "}"))
def test_deeply_nested_json_is_a_response_error(depth: int, brackets: tuple[str, str]) -> None:
    inner = nested(depth, *brackets) if brackets[0] == "[" else '{"a":' * depth + "1" + "}" * depth
    for body in (inner, f'{{"content": {inner}}}'):
        with pytest.raises(WebsimResponseError):
            parse_chat(body.encode())
        with pytest.raises(WebsimResponseError):
            _wire.parse_image_response(200, IMAGE_URL, "application/json", body.encode())


@pytest.mark.parametrize(
    "body",
    [
        b'{"content": ' + b"1" * 5000 + b"}",  # past Python's int-digits limit
        b'{"content": 1e999}',
        b'{"content": NaN}',
        b'{"content": "x", "content": null}',  # the last duplicate wins
        b"\xef\xbb\xbf" + b'{"content": "bom"}',
        '{"content": "utf-16"}'.encode("utf-16"),
    ],
)
def test_odd_json_never_crashes(body: bytes) -> None:
    try:
        text = parse_chat(body)
    except WebsimResponseError:
        return
    assert text and text == text.strip()


# --------------------------------------------------------------------------- image parsing


def is_absolute_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 <= parts.port <= 65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port_ok


def usable(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    url = value.strip()
    return is_absolute_http(url) and not any(c.isspace() or ord(c) < 32 for c in url)


URLISH = st.one_of(
    ANY_TEXT,
    st.builds(
        "{}{}{}".format,
        st.sampled_from(
            ["http://", "https://", "HTTPS://", "//", "javascript:", "data:", "ftp://", ""]
        ),
        st.text(max_size=30),
        st.sampled_from(["/a.png", "", "?x=1", "#f", " ", "\n"]),
    ),
)


@HEAVY
@given(URLISH | JSON_VALUES)
@example("A://[")  # urlsplit raises ValueError on these: still a WebsimResponseError
@example("http://[::1/a.png")
@example("https://cdn.websim.test:99999/a.png")
@example("https://[::1]:8080/a.png")
def test_image_parsing_yields_an_absolute_http_url_or_a_response_error(value: Any) -> None:
    body = json.dumps({"url": value}, ensure_ascii=True).encode()
    try:
        url = _wire.parse_image_response(200, IMAGE_URL, "application/json", body)
    except WebsimResponseError as exc:
        assert exc.endpoint == "image"
        assert not usable(value)  # a usable URL is never refused
        return
    assert isinstance(value, str) and url == value.strip()
    assert is_absolute_http(url)
    assert not any(c.isspace() or ord(c) < 32 for c in url)


# --------------------------------------------------------------------------- end to end


@HEAVY
@given(body=JSON_VALUES.map(lambda v: {"content": v}) | st.builds(dict, content=ANY_TEXT | BLANK))
def test_chat_websim_never_answers_empty(body: dict[str, Any]) -> None:
    with aioresponses() as http, WebsimClient("http://websim.test", max_retries=0) as client:
        raw = json.dumps(body, ensure_ascii=True).encode()
        http.post(CHAT_URL, body=raw, content_type="application/json")
        llm = ChatWebsim(client=client)
        try:
            reply = llm.invoke("hi")
        except WebsimResponseError:
            content = body["content"]
            assert not (isinstance(content, str) and content.strip())
            return
    assert isinstance(reply.content, str) and reply.content
    assert reply.content == reply.content.strip() == body["content"].strip()


# --------------------------------------------------------------------------- headers in answers


@given(st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms"]), ANY_TEXT, max_size=2))
@example({"retry-after": "1e999"})
@example({"retry-after": "-5"})
@example({"retry-after-ms": "nan"})
@example({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
def test_retry_after_is_a_finite_wait_or_ignored(headers: dict[str, str]) -> None:
    wait = parse_retry_after_header(headers)
    assert wait is None or (math.isfinite(wait) and wait >= 0)
