"""Security guarantees: project ids from ``secrets``, TLS verification on by default, proxy
credentials kept out of every repr, log line, error and trace, prompts and answers kept out
of logs above DEBUG, image URLs accepted only as absolute http(s), and no redirect followed.

Most tests mock HTTP.  The proxy and redirect tests need a real TCP exchange to mean
anything, so they (and only they) open sockets, to 127.0.0.1 only: a closed local port as
the proxy, and the package's emulator as the server that redirects.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import socket
import ssl
import traceback
import types
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_socket
from aioresponses import aioresponses
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.load import dumpd
from langchain_core.tools import ToolException
from pydantic import ValidationError
from yarl import URL

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool, _requests, _wire
from langchain_websim._wire import CHAT, IMAGE, Endpoint
from langchain_websim.errors import WebsimAPIError, WebsimConnectionError, WebsimResponseError
from langchain_websim.testing import WebsimEmulator

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
DRAWS = 2000
BASE = "https://api.websim.com"
CHAT_URL = BASE + CHAT.path
IMAGE_URL = BASE + IMAGE.path
CDN = "https://cdn.websim.test/a.png"


@pytest.fixture
def made() -> Iterator[Callable[[Any], Any]]:
    """Registers clients, models and tools; closes whatever they opened."""
    objects: list[Any] = []
    yield lambda obj: objects.append(obj) or obj
    for obj in objects:
        for client in (getattr(obj, "client", None), getattr(obj, "_shared_client", None), obj):
            if isinstance(client, WebsimClient):
                client.close()


@pytest.fixture
def loopback() -> None:
    """Real sockets, to 127.0.0.1 only (pytest-socket restores the block after the test)."""
    pytest_socket.enable_socket()
    pytest_socket.socket_allow_hosts(["127.0.0.1"], allow_unix_socket=True)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def sent_project_ids(http: aioresponses) -> list[str]:
    return [
        json.loads(call.kwargs["data"])["project_id"]
        for calls in http.requests.values()
        for call in calls
    ]


# --------------------------------------------------------------------------- project ids


@pytest.mark.parametrize("endpoint", [CHAT, IMAGE], ids=["chat", "image"])
def test_project_ids_use_the_whole_alphabet_at_every_position(endpoint: Endpoint) -> None:
    ids = [_requests.new_project_id(endpoint) for _ in range(DRAWS)]
    prefix, suffix = endpoint.id_prefix_len, endpoint.id_suffix_len
    pattern = re.compile(rf"[a-z0-9]{{{prefix}}}_[a-z0-9]{{{suffix}}}")
    assert all(pattern.fullmatch(pid) for pid in ids)
    assert len(set(ids)) == DRAWS  # 36**18 possible ids: a repeat means a broken source
    # Every position draws from all 36 characters (2,000 draws: ~55 of each expected).
    for position in [*range(prefix), *range(prefix + 1, prefix + 1 + suffix)]:
        assert {pid[position] for pid in ids} == set(ALPHABET), position
    # ... and evenly: each character within +-25 % of its expected share.
    counts = Counter(c for pid in ids for c in pid.replace("_", ""))
    expected = DRAWS * (prefix + suffix) / len(ALPHABET)
    assert all(0.75 * expected < n < 1.25 * expected for n in counts.values()), counts


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("project ids must not come from the random module")


@pytest.fixture
def fake_secrets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``secrets`` always draws its largest value; the ``random`` module is switched off.

    Whether ids are built from ``secrets.choice`` per character, from one
    ``secrets.randbelow`` written in base 36 or from ``secrets.token_bytes`` mapped modulo
    36, every character then comes out as '9'.
    """
    draws: list[str] = []

    def choice(seq: str) -> str:
        draws.append(f"choice({seq})")
        return seq[-1]

    def randbelow(n: int) -> int:
        draws.append(f"randbelow({n})")
        return n - 1

    def token_bytes(n: int) -> bytes:
        draws.append(f"token_bytes({n})")
        return bytes([251] * n)  # the largest byte kept: 251 % 36 == 35

    monkeypatch.setattr(secrets, "choice", choice)
    monkeypatch.setattr(secrets, "randbelow", randbelow)
    monkeypatch.setattr(secrets, "token_bytes", token_bytes)
    for name in ("random", "choice", "choices", "randint", "randrange", "getrandbits", "sample"):
        monkeypatch.setattr(random, name, _forbidden)
    return draws


def test_project_ids_come_from_secrets(fake_secrets: list[str]) -> None:
    assert _requests.new_project_id(CHAT) == "999_" + "9" * 15
    assert _requests.new_project_id(IMAGE) == "9999999_" + "9" * 12
    assert fake_secrets  # drawn from secrets, not made up


async def test_every_public_path_draws_its_ids_from_secrets(
    fake_secrets: list[str], http: aioresponses, made: Callable[[Any], Any]
) -> None:
    http.post(CHAT_URL, payload={"content": "ok"}, repeat=True)
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    client = made(WebsimClient(BASE))
    await client.achat([{"role": "user", "content": "hi"}])
    await client.agenerate_image("a cat")
    await made(ChatWebsim()).ainvoke("hi")
    await made(ChatWebsim(model="flux")).ainvoke("a cat")
    await made(WebsimImageTool()).ainvoke({"prompt": "a cat"})
    chat_id, image_id = "999_" + "9" * 15, "9999999_" + "9" * 12
    assert sorted(sent_project_ids(http)) == sorted([chat_id] * 2 + [image_id] * 3)


# --------------------------------------------------------------------------- TLS


async def test_tls_verification_is_on_by_default(
    http: aioresponses, made: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    connectors: list[aiohttp.TCPConnector] = []
    real_connector = aiohttp.TCPConnector

    def spy(*args: Any, **kwargs: Any) -> aiohttp.TCPConnector:
        connector = real_connector(*args, **kwargs)
        connectors.append(connector)
        return connector

    monkeypatch.setattr(aiohttp, "TCPConnector", spy)
    http.post(CHAT_URL, payload={"content": "ok"}, repeat=True)
    http.post(IMAGE_URL, payload={"url": CDN}, repeat=True)
    await made(WebsimClient()).achat([{"role": "user", "content": "hi"}])
    await made(ChatWebsim(max_retries=1)).ainvoke("hi")
    await made(WebsimImageTool(timeout=60)).ainvoke({"prompt": "a cat"})
    assert len(connectors) == 3  # one pool per client: the default, the model's, the tool's
    calls = [call for calls in http.requests.values() for call in calls]
    assert len(calls) == 3
    for call in calls:
        assert call.kwargs.get("ssl", True) is True and "verify_ssl" not in call.kwargs
        assert URL(str(call.kwargs.get("proxy") or "https://x")).scheme in ("http", "https")
    for connector in connectors:
        # What aiohttp will wrap an https connection with, for the request as we send it.
        request = types.SimpleNamespace(is_ssl=lambda: True, ssl=True)
        context = connector._get_ssl_context(request)  # type: ignore[arg-type]
        assert context is not None
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True


def test_the_public_classes_have_no_switch_to_turn_verification_off() -> None:
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    for cls in (ChatWebsim, WebsimImageTool):
        names = set(cls.model_fields)
        # Trust sources only (a CA bundle, a verifying context): nothing that switches it off.
        assert {n for n in names if "ssl" in n or "verify" in n or "insecure" in n} == {
            "ssl_context"
        }
        with pytest.raises(ValidationError):
            cls(verify_ssl=False)  # type: ignore[call-arg]
        with pytest.raises(ValidationError):
            cls(ssl_context=False)
        with pytest.raises(ValidationError, match="does not verify"):
            cls(ssl_context=unverified)
    with pytest.raises(ValueError, match="does not verify"):
        WebsimClient(ssl_context=unverified)


# --------------------------------------------------------------------------- proxy credentials

PROXY_USER, PROXY_PASSWORD = "alice-proxy-user", "pa55-W0rd-xyzzy"


class _Recorder(AsyncCallbackHandler):
    """Keeps everything LangChain hands to callbacks and tracers."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.seen.append(repr(serialized))
        self.seen.append(repr(kwargs))

    async def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append("".join(traceback.format_exception(error)))

    async def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.seen.append(repr(serialized))
        self.seen.append(repr(kwargs))

    async def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append("".join(traceback.format_exception(error)))


def _described(err: BaseException) -> list[str]:
    return [str(err), repr(err), repr(vars(err)), "".join(traceback.format_exception(err))]


async def test_proxy_credentials_never_appear_in_repr_logs_errors_or_traces(
    loopback: None, made: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{closed_port()}"
    settings: dict[str, Any] = {"proxy": proxy, "max_retries": 1, "retry_base_delay": 0}
    texts: list[str] = []

    client = made(WebsimClient("http://websim.test", **settings))
    texts.append(repr(client))
    with pytest.raises(WebsimConnectionError) as raised:
        await client.achat([{"role": "user", "content": "hi"}])
    assert "127.0.0.1" in str(raised.value)  # the error still says where it failed
    texts += _described(raised.value)

    recorder = _Recorder()
    llm = made(ChatWebsim(base_url="http://websim.test", **settings))
    texts += [repr(llm), str(llm), repr(dumpd(llm)), repr(llm.model_dump_json(exclude={"proxy"}))]
    with pytest.raises(WebsimConnectionError) as raised:
        await llm.ainvoke("hi", config={"callbacks": [recorder]})
    texts += _described(raised.value)

    tool = made(WebsimImageTool(base_url="http://websim.test", **settings))
    texts += [repr(tool), str(tool)]
    message = await tool.ainvoke({"prompt": "a cat"}, config={"callbacks": [recorder]})
    assert "could not reach the image service" in message
    texts.append(message)
    strict = made(
        WebsimImageTool(base_url="http://websim.test", handle_tool_error=False, **settings)
    )
    with pytest.raises(ToolException) as failed:
        await strict.ainvoke({"prompt": "a cat"}, config={"callbacks": [recorder]})
    texts += _described(failed.value)

    texts += recorder.seen
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    assert any("retrying" in record.getMessage() for record in caplog.records)
    leaked = [text for text in texts if PROXY_PASSWORD in text or PROXY_USER in text]
    assert leaked == []


@pytest.mark.parametrize(
    "proxy",
    [
        f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:1080",
        f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:99999",
        f"{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:3128",
    ],
)
def test_a_refused_proxy_url_is_not_quoted_with_its_credentials(proxy: str) -> None:
    errors: list[Exception] = []
    for build in (
        lambda: WebsimClient(proxy=proxy),
        lambda: ChatWebsim(proxy=proxy),
        lambda: WebsimImageTool(proxy=proxy),
    ):
        with pytest.raises(ValueError) as info:
            build()
        errors.append(info.value)
    for err in errors:
        assert PROXY_PASSWORD not in str(err) and PROXY_PASSWORD not in repr(err)


# --------------------------------------------------------------------------- logs

PROMPT_MARKER, ANSWER_MARKER = "zebra-prompt-7c1f", "okapi-answer-93d2"


async def test_prompts_and_answers_are_never_logged_above_debug(
    http: aioresponses, made: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer_url = f"https://cdn.websim.test/{ANSWER_MARKER}.png"
    for url, answer, calls in (
        (CHAT_URL, {"content": ANSWER_MARKER}, 2),
        (IMAGE_URL, {"url": answer_url}, 3),
    ):
        # Every call is retried (logged at WARNING) before it is answered.
        for _ in range(calls):
            http.post(url, status=503, payload={"error": "busy"})
            http.post(url, payload=answer)
    settings: dict[str, Any] = {"base_url": BASE, "retry_base_delay": 0}
    client = made(WebsimClient(**settings))
    chat = await client.achat([{"role": "user", "content": PROMPT_MARKER}])
    image = await client.agenerate_image(PROMPT_MARKER)
    reply = await made(ChatWebsim(**settings)).ainvoke(PROMPT_MARKER)
    flux = await made(ChatWebsim(model="flux", **settings)).ainvoke(PROMPT_MARKER)
    url = await made(WebsimImageTool(**settings)).ainvoke({"prompt": PROMPT_MARKER})
    assert chat.text == reply.content == ANSWER_MARKER
    assert image.url == flux.response_metadata["image_url"] == url == answer_url
    # And failures: every attempt refused, the tool logs its failure at WARNING.
    http.post(IMAGE_URL, status=500, payload={"error": "down"}, repeat=True)
    message = await made(WebsimImageTool(max_retries=1, **settings)).ainvoke(
        {"prompt": PROMPT_MARKER}
    )
    assert message.startswith("Image generation failed")

    loud = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert sum("retrying" in r.getMessage() for r in loud) >= 5
    assert any("websim_image_generation failed" in r.getMessage() for r in loud)
    for record in loud:
        text = record.getMessage() + (record.exc_text or "")
        assert PROMPT_MARKER not in text and ANSWER_MARKER not in text, record


# --------------------------------------------------------------------------- image URLs

NOT_ABSOLUTE_HTTP = [
    "/images/a.png",
    "a.png",
    "//cdn.websim.test/a.png",
    "http:/a.png",
    "https://",
    "https:a.png",
    "ftp://cdn.websim.test/a.png",
    "file:///etc/passwd",
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:image/png;base64,iVBORw0KGgo=",
    "blob:https://websim.ai/0b8d",
    "ws://cdn.websim.test/a.png",
    "mailto:someone@websim.test",
    "https://cdn.websim.test/a b.png",
    "https://cdn.websim.test/a\n.png",
    "\x00https://cdn.websim.test/a.png",
    "http://[::1/a.png",
    "https://cdn.websim.test:99999/a.png",
    "",
]


@pytest.mark.parametrize("image_url", NOT_ABSOLUTE_HTTP)
async def test_image_urls_are_accepted_only_as_absolute_http(
    image_url: str, http: aioresponses, made: Callable[[Any], Any]
) -> None:
    http.post(IMAGE_URL, payload={"url": image_url}, repeat=True)
    with pytest.raises(WebsimResponseError, match="not an absolute http"):
        await made(WebsimClient(BASE, max_retries=0)).agenerate_image("a cat")
    with pytest.raises(WebsimResponseError, match="not an absolute http"):
        await made(ChatWebsim(model="flux", max_retries=0)).ainvoke("a cat")
    message = await made(WebsimImageTool(max_retries=0)).ainvoke({"prompt": "a cat"})
    assert message.startswith("Image generation failed: ")  # never handed on as the result
    assert "not an absolute http(s) URL" in message


@pytest.mark.parametrize(
    "image_url",
    ["https://cdn.websim.test/a.png", "HTTP://CDN.websim.test/A.PNG", " https://x.test/a "],
)
def test_absolute_http_image_urls_are_accepted(image_url: str) -> None:
    body = json.dumps({"url": image_url}).encode()
    assert _wire.parse_image_response(200, IMAGE_URL, "application/json", body) == image_url.strip()


# --------------------------------------------------------------------------- redirects


@pytest.fixture
def redirecting(loopback: None) -> Iterator[WebsimEmulator]:
    with WebsimEmulator() as emu:
        yield emu


def _locations(emu: WebsimEmulator, endpoint: Endpoint) -> list[str]:
    # The http one points at the emulator's own endpoint: following it would be seen there.
    return ["javascript:alert(1)", "file:///etc/passwd", emu.base_url + endpoint.path]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("endpoint", [CHAT, IMAGE], ids=["chat", "image"])
async def test_no_redirect_is_followed(
    redirecting: WebsimEmulator, made: Callable[[Any], Any], endpoint: Endpoint, status: int
) -> None:
    emu = redirecting
    client = made(WebsimClient(emu.base_url, max_retries=3, retry_base_delay=0))
    for location in _locations(emu, endpoint):
        emu.clear()
        emu.enqueue(endpoint.name, status=status, headers={"Location": location})
        with pytest.raises(WebsimAPIError) as info:
            if endpoint is CHAT:
                await client.achat([{"role": "user", "content": "hi"}])
            else:
                await client.agenerate_image("a cat")
        assert info.value.status_code == status
        assert f"redirected to {location}" in str(info.value)
        assert len(emu.requests) == 1


async def test_no_redirect_is_followed_by_the_public_classes(
    redirecting: WebsimEmulator, made: Callable[[Any], Any]
) -> None:
    emu = redirecting
    settings: dict[str, Any] = {"base_url": emu.base_url, "retry_base_delay": 0}
    for location in _locations(emu, CHAT):
        emu.clear()
        emu.enqueue("chat", status=307, headers={"Location": location})
        with pytest.raises(WebsimAPIError, match=f"redirected to {re.escape(location)}"):
            await made(ChatWebsim(**settings)).ainvoke("hi")
        assert len(emu.requests) == 1
    for location in _locations(emu, IMAGE):
        emu.clear()
        emu.enqueue("image", status=302, headers={"Location": location}, times=2)
        message = await made(WebsimImageTool(**settings)).ainvoke({"prompt": "a cat"})
        assert "redirected the request (HTTP 302)" in message
        with pytest.raises(ToolException) as failed:
            await made(WebsimImageTool(handle_tool_error=False, **settings)).ainvoke(
                {"prompt": "a cat"}
            )
        assert f"redirected to {location}" in str(failed.value.__cause__)
        assert len(emu.requests) == 2  # one per call
