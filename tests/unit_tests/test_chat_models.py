"""ChatWebsim without a network: fields, message mapping, stop handling, plumbing, copies.

Everything that needs an HTTP answer is in ``tests/integration_tests/test_chat_models.py``
(against the emulator); the calls here fail on caller input before any request is made.
"""

from __future__ import annotations

import copy
import json
import pickle
import warnings
from typing import Any

import pytest
from aioresponses import aioresponses
from langchain_core.load import dumpd, load
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from langchain_websim import ChatWebsim, WebsimClient
from langchain_websim._answers import apply_stop, image_content
from langchain_websim._messages import convert_messages, validate_stop
from langchain_websim._parsers import parse_reply
from langchain_websim.chat_models import CHAT_MODELS, IMAGE_MODELS

# --------------------------------------------------------------------------- fields


def test_defaults_and_known_models() -> None:
    llm = ChatWebsim()
    assert llm.model == "gemini-1.5-pro"
    assert llm.base_url == "https://api.websim.com"
    assert (llm.timeout, llm.max_retries) == (120.0, 2)
    assert (llm.retry_base_delay, llm.retry_max_delay) == (1.0, 30.0)
    assert llm.proxy is None and llm.project_id is None and llm.stop is None
    assert llm.aspect_ratio == "1:1"
    assert IMAGE_MODELS == ChatWebsim.IMAGE_MODELS == ("flux",)
    assert "gemini-1.5-pro" in CHAT_MODELS and "gemini-1.5-flash" in CHAT_MODELS
    assert ChatWebsim.CHAT_MODELS == CHAT_MODELS


def test_construction_resolves_no_client() -> None:
    # Sockets are disabled here; beyond that, no client (and so no pool) exists yet.
    llm = ChatWebsim()
    assert llm._shared_client is None
    assert llm.client is None


def test_model_name_alias_and_unknown_model() -> None:
    assert ChatWebsim(model_name="gemini-1.5-flash").model == "gemini-1.5-flash"
    assert ChatWebsim(model="some-future-model").model == "some-future-model"


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSIM_BASE_URL", "http://127.0.0.1:9999/")
    assert ChatWebsim().base_url == "http://127.0.0.1:9999"
    assert ChatWebsim(base_url="https://api.websim.com").base_url == "https://api.websim.com"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"model": "  "}, "model is empty; give a model name"),
        ({"base_url": "ftp://websim.ai"}, "base_url"),
        ({"timeout": 0}, "greater than 0"),
        ({"timeout": float("inf")}, "finite number"),
        ({"max_retries": True}, "valid integer"),
        ({"max_retries": -1}, "greater than or equal to 0"),
        ({"retry_base_delay": -1}, "greater than or equal to 0"),
        ({"proxy": "socks5://127.0.0.1:1080"}, "proxy must be an http"),
        ({"project_id": ""}, "project_id must be a non-empty"),
        ({"aspect_ratio": "wide"}, "aspect_ratio must look like"),
        ({"stop": [""]}, "non-empty string"),
        ({"modle": "gemini-1.5-pro"}, "modle"),
    ],
)
def test_bad_fields_are_refused(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        ChatWebsim(**kwargs)


def test_proxy_password_stays_out_of_errors_and_repr() -> None:
    with pytest.raises(ValidationError) as excinfo:
        ChatWebsim(proxy="socks5://user:hunter2@127.0.0.1:1080")
    assert "hunter2" not in str(excinfo.value)
    llm = ChatWebsim(proxy="http://user:hunter2@127.0.0.1:3128")
    assert "hunter2" not in repr(llm)


def test_params_without_websim_equivalent_warn_and_are_ignored() -> None:
    with pytest.warns(UserWarning, match=r"ignores api_key, max_tokens, temperature"):
        llm = ChatWebsim(temperature=0.2, max_tokens=10, api_key="x")
    assert not hasattr(llm, "temperature")
    assert "max_tokens" not in dumpd(llm)["kwargs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChatWebsim(temperature=None)  # nothing set, nothing to warn about


def test_stop_field_accepts_a_bare_string() -> None:
    assert ChatWebsim(stop="END").stop == ["END"]


# --------------------------------------------------------------------------- message mapping


def test_roles_map_to_the_wire() -> None:
    messages: list[BaseMessage] = [
        SystemMessage("be brief"),
        HumanMessage("hi"),
        AIMessage("hello"),
        ChatMessage(role="system", content="s"),
        ChatMessage(role="user", content="u"),
        ChatMessage(role="assistant", content="a"),
        HumanMessage("named", name="alice"),
    ]
    assert convert_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "named"},
    ]


def test_text_blocks_are_joined_and_input_is_not_mutated() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "Describe "},
            "a ",
            {"type": "text", "text": "lighthouse", "id": "lc_1"},
        ]
    )
    before = message.model_dump()
    assert convert_messages([message]) == [{"role": "user", "content": "Describe a lighthouse"}]
    assert message.model_dump() == before


def test_empty_message_list_is_refused() -> None:
    with pytest.raises(ValueError, match="messages is empty"):
        convert_messages([])


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (ChatMessage(role="tool", content="x"), r"message 1 \(ChatMessage\) has role 'tool'"),
        (ChatMessage(role="developer", content="x"), r"message 1 .* role 'developer'"),
        (FunctionMessage(name="f", content="x"), r"message 1 is a FunctionMessage"),
    ],
)
def test_unsupported_messages_name_their_index(message: BaseMessage, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        convert_messages([HumanMessage("hi"), message])


# --------------------------------------------------------------------------- tool history


def test_tool_calls_and_results_are_rendered_through_the_protocol() -> None:
    # Agents replay their history whether or not tools are bound to this call.
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1", "type": "tool_call"}
    wire = convert_messages(
        [
            HumanMessage("1 + 2?"),
            AIMessage("Let me add.", tool_calls=[call]),
            ToolMessage("3", tool_call_id="c1"),  # no name: taken from the call it answers
            ToolMessage("boom", tool_call_id="c9", name="mul", status="error"),
        ]
    )
    assert [m["role"] for m in wire] == ["user", "assistant", "user", "user"]
    text, envelope = wire[1]["content"].split("\n\n")
    assert text == "Let me add."
    assert json.loads(envelope) == {
        "tool_calls": [{"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}}]
    }
    assert wire[2]["content"] == "Result of the call c1 to tool 'add':\n3"
    assert wire[3]["content"].startswith("The call c9 to tool 'mul' FAILED with this error:\nboom")


def test_rendered_history_parses_back_to_the_same_calls() -> None:
    call = {"name": "add", "args": {"a": 1}, "id": "c1", "type": "tool_call"}
    (wire,) = convert_messages([AIMessage("", tool_calls=[call])])
    tools = [convert_to_openai_tool(add)]
    parsed = parse_reply(wire["content"], tools)
    assert [(c["name"], c["args"]) for c in parsed.tool_calls] == [("add", {"a": 1})]
    assert parsed.content == ""


def test_tool_use_blocks_are_not_sent_twice_and_invalid_calls_keep_their_raw_arguments() -> None:
    message = AIMessage(
        [
            {"type": "text", "text": "some text"},
            {"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1}},
        ],
        tool_calls=[{"name": "add", "args": {"a": 1}, "id": "c1", "type": "tool_call"}],
        invalid_tool_calls=[
            {"type": "invalid_tool_call", "name": "mul", "args": "{oops", "id": "c2", "error": "x"}
        ],
    )
    (wire,) = convert_messages([message])
    text, envelope = wire["content"].split("\n\n")
    assert text == "some text"
    assert json.loads(envelope)["tool_calls"] == [
        {"id": "c1", "name": "add", "arguments": {"a": 1}},
        {"id": "c2", "name": "mul", "arguments": "{oops"},
    ]


def test_tool_message_with_audio_is_refused_with_its_index() -> None:
    audio = {"type": "audio", "url": "https://example.com/a.wav"}
    with pytest.raises(ValueError, match=r"message 1 \(ToolMessage\) .* type 'audio'"):
        convert_messages([HumanMessage("hi"), ToolMessage(content=[audio], tool_call_id="c1")])


def add(a: int, b: int = 0) -> int:
    """Add two integers."""
    return a + b


@pytest.mark.parametrize(
    ("block", "block_type"),
    [
        ({"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}, "audio"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "input_audio"),
        ({"type": "video", "url": "https://example.com/a.mp4"}, "video"),
        ({"type": "file", "url": "https://example.com/a.pdf"}, "file"),
        ({"type": "reasoning", "reasoning": "hmm"}, "reasoning"),
    ],
)
def test_non_text_blocks_name_index_and_type(block: dict[str, Any], block_type: str) -> None:
    message = HumanMessage(content=[{"type": "text", "text": "look"}, block])
    with pytest.raises(ValueError) as excinfo:
        convert_messages([SystemMessage("s"), AIMessage("a"), message])
    text = str(excinfo.value)
    assert "message 2 (HumanMessage)" in text
    assert f"type {block_type!r} at position 1" in text


def test_text_block_without_string_text_is_refused() -> None:
    message = HumanMessage(content=[{"type": "text", "text": None}])
    with pytest.raises(ValueError, match=r"message 0 .* no string 'text' at position 0"):
        convert_messages([message])


async def test_mapping_errors_surface_through_ainvoke_before_any_request() -> None:
    llm = ChatWebsim()
    audio = {"type": "audio", "url": "https://example.com/a.wav"}
    with pytest.raises(ValueError, match=r"message 0 \(HumanMessage\).*'audio'"):
        await llm.ainvoke([HumanMessage(content=[audio])])
    with pytest.raises(ValueError, match="messages is empty"):
        await llm.ainvoke([])


# --------------------------------------------------------------------------- stop sequences


@pytest.mark.parametrize(
    ("text", "stop", "expected"),
    [
        ("Hello world. Bye.", ["."], "Hello world"),
        ("one two three", ["three", "two"], "one "),  # earliest occurrence wins
        ("one two three", ["four"], "one two three"),
        ("STOP at start", ["STOP"], ""),
        ("no stops", None, "no stops"),
        ("no stops", [], "no stops"),
    ],
)
def test_apply_stop(text: str, stop: list[str] | None, expected: str) -> None:
    assert apply_stop(text, stop) == expected


def test_validate_stop() -> None:
    assert validate_stop(None) is None
    assert validate_stop(("a", "b")) == ["a", "b"]
    with pytest.raises(TypeError, match="stop must be a list"):
        validate_stop(3)
    with pytest.raises(ValueError, match="non-empty string"):
        validate_stop(["ok", 4])


async def test_bad_call_stop_is_refused_before_any_request() -> None:
    # Chat answers are cut client-side, so a bad sequence is a caller error, not a cut.
    llm = ChatWebsim(client=WebsimClient("http://127.0.0.1:9"))
    try:
        with aioresponses() as http, pytest.raises(ValueError, match="non-empty string"):
            await llm.ainvoke([HumanMessage("hi")], stop=[""])
        assert http.requests == {}
    finally:
        await llm.client.aclose()  # type: ignore[union-attr]


# --------------------------------------------------------------------------- call arguments


async def test_unknown_call_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="unexpected call arguments: temperature"):
        await ChatWebsim().ainvoke("hi", temperature=0.5)


async def test_image_arguments_with_a_chat_model_are_refused() -> None:
    with pytest.raises(ValueError, match="apply to image models"):
        await ChatWebsim().ainvoke("hi", aspect_ratio="16:9")
    with pytest.raises(ValueError, match="apply to image models"):
        await ChatWebsim().ainvoke("hi", prompt="a cat")


async def test_empty_model_override_is_refused() -> None:
    with pytest.raises(ValueError, match="model is empty; give a model name"):
        await ChatWebsim().ainvoke("hi", model="")


def test_image_content_has_text_and_standard_image_block() -> None:
    text_block, image_block = image_content("https://example.com/i.png")
    assert isinstance(text_block, dict) and isinstance(image_block, dict)
    assert text_block["type"] == "text" and text_block["text"] == "https://example.com/i.png"
    assert image_block["type"] == "image" and image_block["url"] == "https://example.com/i.png"
    message = AIMessage(content=image_content("https://example.com/i.png"))
    assert [b["type"] for b in message.content_blocks] == ["text", "image"]
    assert message.text == "https://example.com/i.png"


# --------------------------------------------------------------------------- plumbing


def test_llm_type_and_identifying_params() -> None:
    llm = ChatWebsim(model="flux", project_id="abc_def", aspect_ratio="16:9")
    assert llm._llm_type == "websim-chat"
    assert llm._identifying_params == {
        "model": "flux",
        "base_url": "https://api.websim.com",
        "project_id": "abc_def",
        "aspect_ratio": "16:9",
    }


def test_ls_params() -> None:
    llm = ChatWebsim(stop=["END"])
    assert llm._get_ls_params() == {
        "ls_provider": "websim",
        "ls_model_name": "gemini-1.5-pro",
        "ls_model_type": "chat",
        "ls_stop": ["END"],
    }
    params = llm._get_ls_params(stop=["x"], model="gemini-2.5-flash")
    assert params["ls_model_name"] == "gemini-2.5-flash"
    assert params["ls_stop"] == ["x"]
    assert "ls_stop" not in ChatWebsim()._get_ls_params()


# --------------------------------------------------------------------------- the client


def test_instances_with_the_same_settings_share_one_client() -> None:
    a, b = ChatWebsim(base_url="http://127.0.0.1:9"), ChatWebsim(base_url="http://127.0.0.1:9")
    client = a._websim_client()
    try:
        assert b._websim_client() is client
        assert a._websim_client() is client  # cached on the instance
        assert ChatWebsim(base_url="http://127.0.0.1:9", timeout=5)._websim_client() is not client
    finally:
        client.close()


def test_closed_shared_client_is_replaced() -> None:
    llm = ChatWebsim(base_url="http://127.0.0.1:9")
    first = llm._websim_client()
    first.close()
    second = llm._websim_client()
    try:
        assert second is not first and not second.closed
    finally:
        second.close()


def test_explicit_client_is_used_and_mirrored() -> None:
    with WebsimClient("http://127.0.0.1:9", timeout=7, max_retries=0, proxy=None) as client:
        llm = ChatWebsim(client=client)
        assert llm._websim_client() is client
        assert (llm.base_url, llm.timeout, llm.max_retries) == ("http://127.0.0.1:9", 7.0, 0)
        assert "client" not in dumpd(llm)["kwargs"]
        # The same value is not a conflict; a different one is.
        assert ChatWebsim(client=client, timeout=7).client is client
        with pytest.raises(ValidationError, match=r"timeout=5\.0 conflicts"):
            ChatWebsim(client=client, timeout=5)


def test_pickle_round_trip_keeps_configuration_without_sessions() -> None:
    with WebsimClient(
        "http://127.0.0.1:9", timeout=7, headers={"x-team": "a"}, max_connections=3
    ) as client:
        llm = ChatWebsim(client=client, model="gemini-1.5-flash", stop=["END"])
        copy_ = pickle.loads(pickle.dumps(llm))
    try:
        assert copy_.client is not client and not copy_.client.closed
        assert copy_.client is WebsimClient.shared(
            "http://127.0.0.1:9", timeout=7, headers={"x-team": "a"}, max_connections=3
        )
        assert (copy_.model, copy_.stop, copy_.timeout) == ("gemini-1.5-flash", ["END"], 7.0)
    finally:
        copy_.client.close()


def test_pickle_of_a_model_with_a_resolved_shared_client() -> None:
    llm = ChatWebsim(base_url="http://127.0.0.1:9")
    client = llm._websim_client()
    try:
        copy_ = pickle.loads(pickle.dumps(llm))
        assert copy_._shared_client is None  # resolved again on first use
        assert copy_._websim_client() is client
    finally:
        client.close()


def test_deepcopy_shares_the_client() -> None:
    with WebsimClient("http://127.0.0.1:9") as client:
        llm = ChatWebsim(client=client)
        clone = copy.deepcopy(llm)
        assert clone.client is client and clone is not llm


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_dumpd_load_round_trip() -> None:
    llm = ChatWebsim(
        model="flux",
        base_url="http://127.0.0.1:9",
        project_id="abc_def",
        stop=["END"],
        aspect_ratio="16:9",
        max_retries=0,
    )
    serialized = dumpd(llm)
    assert serialized["id"] == ["langchain_websim", "chat_models", "ChatWebsim"]
    loaded = load(serialized, valid_namespaces=["langchain_websim"], allowed_objects=[ChatWebsim])
    assert isinstance(loaded, ChatWebsim)
    assert loaded.asdict() == llm.asdict()
    assert (loaded.stop, loaded.max_retries) == (["END"], 0)


def test_the_generate_methods_are_bound_with_their_signatures_ready() -> None:
    # langchain-core looks up whether ``_agenerate`` takes ``run_manager`` on every call;
    # the bound method carries its signature, computed once at import.
    import inspect

    from langchain_core.language_models import BaseChatModel

    model = ChatWebsim()
    for name in ("_generate", "_agenerate"):
        function = getattr(ChatWebsim, name)
        assert inspect.isfunction(function)  # on the class, the plain function
        assert function is not getattr(BaseChatModel, name)  # still seen as overridden
        names = list(inspect.signature(function).parameters)
        assert names == ["self", "messages", "stop", "run_manager", "kwargs"]
        bound = getattr(model, name)
        assert not inspect.ismethod(bound)  # not an ordinary bound method
        assert list(inspect.signature(bound).parameters) == names[1:]
        assert bound.__self__ is model and bound.__func__ is function


def test_a_subclass_overriding_agenerate_gets_an_ordinary_method() -> None:
    import inspect

    class Custom(ChatWebsim):
        async def _agenerate(self, messages: Any, stop: Any = None, **kwargs: Any) -> Any:
            raise NotImplementedError

    bound = Custom()._agenerate
    assert inspect.ismethod(bound)
    assert "run_manager" not in inspect.signature(bound).parameters


async def test_ainvoke_and_invoke_go_through_the_presigned_methods() -> None:
    url = "https://api.websim.com/api/v1/inference/run_chat_completion"
    model = ChatWebsim(max_retries=0)
    with aioresponses() as http:
        http.post(url, payload={"content": "4"})
        http.post(url, payload={"content": "5"})
        assert (await model.ainvoke("2 + 2?")).content == "4"
        assert model.invoke("2 + 3?").content == "5"


def test_invocation_params_are_what_langchain_core_would_report() -> None:
    from langchain_core.language_models import BaseChatModel

    model = ChatWebsim(model="claude-3.5-sonnet", project_id="abc_def", aspect_ratio="16:9")
    for stop, extra in ((None, {}), (["\n"], {"json_mode": True})):
        ours = model._get_invocation_params(stop=stop, **extra)
        assert ours == BaseChatModel._get_invocation_params(model, stop=stop, **extra)
        assert ours["model"] == "claude-3.5-sonnet" and ours["_type"] == "websim-chat"


def test_a_subclass_overriding_dict_still_shapes_the_invocation_params() -> None:
    class Labelled(ChatWebsim):
        def dict(self, **kwargs: Any) -> dict[str, Any]:
            return {**super().asdict(), "label": "mine"}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-core deprecates dict()
        params = Labelled()._get_invocation_params(stop=None)
    assert params["label"] == "mine" and params["_type"] == "websim-chat"
