"""The connection settings: one definition, the same checks on all three public classes."""

from __future__ import annotations

import logging
import pickle
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        # Accepted by the tool before the settings were defined once.
        ("timeout", float("inf")),
        ("max_retries", True),
        ("max_retries", 1.0),
        ("max_retries", "2"),
        ("timeout", "10"),
        ("retry_base_delay", float("nan")),
        ("max_connections", 0),
        ("headers", {"bad name": "x"}),
        ("proxy", "socks5://proxy.local:1080"),
    ],
)
def test_every_public_class_refuses_the_same_bad_settings(setting: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=setting if setting != "headers" else "header"):
        ChatWebsim(**{setting: value})
    with pytest.raises(ValidationError, match=setting if setting != "headers" else "header"):
        WebsimImageTool(**{setting: value})
    with pytest.raises((TypeError, ValueError)):
        WebsimClient(**{setting: value})


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:notaport",
        "http://host:99999",
        "http://host:0",
        "http://host\r\nInjected: 1",
        "http://ho st",
        "http://host\x00",
        "https://websim.ai\n/api",
    ],
)
def test_a_base_url_that_cannot_be_connected_to_is_refused_at_construction(
    base_url: str,
) -> None:
    with pytest.raises(ValueError, match="base_url"):
        WebsimClient(base_url)
    with pytest.raises(ValidationError, match="base_url"):
        ChatWebsim(base_url=base_url)
    with pytest.raises(ValidationError, match="base_url"):
        WebsimImageTool(base_url=base_url)


def test_the_base_url_error_never_carries_raw_control_characters() -> None:
    with pytest.raises(ValueError) as info:
        WebsimClient("http://host\r\nInjected: 1")
    assert "\r" not in str(info.value) and "\n" not in str(info.value)


def test_an_explicit_clients_settings_are_mirrored_on_both_classes() -> None:
    with WebsimClient("http://127.0.0.1:9", timeout=7, headers={"x-team": "a"}) as client:
        for obj in (ChatWebsim(client=client), WebsimImageTool(client=client)):
            assert (obj.base_url, obj.timeout, obj.headers) == (
                "http://127.0.0.1:9",
                7.0,
                {"x-team": "a"},
            )
            with pytest.raises(ValidationError, match="conflicts with the explicit client"):
                type(obj)(client=client, timeout=8)


# --------------------------------------------------------------------------- private CAs


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_an_ssl_context_is_never_dropped_by_pickling(ca_file: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    with WebsimClient("https://127.0.0.1:9", ssl_context=context) as client:
        for obj in (client, ChatWebsim(client=client), WebsimImageTool(client=client)):
            with pytest.raises(TypeError, match="ca_bundle"):
                pickle.dumps(obj)
        with pytest.raises(TypeError, match="ca_bundle"):
            pickle.dumps(ChatWebsim(ssl_context=context))


def test_a_ca_bundle_travels_through_pickle(ca_file: Path) -> None:
    for obj in (ChatWebsim(ca_bundle=str(ca_file)), WebsimImageTool(ca_bundle=str(ca_file))):
        copy = pickle.loads(pickle.dumps(obj))
        assert copy.ca_bundle == str(ca_file)
        assert copy._websim_client().settings.ca_bundle == str(ca_file)
        copy._websim_client().close()
    with WebsimClient("https://127.0.0.1:9", ca_bundle=str(ca_file)) as client:
        copy_client = pickle.loads(pickle.dumps(client))
        try:
            assert copy_client.settings == client.settings
        finally:
            copy_client.close()


def test_a_ca_bundle_that_does_not_load_is_refused(tmp_path: Path, ca_file: Path) -> None:
    bad = tmp_path / "not-a-ca.pem"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="ca_bundle"):
        WebsimClient(ca_bundle=str(bad))
    with pytest.raises(ValidationError, match="ca_bundle"):
        ChatWebsim(ca_bundle=str(tmp_path / "missing.pem"))
    context = ssl.create_default_context()
    with pytest.raises(ValidationError, match="ca_bundle or ssl_context"):
        WebsimImageTool(ca_bundle=str(ca_file), ssl_context=context)


@pytest.mark.parametrize("value", ["a\x0bb", "a\x1b[31m", "a\x7f", "a\tb", "a\x85b", "\x01"])
def test_a_header_value_with_any_control_character_is_refused_naming_the_header(
    value: str,
) -> None:
    needle = "header 'X-Trace' has a value with the control character"
    with pytest.raises(ValidationError, match=needle):
        ChatWebsim(headers={"X-Trace": value})
    with pytest.raises(ValidationError, match=needle):
        WebsimImageTool(headers={"X-Trace": value})
    with pytest.raises(ValueError, match=needle):
        WebsimClient(headers={"X-Trace": value})


# --------------------------------------------------------------------------- assignment

BASE = "http://websim.test"
CHAT_URL = BASE + "/api/v1/inference/run_chat_completion"
IMAGE_URL = BASE + "/api/v1/inference/run_image_generation"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_retries", -3),
        ("timeout", 0),
        ("timeout", "10"),
        ("base_url", ""),
        ("proxy", "socks5://proxy.local:1080"),
        ("headers", {"bad name": "x"}),
        ("seed", True),
        ("width", 10),
        ("image_inputs", ["ftp://x/a.png"]),
    ],
)
def test_an_assigned_setting_is_checked_as_in_the_constructor(setting: str, value: Any) -> None:
    for made in (ChatWebsim(), WebsimImageTool()):
        before = getattr(made, setting)
        with pytest.raises(ValidationError, match=setting if setting != "headers" else "header"):
            setattr(made, setting, value)
        assert getattr(made, setting) == before


def test_assigned_settings_take_effect_on_the_next_call(http: Any) -> None:
    from langchain_websim import WebsimTimeoutError

    llm = ChatWebsim(base_url=BASE, max_retries=0, retry_base_delay=0.0)
    http.post(CHAT_URL, payload={"content": "first"})
    assert llm.invoke("hi").text == "first"
    llm.timeout = 0.001
    llm.max_retries = 1
    http.post(CHAT_URL, exception=TimeoutError())
    http.post(CHAT_URL, exception=TimeoutError())
    with pytest.raises(WebsimTimeoutError) as caught:
        llm.invoke("hi")
    # The client that ran the call had the assigned settings: its timeout, and two attempts.
    assert caught.value.timeout == 0.001 and caught.value.attempts == 2
    assert "within 0.001 s" in str(caught.value)


def test_a_tool_uses_its_assigned_base_url_on_the_next_call(http: Any) -> None:
    tool = WebsimImageTool(base_url="http://old.test", max_retries=0)
    http.post(
        "http://old.test/api/v1/inference/run_image_generation",
        payload={"url": "https://cdn.test/a.png"},
    )
    assert tool.invoke({"prompt": "a fox"}) == "https://cdn.test/a.png"
    tool.base_url = BASE
    http.post(IMAGE_URL, payload={"url": "https://cdn.test/b.png"})
    assert tool.invoke({"prompt": "a fox"}) == "https://cdn.test/b.png"


def test_a_copy_with_changed_settings_checks_and_uses_them(http: Any) -> None:
    from langchain_websim import WebsimTimeoutError

    llm = ChatWebsim(base_url=BASE, max_retries=0)
    http.post(CHAT_URL, payload={"content": "first"})
    llm.invoke("hi")
    with pytest.raises(ValidationError, match="max_retries"):
        llm.model_copy(update={"max_retries": -3})
    quick = llm.model_copy(update={"timeout": 0.001})
    http.post(CHAT_URL, exception=TimeoutError())
    with pytest.raises(WebsimTimeoutError) as caught:
        quick.invoke("hi")
    assert caught.value.timeout == 0.001
    assert llm.timeout == 120.0


def test_with_an_explicit_client_a_different_assigned_setting_is_refused() -> None:
    with WebsimClient(BASE, timeout=5.0) as client:
        llm = ChatWebsim(client=client)
        with pytest.raises(ValidationError, match=r"timeout=1\.0 conflicts"):
            llm.timeout = 1.0
        llm.timeout = 5.0  # the client's own value is no conflict
        assert llm.timeout == 5.0


def test_a_tool_schema_follows_an_assigned_default_ratio() -> None:
    tool = WebsimImageTool()
    tool.default_aspect_ratio = "16:9"
    schema = tool.tool_call_schema.model_json_schema()["properties"]["aspect_ratio"]
    assert schema["default"] == "16:9" and "'16:9'." in schema["description"]
    with pytest.raises(ValidationError, match="aspect_ratio"):
        tool.default_aspect_ratio = "wide"
    assert tool.default_aspect_ratio == "16:9"


def test_checked_assignments_leave_langchains_own_fields_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # LangChain's validators assign its own fields (the profile); re-validating those
    # assignments would loop until the recursion limit, silently, on every construction.
    calls: list[str] = []

    def resolve(self: ChatWebsim) -> None:
        calls.append("profile")

    monkeypatch.setattr(ChatWebsim, "_resolve_model_profile", resolve)
    llm = ChatWebsim()
    assert calls == ["profile"]
    llm.timeout = 5.0  # ours: checked, with the model's validators
    llm.metadata = {"team": "a"}  # LangChain's: assigned as LangChain assigns it
    assert calls == ["profile", "profile"]
    assert (llm.timeout, llm.metadata) == (5.0, {"team": "a"})


def test_the_command_refuses_an_empty_base_url_as_the_classes_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from langchain_websim import cli

    with pytest.raises(ValidationError) as refused:
        ChatWebsim(base_url="")
    words = "base_url must be a non-empty http(s) URL"
    assert words in str(refused.value)
    logger = logging.getLogger("langchain_websim")
    handlers, level = list(logger.handlers), logger.level
    try:
        assert cli.main(["chat", "--base-url", "", "hi"]) == cli.EXIT_USAGE
    finally:  # main() sends the package's log to stderr, for the rest of the process
        logger.handlers[:] = handlers
        logger.setLevel(level)
    assert capsys.readouterr().err.startswith(f"websim: {words}")


def test_rate_tuning_is_per_client_and_travels_with_the_model(http: Any) -> None:
    from langchain_websim import RateTuning

    # A floor of 50/s: after a 429 the pace can only be cut to 50/s for this model's client.
    tuning = RateTuning(min_rate=50.0)
    llm = ChatWebsim(base_url=BASE, rate_tuning=tuning, max_retries=0)
    http.post(CHAT_URL, payload={"content": "first"})
    for _ in range(2):  # one 429 in the slow start is weak evidence; two start pacing
        http.post(CHAT_URL, status=429, payload={"error": "Rate limit exceeded"})
    http.post(CHAT_URL, payload={"content": "second"})
    assert llm.invoke("hi").text == "first"
    # The 429s came after a success: shaping, so the call waits for a slot, not a retry.
    assert llm.invoke("hi").text == "second"
    pace = llm._websim_client().rate_state()["chat"].pace
    assert pace is not None and pace >= 50.0  # the defaults' floor is 0.2/s
    assert pickle.loads(pickle.dumps(llm)).rate_tuning == tuning
    # Other clients keep the defaults; a dict is not a second way to spell the tuning.
    with WebsimClient(BASE) as other:
        assert other.settings.rate_tuning is None
    with pytest.raises(TypeError, match="rate_tuning"):
        WebsimClient(BASE, rate_tuning={"min_rate": 50.0})
    with pytest.raises(ValidationError, match="rate_tuning"):
        WebsimImageTool(rate_tuning={"min_rate": 50.0})
