"""``WebsimClient`` with HTTP mocked: what goes on the wire, what comes back, configuration,
closing, and the process-wide shared clients."""

from __future__ import annotations

import gc
import json
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from aioresponses.core import RequestCall
from yarl import URL

from langchain_websim import (
    ChatWebsim,
    WebsimChatResponse,
    WebsimClient,
    WebsimImageResponse,
    _client,
    _requests,
    _wire,
)
from langchain_websim._transport import redact_text, redact_url
from langchain_websim.errors import WebsimResponseError

BASE = "https://api.websim.com"
CHAT_URL = BASE + "/api/v1/inference/run_chat_completion"
IMAGE_URL = BASE + "/api/v1/inference/run_image_generation"
CHAT_RE = re.compile(r"^[a-z0-9]{3}_[a-z0-9]{15}$")
IMAGE_RE = re.compile(r"^[a-z0-9]{7}_[a-z0-9]{12}$")
MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "hi"},
    {"role": "user", "content": "how are you?"},
]


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., WebsimClient]]:
    clients: list[WebsimClient] = []

    def make(*args: Any, **kwargs: Any) -> WebsimClient:
        kwargs.setdefault("retry_base_delay", 0.01)
        client = WebsimClient(*args, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def calls(http: aioresponses, url: str) -> list[RequestCall]:
    return list(http.requests.get(("POST", URL(url)), []))


def body_of(call: RequestCall) -> Any:
    raw = call.kwargs["data"]
    assert isinstance(raw, bytes)  # JSON *text*, not aiohttp's json= (which sets its own type)
    return json.loads(raw)


# --------------------------------------------------------------------------- on the wire


async def test_chat_request_on_the_wire(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, payload={"content": "  fine, thanks \n"})
    answer = await make_client().achat(MESSAGES)
    assert isinstance(answer, WebsimChatResponse)
    assert answer.text == "fine, thanks"
    assert answer.attempts == 1
    assert answer.elapsed >= 0
    (call,) = calls(http, CHAT_URL)
    assert call.kwargs["headers"] == {
        "accept": "*/*",
        "accept-language": "en-US,en;q=0.9",
        "content-type": "text/plain;charset=UTF-8",
        "origin": "https://api.websim.com",
        "referer": "https://api.websim.com/@ISWEARIAMNOTADDICTEDTOPILLOW/zelos-ai-assistant",
        "user-agent": _wire.USER_AGENT,
        "websim-flags": "",
    }
    assert body_of(call) == {"project_id": answer.project_id, "messages": MESSAGES}
    assert call.kwargs["allow_redirects"] is False
    assert call.kwargs["proxy"] is None


async def test_image_request_on_the_wire(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.ai/x.png"})
    image = await make_client().agenerate_image("  a lighthouse at dusk ", aspect_ratio="16:9")
    assert isinstance(image, WebsimImageResponse)
    assert (image.url, image.prompt, image.aspect_ratio) == (
        "https://cdn.websim.ai/x.png",
        "a lighthouse at dusk",
        "16:9",
    )
    (call,) = calls(http, IMAGE_URL)
    headers = call.kwargs["headers"]
    assert headers["referer"] == (
        "https://api.websim.com/@ISWEARIAMNOTADDICTEDTOPILLOW/ai-image-prompt-generator"
    )
    assert headers["content-type"] == "text/plain;charset=UTF-8"
    assert headers["websim-flags"] == ""
    assert not any(";" in name for name in headers)
    assert body_of(call) == {
        "project_id": image.project_id,
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",
    }


async def test_default_aspect_ratio(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.ai/x.png"})
    image = await make_client().agenerate_image("a cat")
    assert image.aspect_ratio == "1:1"
    assert body_of(calls(http, IMAGE_URL)[0])["aspect_ratio"] == "1:1"


async def test_json_mode_adds_the_flag_only_when_asked(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, payload={"content": "{}"}, repeat=True)
    client = make_client()
    await client.achat(MESSAGES)
    await client.achat(MESSAGES, json_mode=True)
    plain, flagged = (body_of(c) for c in calls(http, CHAT_URL))
    assert "json" not in plain
    assert flagged["json"] is True
    assert set(flagged) == {"project_id", "messages", "json"}


def live_chat_requests() -> int:
    return sum(isinstance(o, _requests.ChatRequest) for o in gc.get_objects())


async def test_a_chat_call_holds_no_request_object_while_its_request_is_out(
    make_client: Callable[..., WebsimClient], http: aioresponses
) -> None:
    # In a batch of concurrent calls, every object a call keeps while its request is out
    # adds to the garbage collector's work; by then the chat request (with its copy of the
    # messages) has given its body.  (An image request is kept: its answer echoes it.)
    seen: list[int] = []

    def count(url: URL, **kwargs: Any) -> None:
        seen.append(live_chat_requests())

    http.post(CHAT_URL, payload={"content": "hi"}, callback=count)
    llm = ChatWebsim(client=make_client(BASE))
    gc.collect()
    before = live_chat_requests()
    assert (await llm.ainvoke("hello")).content == "hi"
    assert seen == [before]


async def test_origin_follows_the_base_url_and_extra_headers_merge(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    base = "http://127.0.0.1:8123/prefix"
    http.post(base + "/api/v1/inference/run_chat_completion", payload={"content": "x"})
    client = make_client(base + "/", headers={"X-Trace": "t1", "Accept-Language": "de-DE"})
    await client.achat(MESSAGES)
    (call,) = calls(http, base + "/api/v1/inference/run_chat_completion")
    headers = call.kwargs["headers"]
    assert headers["origin"] == "http://127.0.0.1:8123"
    assert headers["referer"] == (
        "http://127.0.0.1:8123/@ISWEARIAMNOTADDICTEDTOPILLOW/zelos-ai-assistant"
    )
    assert headers["X-Trace"] == "t1"
    assert headers["Accept-Language"] == "de-DE"
    assert "accept-language" not in headers  # replaced, not sent twice
    assert headers["user-agent"] == _wire.USER_AGENT


@pytest.mark.parametrize(
    "host", ["https://api.websim.com", "https://websim.com", "https://websim.ai"]
)
async def test_every_known_host_works_with_origin_and_referer_following_it(
    http: aioresponses, make_client: Callable[..., WebsimClient], host: str
) -> None:
    http.post(host + _wire.CHAT.path, payload={"content": "x"})
    http.post(host + _wire.IMAGE.path, payload={"url": "https://cdn.websim.test/x.png"})
    client = make_client(host)
    assert (await client.achat(MESSAGES)).text == "x"
    assert (await client.agenerate_image("a cat")).url == "https://cdn.websim.test/x.png"
    for endpoint in (_wire.CHAT, _wire.IMAGE):
        (call,) = calls(http, host + endpoint.path)
        assert call.kwargs["headers"]["origin"] == host
        assert call.kwargs["headers"]["referer"] == host + endpoint.referer_path


async def test_proxy_is_passed_to_every_request(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, payload={"content": "x"})
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.ai/x.png"})
    client = make_client(proxy="http://user:pw@proxy.local:3128")
    await client.achat(MESSAGES)
    await client.agenerate_image("a cat")
    assert calls(http, CHAT_URL)[0].kwargs["proxy"] == "http://user:pw@proxy.local:3128"
    assert calls(http, IMAGE_URL)[0].kwargs["proxy"] == "http://user:pw@proxy.local:3128"


# --------------------------------------------------------------------------- project ids


async def test_fresh_project_id_per_request(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, payload={"content": "x"}, repeat=True)
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.ai/x.png"}, repeat=True)
    client = make_client()
    chats = [await client.achat(MESSAGES) for _ in range(5)]
    images = [await client.agenerate_image("a cat") for _ in range(5)]
    assert all(CHAT_RE.match(c.project_id) for c in chats)
    assert all(IMAGE_RE.match(i.project_id) for i in images)
    assert len({c.project_id for c in chats}) == 5
    assert len({i.project_id for i in images}) == 5
    sent = [body_of(c)["project_id"] for c in calls(http, CHAT_URL)]
    assert sent == [c.project_id for c in chats]


async def test_project_ids_are_drawn_from_secrets(
    http: aioresponses, make_client: Callable[..., WebsimClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[int] = []

    def token_bytes(n: int) -> bytes:
        drawn.append(n)
        return bytes([35] * n)  # the alphabet's last character

    monkeypatch.setattr(_requests.secrets, "token_bytes", token_bytes)
    http.post(CHAT_URL, payload={"content": "x"})
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.ai/x.png"})
    client = make_client()
    assert (await client.achat(MESSAGES)).project_id == "999_" + "9" * 15
    assert (await client.agenerate_image("a cat")).project_id == "9999999_" + "9" * 12
    assert drawn == [22, 23]  # one draw per id


async def test_callers_project_id_is_used_as_given(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, payload={"content": "x"}, repeat=True)
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.ai/x.png"})
    client = make_client()
    chat = await client.achat(MESSAGES, project_id="My Project-1")
    image = await client.agenerate_image("a cat", project_id="ke3_xh5gai3gjkmruomu")
    assert chat.project_id == "My Project-1"
    assert image.project_id == "ke3_xh5gai3gjkmruomu"
    assert body_of(calls(http, CHAT_URL)[0])["project_id"] == "My Project-1"
    assert body_of(calls(http, IMAGE_URL)[0])["project_id"] == "ke3_xh5gai3gjkmruomu"
    # The same id twice is the caller's choice: it is not replaced by a fresh one.
    again = await client.achat(MESSAGES, project_id="My Project-1")
    assert again.project_id == "My Project-1"


# --------------------------------------------------------------------------- answers


_CHAT_FAILURES: list[tuple[dict[str, Any], str]] = [
    ({"body": "<html><body>Welcome</body></html>", "content_type": "text/html"}, "HTML page"),
    ({"body": "{oops", "content_type": "application/json"}, "not valid JSON"),
    ({"payload": [{"content": "x"}]}, "got an array"),
    ({"payload": {"text": "x"}}, "no 'content' field"),
    ({"payload": {"content": None}}, "'content' is null"),
    ({"payload": {"content": 12}}, "'content' is a number"),
]


@pytest.mark.parametrize(("answer", "problem"), _CHAT_FAILURES)
async def test_unusable_chat_answers_raise_and_are_not_retried(
    http: aioresponses,
    make_client: Callable[..., WebsimClient],
    answer: dict[str, Any],
    problem: str,
) -> None:
    http.post(CHAT_URL, **answer)
    http.post(CHAT_URL, payload={"content": "would be the retry"})
    with pytest.raises(WebsimResponseError) as info:
        await make_client().achat(MESSAGES)
    err = info.value
    text = str(err)
    assert problem in text
    assert text.startswith("Websim chat: ")
    assert "HTTP 200" in text
    assert (err.content_type or "") in text and err.content_type
    assert err.body and repr(err.body) in text
    assert len(err.body) <= 500
    assert (err.endpoint, err.status_code, err.attempts) == ("chat", 200, 1)
    assert len(calls(http, CHAT_URL)) == 1


_IMAGE_FAILURES: list[tuple[dict[str, Any], str]] = [
    ({"payload": {"image": "https://cdn.websim.ai/x.png"}}, "no 'url' field"),
    ({"payload": {"url": "/images/x.png"}}, "not an absolute http(s) URL"),
    ({"payload": {"url": "javascript:alert(1)"}}, "not an absolute http(s) URL"),
    ({"payload": {"url": "data:image/png;base64,iVBORw0KGgo="}}, "not an absolute http(s) URL"),
    ({"body": "<!doctype html><p>hi</p>", "content_type": "text/html"}, "HTML page"),
]


@pytest.mark.parametrize(("answer", "problem"), _IMAGE_FAILURES)
async def test_unusable_image_answers_raise(
    http: aioresponses,
    make_client: Callable[..., WebsimClient],
    answer: dict[str, Any],
    problem: str,
) -> None:
    http.post(IMAGE_URL, **answer)
    with pytest.raises(WebsimResponseError) as info:
        await make_client().agenerate_image("a cat")
    assert problem in str(info.value)
    assert str(info.value).startswith("Websim image: ")
    assert info.value.endpoint == "image"


async def test_long_bodies_are_quoted_as_a_short_excerpt(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, body="<html>" + "spam " * 10_000, content_type="text/html")
    with pytest.raises(WebsimResponseError) as info:
        await make_client().achat(MESSAGES)
    assert len(info.value.body) <= 500
    assert len(str(info.value)) < 800


async def test_response_error_after_retries_counts_the_attempts(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(CHAT_URL, status=500)
    http.post(CHAT_URL, body="not json")
    with pytest.raises(WebsimResponseError) as info:
        await make_client().achat(MESSAGES)
    assert info.value.attempts == 2


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    # aioresponses cannot feed multi-MiB bodies; the cap logic is the same at any size (the
    # integration tests stream a real 11 MiB body).
    monkeypatch.setattr(_wire, "MAX_BODY_BYTES", 4096)
    return 4096


async def test_body_over_the_cap_is_refused(
    http: aioresponses, make_client: Callable[..., WebsimClient], small_cap: int
) -> None:
    http.post(CHAT_URL, body=b"x" * (small_cap + 1), content_type="application/json")
    http.post(CHAT_URL, payload={"content": "would be the retry"})
    with pytest.raises(WebsimResponseError, match="exceeds the 4096 bytes cap") as info:
        await make_client().achat(MESSAGES)
    assert info.value.status_code == 200
    assert 0 < len(info.value.body) <= 500
    assert info.value.attempts == 1
    assert len(calls(http, CHAT_URL)) == 1


async def test_announced_body_over_the_cap_is_not_read(
    http: aioresponses, make_client: Callable[..., WebsimClient]
) -> None:
    http.post(
        CHAT_URL,
        body='{"content": "x"}',
        headers={"Content-Length": str(_wire.MAX_BODY_BYTES + 1)},
    )
    with pytest.raises(WebsimResponseError, match="exceeds the 10 MiB cap") as info:
        await make_client().achat(MESSAGES)
    assert info.value.body == ""  # nothing was read


async def test_body_at_the_cap_is_fine(
    http: aioresponses, make_client: Callable[..., WebsimClient], small_cap: int
) -> None:
    prefix, suffix = b'{"content": "', b'"}'
    filler = b"y" * (small_cap - len(prefix) - len(suffix))
    http.post(CHAT_URL, body=prefix + filler + suffix)
    answer = await make_client().achat(MESSAGES)
    assert len(answer.text) == len(filler)


# --------------------------------------------------------------------------- caller input


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda c: c.achat([]), ValueError, "messages is empty"),
        (lambda c: c.achat([{"role": "tool", "content": "x"}]), ValueError, "role 'tool'"),
        (lambda c: c.achat("hello"), TypeError, "messages must be a list"),
        (lambda c: c.achat(MESSAGES, project_id=""), ValueError, "project_id"),
        (lambda c: c.achat(MESSAGES, project_id="a\r\nb"), ValueError, "control characters"),
        (lambda c: c.agenerate_image("  "), ValueError, "prompt is empty"),
        (lambda c: c.agenerate_image("a cat", aspect_ratio="wide"), ValueError, "aspect_ratio"),
        (lambda c: c.agenerate_image("a cat", project_id="\x00"), ValueError, "project_id"),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    http: aioresponses,
    make_client: Callable[..., WebsimClient],
    call: Callable[[WebsimClient], Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        await call(make_client())
    assert http.requests == {}


# --------------------------------------------------------------------------- configuration


def test_defaults() -> None:
    with WebsimClient() as client:
        assert client.base_url == "https://api.websim.com"
        assert (client.timeout, client.max_retries, client.proxy, client.settings.headers) == (
            120.0,
            2,
            None,
            None,
        )
        assert (client.retry.base_delay, client.retry.max_delay) == (1.0, 30.0)
        assert client.settings.max_connections == 100
        assert (client.settings.ca_bundle, client.settings.ssl_context) == (None, None)


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSIM_BASE_URL", "https://api.websim.com/")
    with WebsimClient() as client:
        assert client.base_url == "https://api.websim.com"
    with WebsimClient("https://websim.com") as explicit:
        assert explicit.base_url == "https://websim.com"  # an argument beats the environment


def test_bad_base_url_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSIM_BASE_URL", "ftp://websim.ai")
    with pytest.raises(ValueError, match="base_url"):
        WebsimClient()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"base_url": "ftp://websim.ai"}, ValueError, "base_url"),
        ({"base_url": "websim.ai"}, ValueError, "base_url"),
        ({"base_url": ""}, ValueError, "base_url"),
        ({"base_url": "javascript:alert(1)"}, ValueError, "base_url"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"timeout": "10"}, TypeError, "timeout"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": 2.5}, TypeError, "max_retries"),
        ({"retry_base_delay": -1}, ValueError, "retry_base_delay"),
        ({"retry_max_delay": None}, TypeError, "retry_max_delay"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"max_connections": 1.5}, TypeError, "max_connections"),
        ({"headers": {"x-ok": "a\r\nb"}}, ValueError, "control character"),
        ({"headers": {"x-ok": "a\nInjected: 1"}}, ValueError, "control character"),
        ({"headers": {"x\r\nInjected": "1"}}, ValueError, "not a valid HTTP token"),
        ({"headers": {"websim-flags;": ""}}, ValueError, "not a valid HTTP token"),
        ({"proxy": "socks5://proxy.local:1080"}, ValueError, "proxy"),
        ({"proxy": "proxy.local:3128"}, ValueError, "proxy"),
        ({"proxy": "http://proxy.local:99999"}, ValueError, "proxy"),
        ({"proxy": 3128}, TypeError, "proxy"),
        ({"ssl_context": False}, TypeError, "ssl_context"),
        ({"ssl_context": "/etc/ssl/ca.pem"}, TypeError, "ssl_context"),
    ],
)
def test_constructor_validation(
    http: aioresponses, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        WebsimClient(**kwargs)
    assert http.requests == {}


async def test_ssl_context_verifies_every_connection(
    http: aioresponses, make_client: Callable[..., WebsimClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    connectors: list[dict[str, Any]] = []
    real_connector = aiohttp.TCPConnector

    def spy(*args: Any, **kwargs: Any) -> aiohttp.TCPConnector:
        connectors.append(kwargs)
        return real_connector(*args, **kwargs)

    monkeypatch.setattr(aiohttp, "TCPConnector", spy)
    http.post(CHAT_URL, payload={"content": "x"}, repeat=True)
    trust = ssl.create_default_context()
    custom = make_client(ssl_context=trust)
    default = make_client()
    assert (custom.settings.ssl_context, default.settings.ssl_context) == (trust, None)
    await custom.achat(MESSAGES)
    await default.achat(MESSAGES)
    # The caller's context, else aiohttp's default verification: never verification off.
    assert [c["ssl"] for c in connectors] == [trust, True]


def test_shared_clients_differ_by_ssl_context(shared_clients: list[WebsimClient]) -> None:
    trust = ssl.create_default_context()
    a = WebsimClient.shared(max_connections=9, ssl_context=trust)
    b = WebsimClient.shared(max_connections=9)
    shared_clients.extend([a, b])
    assert WebsimClient.shared(max_connections=9, ssl_context=trust) is a
    assert a is not b and a.settings.ssl_context is trust and b.settings.ssl_context is None


def test_repr_hides_proxy_credentials() -> None:
    with WebsimClient(proxy="http://alice:s3cr3t@proxy.local:3128", timeout=5) as client:
        text = repr(client)
    assert "s3cr3t" not in text and "alice" not in text
    assert "http://***@proxy.local:3128" in text
    assert "base_url='https://api.websim.com'" in text and "timeout=5.0" in text


def test_bad_proxy_message_hides_credentials() -> None:
    with pytest.raises(ValueError, match="proxy") as info:
        WebsimClient(proxy="socks5://alice:s3cr3t@proxy.local:1080")
    assert "s3cr3t" not in str(info.value)


def test_redaction_helpers() -> None:
    assert redact_url(None) is None
    assert redact_url("http://proxy.local:3128") == "http://proxy.local:3128"
    assert redact_url("http://a:b@[::1]:3128/x") == "http://***@[::1]:3128/x"
    assert redact_url("http://[::1") == "<unparseable URL>"
    proxy = "http://alice:s3cr3t@proxy.local:3128"
    text = f"Cannot connect to {proxy} (alice, s3cr3t)"
    assert redact_text(text, proxy) == "Cannot connect to *** (***, ***)"
    assert redact_text("untouched", None) == "untouched"


# --------------------------------------------------------------------------- closing


async def test_closed_client_refuses_calls(http: aioresponses) -> None:
    client = WebsimClient()
    assert not client.closed
    await client.aclose()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.achat(MESSAGES)
    with pytest.raises(RuntimeError, match="closed"):
        await client.agenerate_image("a cat")
    with pytest.raises(RuntimeError, match="closed"):
        client.chat(MESSAGES)
    with pytest.raises(RuntimeError, match="closed"):
        client.generate_image("a cat")
    assert http.requests == {}
    await client.aclose()  # idempotent
    client.close()


def test_sync_twins(http: aioresponses) -> None:
    http.post(CHAT_URL, payload={"content": " sync "})
    http.post(IMAGE_URL, payload={"url": "https://cdn.websim.ai/s.png"})
    with WebsimClient() as client:
        assert client.chat(MESSAGES, project_id="mine").text == "sync"
        image = client.generate_image("a cat", aspect_ratio="9:16")
        assert (image.url, image.aspect_ratio) == ("https://cdn.websim.ai/s.png", "9:16")
        # Run on this thread's own loop: no loop thread was started for them.
        assert not client._background.running
        assert len(client._sessions) == 1
    assert client.closed
    assert len(client._sessions) == 0


async def test_async_context_manager_closes(http: aioresponses) -> None:
    http.post(CHAT_URL, payload={"content": "x"})
    async with WebsimClient() as client:
        await client.achat(MESSAGES)
        assert len(client._sessions) == 1
    assert client.closed
    assert len(client._sessions) == 0


# --------------------------------------------------------------------------- shared clients


@pytest.fixture
def shared_clients() -> Iterator[list[WebsimClient]]:
    made: list[WebsimClient] = []
    yield made
    for client in made:
        client.close()


def test_shared_is_one_client_per_configuration(
    monkeypatch: pytest.MonkeyPatch, shared_clients: list[WebsimClient]
) -> None:
    def shared(*args: Any, **kwargs: Any) -> WebsimClient:
        client = WebsimClient.shared(*args, **kwargs)
        shared_clients.append(client)
        return client

    a = shared(timeout=30, max_retries=1)
    assert shared(timeout=30.0, max_retries=1) is a
    assert shared("https://api.websim.com/", timeout=30, max_retries=1) is a
    monkeypatch.setenv("WEBSIM_BASE_URL", "https://api.websim.com")
    assert shared(timeout=30, max_retries=1) is a
    monkeypatch.delenv("WEBSIM_BASE_URL")

    others = [
        shared(timeout=31, max_retries=1),
        shared(timeout=30, max_retries=2),
        shared("https://websim.ai", timeout=30, max_retries=1),
        shared(timeout=30, max_retries=1, headers={"X-A": "1"}),
        shared(timeout=30, max_retries=1, proxy="http://proxy.local:1"),
        shared(timeout=30, max_retries=1, retry_base_delay=0.5),
        shared(timeout=30, max_retries=1, retry_max_delay=5),
        shared(timeout=30, max_retries=1, max_connections=3),
    ]
    assert all(o is not a for o in others)
    assert len({id(o) for o in others}) == len(others)
    assert shared(timeout=30, max_retries=1, headers={"X-A": "1"}) is others[3]
    assert (others[0].timeout, others[1].max_retries) == (31.0, 2)


def test_shared_gives_a_new_client_after_close() -> None:
    first = WebsimClient.shared(max_connections=7)
    first.close()
    second = WebsimClient.shared(max_connections=7)
    try:
        assert second is not first
        assert not second.closed
    finally:
        second.close()


def test_shared_validates_like_the_constructor() -> None:
    with pytest.raises(ValueError, match="control character"):
        WebsimClient.shared(headers={"x": "a\nb"})
    with pytest.raises(ValueError, match="timeout"):
        WebsimClient.shared(timeout=-5)
    assert not any(c.timeout == -5 for c in _client._SHARED.values())


def test_close_shared_closes_the_shared_clients_of_one_base_url_only() -> None:
    first = WebsimClient.shared("http://close-me.test")
    second = WebsimClient.shared("http://close-me.test", max_retries=0)
    other = WebsimClient.shared("http://keep-me.test")
    try:
        WebsimClient.close_shared("http://close-me.test")
        assert first.closed and second.closed and not other.closed
        fresh = WebsimClient.shared("http://close-me.test")
        assert fresh is not first and not fresh.closed
        fresh.close()
    finally:
        other.close()
