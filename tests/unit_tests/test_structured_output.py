"""ChatWebsim.with_structured_output, with HTTP mocked: what is bound, what is asked, and how
noisy replies are parsed, validated and reported."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from aioresponses import aioresponses
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableBinding, RunnableSequence
from pydantic import BaseModel, Field, field_validator
from pydantic.v1 import BaseModel as BaseModelV1
from typing_extensions import TypedDict
from yarl import URL

from langchain_websim import ChatWebsim, WebsimClient

BASE = "http://websim.test"
CHAT_URL = BASE + "/api/v1/inference/run_chat_completion"


class Joke(BaseModel):
    """A joke to tell the user."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")
    rating: int | None = Field(default=None, ge=1, le=10)


class JokeDict(TypedDict):
    """A joke to tell the user."""

    setup: Annotated[str, ..., "question to set up a joke"]
    punchline: Annotated[str, ..., "answer to resolve the joke"]


class JokeV1(BaseModelV1):
    """A joke to tell the user."""

    setup: str
    punchline: str


JOKE = {
    "setup": "Why did the cat sit on the computer?",
    "punchline": "To keep an eye on the mouse.",
}
NOISY = "Sure! Here it is:\n```json\n" + json.dumps(JOKE) + "\n```\nHope you like it."


@pytest.fixture
async def llm() -> AsyncIterator[ChatWebsim]:
    client = WebsimClient(BASE, max_retries=0)
    yield ChatWebsim(client=client, tool_call_retries=0)
    await client.aclose()


def reply(http: aioresponses, *texts: str) -> None:
    for text in texts:
        http.post(CHAT_URL, payload={"content": text})


def system_prompts(http: aioresponses) -> list[str]:
    calls = http.requests.get(("POST", URL(CHAT_URL)), [])
    return [json.loads(c.kwargs["data"])["messages"][0]["content"] for c in calls]


def binding_of(runnable: Any) -> RunnableBinding[Any, Any]:
    assert isinstance(runnable, RunnableSequence)
    first = runnable.first
    assert isinstance(first, RunnableBinding)
    return first


# --------------------------------------------------------------------------- building


def test_json_schema_is_the_default_and_binds_the_schema_for_the_instruction() -> None:
    bound = binding_of(ChatWebsim().with_structured_output(Joke)).kwargs
    assert bound["ls_structured_output_format"] == {
        "kwargs": {"method": "json_schema", "strict": None},
        "schema": Joke,
    }
    response_format = bound["response_format"]
    assert response_format["type"] == "json_schema"
    spec = response_format["json_schema"]
    assert (spec["name"], spec["description"]) == ("Joke", "A joke to tell the user.")
    assert spec["schema"]["required"] == ["setup", "punchline"]
    assert "tools" not in bound


def test_function_calling_binds_the_schema_as_a_forced_tool() -> None:
    structured = ChatWebsim().with_structured_output(JokeDict, method="function_calling")
    bound = binding_of(structured).kwargs
    assert [t["function"]["name"] for t in bound["tools"]] == ["JokeDict"]
    assert bound["tool_choice"] == "JokeDict"
    assert bound["ls_structured_output_format"] == {
        "kwargs": {"method": "function_calling", "strict": None},
        "schema": JokeDict,
    }


def test_json_mode_without_a_schema_asks_for_any_object() -> None:
    bound = binding_of(ChatWebsim().with_structured_output(None, method="json_mode")).kwargs
    assert bound["response_format"] == {"type": "json_object"}
    assert bound["ls_structured_output_format"] == {
        "kwargs": {"method": "json_mode"},
        "schema": None,
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"schema": Joke, "method": "xml"}, ValueError, "method must be one of"),
        ({"schema": Joke, "method": "json_mode", "strict": True}, ValueError, "strict applies"),
        ({"schema": None}, ValueError, "needs a schema"),
        ({"schema": None, "method": "function_calling"}, ValueError, "needs a schema"),
        ({"schema": 42, "method": "function_calling"}, TypeError, "schema must be a pydantic"),
        ({"schema": 42}, TypeError, "schema must be a pydantic"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], error: type, needle: str) -> None:
    with pytest.raises(error, match=needle):
        ChatWebsim().with_structured_output(**kwargs)


# --------------------------------------------------------------------------- json_schema


async def test_a_pydantic_object_from_a_noisy_reply(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, NOISY)
    joke = await llm.with_structured_output(Joke).ainvoke("Tell me a joke about cats.")
    assert joke == Joke(**JOKE)
    (system,) = system_prompts(http)
    assert system.startswith("Reply with ONLY a JSON object that satisfies the JSON schema")
    assert "Object: Joke\n" in system and '"punchline"' in system


@pytest.mark.parametrize("schema", [JokeDict, Joke.model_json_schema()], ids=["typeddict", "json"])
async def test_dict_schemas_give_dicts(http: aioresponses, llm: ChatWebsim, schema: Any) -> None:
    reply(http, "Here: " + json.dumps(JOKE))
    assert await llm.with_structured_output(schema).ainvoke("joke") == JOKE


async def test_a_json_schema_without_a_title(http: aioresponses, llm: ChatWebsim) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    reply(http, '{"n": 7}', '{"n": "seven"}')
    structured = llm.with_structured_output(schema)
    assert await structured.ainvoke("a number") == {"n": 7}
    assert "Object: response\n" in system_prompts(http)[0]
    with pytest.raises(OutputParserException, match=r"reply\.n: expected integer, got string"):
        await structured.ainvoke("a number")


async def test_validation_errors_name_the_field(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, json.dumps({**JOKE, "rating": 11}), json.dumps({"setup": "only a setup"}))
    structured = llm.with_structured_output(Joke)
    with pytest.raises(OutputParserException, match="does not match Joke") as too_high:
        await structured.ainvoke("joke")
    assert "rating" in str(too_high.value) and "less than or equal to 10" in str(too_high.value)
    assert too_high.value.llm_output == json.dumps({**JOKE, "rating": 11})
    with pytest.raises(OutputParserException, match="punchline"):
        await llm.with_structured_output(JokeDict).ainvoke("joke")


async def test_a_reply_without_json_is_a_clear_error(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, "I'd rather not tell jokes.")
    with pytest.raises(OutputParserException, match="holds no JSON object: \"I'd rather not"):
        await llm.with_structured_output(Joke).ainvoke("joke")


async def test_include_raw(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, NOISY, "no json here")
    structured = llm.with_structured_output(Joke, include_raw=True)
    good = await structured.ainvoke("joke")
    assert set(good) == {"raw", "parsed", "parsing_error"}
    assert isinstance(good["raw"], AIMessage) and good["raw"].content == NOISY
    assert good["parsed"] == Joke(**JOKE) and good["parsing_error"] is None
    bad = await structured.ainvoke("joke")
    assert bad["raw"].content == "no json here" and bad["parsed"] is None
    assert isinstance(bad["parsing_error"], OutputParserException)


def test_pydantic_v1_models_and_sync_stream(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, NOISY, NOISY)
    structured = llm.with_structured_output(JokeV1)
    assert structured.invoke("joke") == JokeV1(**JOKE)
    (only,) = list(structured.stream("joke"))
    assert only == JokeV1(**JOKE)


async def test_astream_yields_the_parsed_object(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, NOISY)
    chunks = [c async for c in llm.with_structured_output(JokeDict).astream("joke")]
    assert chunks == [JOKE]


# --------------------------------------------------------------------------- json_mode


async def test_json_mode_checks_only_for_an_object_unless_pydantic(
    http: aioresponses, llm: ChatWebsim
) -> None:
    reply(http, '{"anything": [1, 2]}', "[3]", "[1, 2]", json.dumps({"setup": "s"}))
    loose = llm.with_structured_output(None, method="json_mode")
    assert await loose.ainvoke("json please") == {"anything": [1, 2]}
    assert system_prompts(http)[0].startswith("Reply with ONLY a JSON object: no prose")
    with pytest.raises(OutputParserException, match="reply: expected object, got array"):
        await loose.ainvoke("json please")
    with pytest.raises(OutputParserException, match="reply: expected object, got array"):
        await llm.with_structured_output(JokeDict, method="json_mode").ainvoke("x")
    with pytest.raises(OutputParserException, match="does not match Joke"):
        await llm.with_structured_output(Joke, method="json_mode").ainvoke("x")


def json_flags(http: aioresponses) -> list[bool]:
    """Whether each chat request so far carried Websim's ``"json": true``."""
    calls = http.requests.get(("POST", URL(CHAT_URL)), [])
    bodies = [json.loads(c.kwargs["data"]) for c in calls]
    for body in bodies:
        assert body.get("json", True) is True  # the flag is sent as true or not at all
    return ["json" in body for body in bodies]


@pytest.mark.parametrize("method", ["json_schema", "json_mode", "function_calling"])
async def test_structured_output_sends_the_json_flag_with_every_method(
    http: aioresponses, llm: ChatWebsim, method: Any
) -> None:
    reply(http, _call("Joke", JOKE) if method == "function_calling" else json.dumps(JOKE))
    assert await llm.with_structured_output(Joke, method=method).ainvoke("joke") == Joke(**JOKE)
    assert json_flags(http) == [True]


async def test_json_flag_follows_whether_the_reply_must_be_json(
    http: aioresponses, llm: ChatWebsim
) -> None:
    reply(http, "plain", "plain", "plain", _call("Joke", JOKE), "{}", "plain", _call("Joke", JOKE))
    await llm.ainvoke("plain chat")
    await llm.bind_tools([Joke]).ainvoke("the model may call")  # auto: prose is fine
    await llm.bind_tools([Joke], tool_choice="none").ainvoke("nothing offered")
    await llm.bind_tools([Joke], tool_choice="any").ainvoke("a call is required")
    await llm.bind(response_format={"type": "json_object"}).ainvoke("a JSON answer")
    # A required call that never comes is asked for again, in JSON mode again.
    forced = llm.model_copy(update={"tool_call_retries": 1}).bind_tools([Joke], tool_choice="Joke")
    assert (await forced.ainvoke("call Joke")).tool_calls[0]["args"] == JOKE
    assert json_flags(http) == [False, False, False, True, True, True, True]


async def test_explicit_json_mode_overrides_the_automatic_choice(http: aioresponses) -> None:
    reply(http, "{}", "{}", json.dumps(JOKE))
    client = WebsimClient(BASE, max_retries=0)
    always = ChatWebsim(client=client, json_mode=True)
    never = ChatWebsim(client=client, json_mode=False)
    assert ChatWebsim().json_mode is None  # automatic by default
    await always.ainvoke("plain chat")
    await always.bind_tools([Joke]).ainvoke("auto tools")
    assert await never.with_structured_output(Joke).ainvoke("joke") == Joke(**JOKE)
    await client.aclose()
    assert json_flags(http) == [True, True, False]


# --------------------------------------------------------------------------- function_calling


def _call(name: str, args: dict[str, Any]) -> str:
    return "Calling it.\n" + json.dumps({"tool_calls": [{"name": name, "arguments": args}]})


@pytest.mark.parametrize(("schema", "expected"), [(Joke, Joke(**JOKE)), (JokeDict, JOKE)])
async def test_function_calling_parses_the_forced_call(
    http: aioresponses, llm: ChatWebsim, schema: Any, expected: Any
) -> None:
    name = schema.__name__
    reply(http, _call(name, JOKE))
    structured = llm.with_structured_output(schema, method="function_calling")
    assert await structured.ainvoke("joke") == expected
    assert f"You MUST call the tool '{name}'" in system_prompts(http)[0]


async def test_function_calling_failures_are_explained(http: aioresponses, llm: ChatWebsim) -> None:
    reply(http, "Just a plain joke.", _call("Joke", {"setup": "s"}))
    structured = llm.with_structured_output(Joke, method="function_calling")
    with pytest.raises(OutputParserException, match="answered without calling 'Joke'"):
        await structured.ainvoke("joke")
    with pytest.raises(OutputParserException, match=r"call to 'Joke' was invalid: .*'punchline'"):
        await structured.ainvoke("joke")


class PoliteJoke(BaseModel):
    """A joke whose punchline ends with a full stop."""

    setup: str
    punchline: str

    @field_validator("punchline")
    @classmethod
    def _full_stop(cls, value: str) -> str:
        if not value.endswith("."):
            raise ValueError("the punchline must end with a full stop")
        return value


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_pydantic_validators_beyond_the_json_schema_are_applied(
    http: aioresponses, llm: ChatWebsim, method: Any
) -> None:
    rude = {"setup": "s", "punchline": "no full stop"}
    reply(http, _call("PoliteJoke", rude) if method == "function_calling" else json.dumps(rude))
    structured = llm.with_structured_output(PoliteJoke, method=method)
    with pytest.raises(OutputParserException, match="must end with a full stop"):
        await structured.ainvoke("joke")


async def test_function_calling_re_asks_before_giving_up(http: aioresponses) -> None:
    reply(http, "Just a plain joke.", _call("Joke", JOKE))
    async with WebsimClient(BASE, max_retries=0) as client:
        structured = ChatWebsim(client=client).with_structured_output(
            Joke, method="function_calling"
        )
        assert await structured.ainvoke("joke") == Joke(**JOKE)


# --------------------------------------------------------------------------- tracing


class _Options(BaseCallbackHandler):
    def __init__(self) -> None:
        self.options: list[dict[str, Any]] = []

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.options.append(kwargs.get("options") or {})


async def test_tracing_sees_the_structured_output_format(
    http: aioresponses, llm: ChatWebsim
) -> None:
    reply(http, NOISY)
    handler = _Options()
    await llm.with_structured_output(Joke).ainvoke("joke", config={"callbacks": [handler]})
    (options,) = handler.options
    traced = options["ls_structured_output_format"]
    assert traced["kwargs"] == {"method": "json_schema", "strict": None}
    assert traced["schema"]["title"] == "Joke"
