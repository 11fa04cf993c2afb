"""``ChatWebsim``: the LangChain chat model for the Websim inference API.

Every request goes through a ``WebsimClient`` (one pooled session per event loop, one retry
policy); the sync entry points run the async implementation on the client's background
loop, so there is a single code path for both.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from langchain_websim import _wire
from langchain_websim._answers import (
    apply_stop,
    chat_answer,
    image_answer,
    only_chunk,
    tool_call_answer,
)
from langchain_websim._client_owner import ClientOwner
from langchain_websim._image_options import IMAGE_OPTION_NAMES, ImageOptionFields
from langchain_websim._messages import convert_messages, image_prompt, validate_stop
from langchain_websim._presigned import presign
from langchain_websim._profiles import profile_for
from langchain_websim._prompt import TOOL_KWARGS, TOOL_OPTIONS
from langchain_websim._requests import (
    AspectRatio,
    ChatRequest,
    ImageRequest,
    ProjectId,
    validate_model,
)
from langchain_websim._transport import redact_url

if TYPE_CHECKING:
    # Annotations only: importing langchain_core.tools here would slow every import.
    from langchain_core.language_models import LanguageModelInput
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool

__all__ = ["CHAT_MODELS", "IMAGE_MODELS", "ChatWebsim"]

CHAT_MODELS: tuple[str, ...] = _wire.CHAT_MODELS
IMAGE_MODELS: tuple[str, ...] = _wire.IMAGE_MODELS

# Per-call keyword arguments ChatWebsim understands; anything else is a caller mistake.
# ``stop`` is a parameter of its own in LangChain's call path; ``stream`` is what
# ``stream()`` adds.
_CHAT_KWARGS = ("model", "project_id", "stream", *sorted(TOOL_KWARGS), *TOOL_OPTIONS)
_IMAGE_KWARGS = ("prompt", "aspect_ratio", *IMAGE_OPTION_NAMES)
_CALL_KWARGS = frozenset({*_CHAT_KWARGS, *_IMAGE_KWARGS})
# What LangChain itself passes through ``bind`` besides call arguments.
_BIND_KWARGS = frozenset({*_CALL_KWARGS, "stop", "ls_structured_output_format"})
_METHODS = ("json_schema", "function_calling", "json_mode")
# langchain-core's approximate counter's default: about four characters a token.
_CHARS_PER_TOKEN = 4.0
# LangChain's standard parameters that Websim has no equivalent for.
_NO_EQUIVALENT = ("temperature", "max_tokens", "api_key")


class ChatWebsim(ClientOwner, ImageOptionFields, BaseChatModel):
    """Websim chat model (and ``flux`` image generation through the chat interface).

    Setup:
        ``pip install langchain-websim``.  Websim needs no API key.  Set ``WEBSIM_BASE_URL``
        (or pass ``base_url``) to talk to another host, e.g. the bundled emulator.

    Model names:
        Websim does not let the caller pick the chat model: the service chooses it, and the
        model name is never sent.  The name only routes the call: one of ``IMAGE_MODELS``
        (``"flux"``) generates an image, anything else, including names not in
        ``CHAT_MODELS``, is a chat completion.  A per-call ``model=`` overrides the field.

    Key init args:
        model: ``"gemini-1.5-pro"`` by default (alias ``model_name``).
        connection settings (``base_url``, ``timeout``, ``max_retries``, ...): the fields
            of ``ConnectionSettings`` (``langchain_websim._settings``), defined there once
            with their defaults and checks and shared with ``WebsimClient`` and
            ``WebsimImageTool``.  Instances with the same settings share one process-wide
            client (``WebsimClient.shared``) and so one connection pool.  They are checked
            again when assigned, and a changed setting applies from the next call.
        client: an explicit ``WebsimClient`` to use instead; the connection fields then
            mirror its settings.  A pickled copy gets the process-wide client for the same
            configuration.  ``dumpd`` leaves the client out, so a loaded copy uses the
            shared client for the mirrored fields (custom headers and the pool size are not
            in the serialized form).
        project_id: a fixed Websim project id; by default every request gets a fresh one.
        stop: stop sequences.  Websim has no stop parameter: the answer is cut before the
            first stop sequence on our side.  They apply to chat answers only.
        aspect_ratio: image aspect ratio for image models, ``"1:1"`` by default.
        image options (``seed``, ``width``, ...): the fields of ``IMAGE_OPTIONS``
            (``langchain_websim._image_options``), for image models, each sent only when
            set; a per-call argument of the same name wins.
        streaming: route ``invoke`` through the streaming path (not with tools bound).
            Websim does not stream, so a stream is always one chunk: the whole answer.
        tool_call_retries: re-asks when a tool call is required and the reply made none.
        json_mode: Websim's ``"json": true`` flag; default: automatic (see the field).

    Tool calling and structured output:
        Websim has no native tool calling: ``bind_tools`` describes the tools in a system
        instruction and parses the calls out of the reply text; ``with_structured_output``
        asks for JSON and validates it.  ``bind_tools`` takes ``strict`` and
        ``parallel_tool_calls`` as agents pass them.  See
        https://github.com/langchain-websim/langchain-websim/blob/main/docs/chat.md

    History, profile, token counts:
        Past AI messages from any model are sent as their visible text (hidden reasoning
        and server-side tool blocks dropped, images as a line naming the URL).  ``profile``
        is the route's model profile (no context size: pass ``profile={"max_input_tokens":
        ...}``); token counts are langchain-core's approximation.

    ``temperature``, ``max_tokens`` and ``api_key`` are accepted for compatibility with
    generic LangChain code and ignored with a warning: Websim has no such settings.

    Invoke:
        ```python
        from langchain_websim import ChatWebsim

        llm = ChatWebsim()
        llm.invoke([("system", "Answer briefly."), ("human", "What is 2 + 2?")])
        ```

    Image generation:
        ```python
        msg = ChatWebsim(model="flux").invoke("a lighthouse at dusk", aspect_ratio="16:9", seed=7)
        msg.response_metadata["image_url"]
        ```

    Response metadata:
        ``model_name`` (the routed model), ``model_provider``, ``project_id``,
        ``finish_reason``, ``attempts``, ``rate_wait`` (seconds waited for the rate control)
        and, for images, ``image_url``, ``aspect_ratio`` and the image options sent.
        ``usage_metadata`` is never set: Websim reports no token counts.
    """

    CHAT_MODELS: ClassVar[tuple[str, ...]] = CHAT_MODELS
    IMAGE_MODELS: ClassVar[tuple[str, ...]] = IMAGE_MODELS

    # A validation alias (not ``alias``) keeps ``model=`` the keyword type checkers see.
    model: str = Field(
        default=_wire.DEFAULT_CHAT_MODEL, validation_alias=AliasChoices("model", "model_name")
    )
    """Routes the call: an image model (``flux``) or a chat model (anything else)."""
    project_id: ProjectId | None = None
    """A fixed project id; ``None`` gives every request a fresh one."""
    stop: list[str] | None = None
    """Stop sequences, applied to the answer client-side."""
    aspect_ratio: AspectRatio = _wire.DEFAULT_ASPECT_RATIO
    """Aspect ratio (``W:H``) for image models."""
    streaming: bool = False
    """Whether ``invoke`` goes through the (single-chunk) streaming path; not with tools."""
    tool_call_retries: int = Field(default=1, ge=0, strict=True)
    """Corrective re-asks when ``tool_choice`` requires a call and the reply made none."""
    json_mode: bool | None = None
    """Websim's ``"json": true`` (JSON mode).  ``None``: sent when the reply must be JSON
    (structured output, forced tool calls), not for plain chat; ``True``/``False``: always/never."""
    # Inputs stay out of validation errors: a rejected proxy URL may carry a password.
    model_config = ConfigDict(populate_by_name=True, extra="forbid", hide_input_in_errors=True)

    # ------------------------------------------------------------------ validation

    @model_validator(mode="before")
    @classmethod
    def _drop_params_without_equivalent(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _NO_EQUIVALENT):
            return data
        data = dict(data)  # never mutate the caller's mapping
        ignored = {k: data.pop(k) for k in _NO_EQUIVALENT if k in data}
        ignored = {k: v for k, v in ignored.items() if v is not None}
        if ignored:
            names = ", ".join(sorted(ignored))
            warnings.warn(
                f"ChatWebsim ignores {names}: Websim has no such setting (the service picks "
                "the model and its sampling, and needs no API key)",
                UserWarning,
                stacklevel=4,
            )
        return data

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        return validate_model(value)

    @field_validator("stop", mode="before")
    @classmethod
    def _check_stop(cls, value: Any) -> list[str] | None:
        return validate_stop(value)

    # ------------------------------------------------------------------ LangChain plumbing

    @property
    def _llm_type(self) -> str:
        return "websim-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "project_id": self.project_id,
            "aspect_ratio": self.aspect_ratio,
        }

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        # langchain-core's version calls the deprecated ``dict()`` inside a warnings filter
        # on every call (a few microseconds), so that a subclass overriding ``dict()``
        # still has its say; only such a subclass needs that path.
        if type(self).dict is not BaseChatModel.dict:
            return super()._get_invocation_params(stop=stop, **kwargs)
        return {**self.asdict(), "stop": stop, **kwargs}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="websim",
            ls_model_name=kwargs.get("model") or self.model,
            ls_model_type="chat",
        )
        ls_stop = stop if stop is not None else self.stop
        if ls_stop:
            params["ls_stop"] = ls_stop
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        # The route's profile (chat or flux); LangChain keeps a caller's own ``profile=``.
        return profile_for(self.model)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    # ------------------------------------------------------------------ token counts

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """An approximate token count (langchain-core's ``count_tokens_approximately``).

        Websim publishes no tokenizer and reports no usage, so this is an estimate (about
        four characters a token, a fixed cost per image); ``tools`` (anything ``bind_tools``
        takes) adds their schemas as the prompt protocol sends them.
        """
        from langchain_core.messages.utils import count_tokens_approximately

        from langchain_websim._prompt import convert_tools

        schemas: list[Any] | None = convert_tools(tools) if tools else None
        return count_tokens_approximately(messages, tools=schemas)

    def get_num_tokens(self, text: str) -> int:
        """An approximate token count for ``text``, by the same rule as
        ``get_num_tokens_from_messages`` (about four characters a token)."""
        return math.ceil(len(text) / _CHARS_PER_TOKEN)

    @property
    def lc_secrets(self) -> dict[str, str]:
        # dumpd() output reaches every callback handler and tracer: a proxy URL that carries
        # credentials goes out as a secret reference (load() restores it from WEBSIM_PROXY).
        return {"proxy": "WEBSIM_PROXY"} if redact_url(self.proxy) != self.proxy else {}

    # ------------------------------------------------------------------ tools

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` (anything ``convert_to_openai_tool`` takes) through the prompt.

        ``tool_choice``: ``None``/``"auto"`` (the model decides), ``"any"``/``"required"``/
        ``True`` (some call is required), a tool name or ``{"type": "function",
        "function": {"name": ...}}`` (that call is required), ``"none"`` (nothing offered).
        Unknown names raise ``ValueError``.

        ``strict=True``: the model is told to use exactly the schema's properties, and a
        call with any other argument is invalid (every object in the schemas is closed).
        ``parallel_tool_calls=False``: the model is told to call one tool at a time, and
        a reply keeps at most one call (the first valid one); the others are not run and
        are listed in ``response_metadata["dropped_tool_calls"]``.  Both are recorded in
        the binding and may also be passed per call.  ``kwargs`` go to ``bind``; one that
        ``ChatWebsim`` does not take raises ``TypeError`` here.
        """
        from langchain_websim._prompt import bind_tools_kwargs

        _check_call_kwargs(kwargs, _BIND_KWARGS)  # at bind time, not at every call
        options = bind_tools_kwargs(tools, tool_choice, strict, parallel_tool_calls)
        return self.bind(**options, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers as ``schema`` (a pydantic model, TypedDict or JSON schema).

        ``"json_schema"`` asks for JSON matching the schema and validates it, ``"json_mode"``
        asks for a JSON object and validates pydantic schemas only, ``"function_calling"``
        forces a call to a tool shaped like the schema.  Failures raise
        ``OutputParserException`` (``include_raw=True``: returned as ``parsing_error``).
        ``strict`` changes nothing: replies are always validated on our side.
        """
        from langchain_core.runnables import RunnableLambda

        from langchain_websim import _parsers

        _check_structured_output_args(schema, method, strict)
        options = (
            {"method": method} if method == "json_mode" else {"method": method, "strict": strict}
        )
        tracing = {"kwargs": options, "schema": schema}
        if method == "function_calling":
            name = _parsers.function_of(schema)["name"]
            bound = self.bind_tools(
                [cast(Any, schema)], tool_choice=name, ls_structured_output_format=tracing, **kwargs
            )
            parse = partial(_parsers.parse_tool_call, schema=schema, name=name)
        else:
            response_format = _parsers.response_format_for(schema)
            bound = self.bind(
                response_format=response_format, ls_structured_output_format=tracing, **kwargs
            )
            check = _parsers.schema_to_check(schema, method, response_format)
            parse = partial(_parsers.parse_json_reply, schema=schema, json_schema=check)
        parser = RunnableLambda(parse, name="WebsimStructuredOutputParser")
        return _parsers.with_raw(bound, parser) if include_raw else bound | parser

    def _streaming_disabled(self, **kwargs: Any) -> bool:
        # Websim answers in one piece, so an invoke with tools gains nothing from the stream
        # path, where LangChain re-derives the calls from merged chunks: an invalid call
        # (unknown tool, arguments off the schema) would lose its error or even turn valid.
        # stream()/astream() pass stream=True and still yield the one chunk.
        if kwargs.get("tools") and "stream" not in kwargs:
            return True
        return super()._streaming_disabled(**kwargs)

    # ------------------------------------------------------------------ calls

    async def _agenerate_image(
        self, model: str, wire: list[dict[str, Any]], project_id: str | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        prompt = image_prompt(wire, kwargs.get("prompt"))
        ratio = kwargs.get("aspect_ratio", self.aspect_ratio)
        request = ImageRequest(prompt, ratio, project_id, **self.image_options(kwargs))
        return image_answer(model, await self._websim_client().asend(request))

    async def _achat_with_tools(
        self,
        model: str,
        wire: list[dict[str, Any]],
        project_id: str | None,
        stop: list[str] | None,
        kwargs: dict[str, Any],
    ) -> AIMessage:
        """Send with the tool/format instruction; parse, and re-ask when a call is due."""
        from langchain_websim._parsers import one_call_only, parse_reply
        from langchain_websim._prompt import corrective_instruction, prepare_tools, with_instruction

        tools = prepare_tools(kwargs)
        client = self._websim_client()
        wire = with_instruction(wire, tools.instruction)
        json_mode = tools.json_reply if self.json_mode is None else self.json_mode
        answer = await client.asend(ChatRequest(wire, project_id, json_mode))
        parsed = parse_reply(apply_stop(answer.text, stop), tools.tools)
        attempts, waited, reasks = answer.attempts, answer.rate_wait, 0
        while tools.forced and not parsed.tool_calls and reasks < self.tool_call_retries:
            reasks += 1
            errors = [str(bad.get("error")) for bad in parsed.invalid_tool_calls]
            correction = corrective_instruction(tools.choice, tools.names, errors)
            wire = [
                *wire,
                {"role": "assistant", "content": answer.text},
                {"role": "user", "content": correction},
            ]
            # The same project: the re-ask continues the conversation that went wrong.
            answer = await client.asend(ChatRequest(wire, answer.project_id, json_mode))
            attempts += answer.attempts
            waited += answer.rate_wait
            parsed = parse_reply(apply_stop(answer.text, stop), tools.tools)
        dropped: list[dict[str, Any]] | None = None
        if tools.single:  # parallel_tool_calls=False
            parsed, dropped = one_call_only(parsed)
        message = tool_call_answer(
            model, answer.project_id, parsed, attempts=attempts, rate_wait=waited, reasks=reasks
        )
        if dropped is not None:
            message.response_metadata["dropped_tool_calls"] = dropped
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._websim_client().run_sync(self._agenerate(messages, stop, **kwargs))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """One call: check its arguments, route it (image, chat, chat with tools), answer.

        The one call path: the sync and streaming methods run it too.  A plain chat call
        holds nothing while its request is out that it does not need then: in a batch of
        concurrent calls, the objects each call holds decide how often the garbage
        collector runs.  Five more per call (three coroutines, the request and its copy of
        the messages) put a third of the batches of 2,000 calls over HTTPS into a full
        collection, 5-10 % of their time, and none without them (the performance docs).
        """
        _check_call_kwargs(kwargs, _CALL_KWARGS)
        model = validate_model(kwargs.get("model", self.model))
        project_id = kwargs.get("project_id", self.project_id)
        if _wire.is_image_model(model):
            wire = convert_messages(messages)
            return _result(await self._agenerate_image(model, wire, project_id, kwargs))
        _check_chat_kwargs(model, kwargs)
        stop = self.stop if stop is None else validate_stop(stop)
        if kwargs and not TOOL_KWARGS.isdisjoint(kwargs):
            wire = convert_messages(messages)
            return _result(await self._achat_with_tools(model, wire, project_id, stop, kwargs))
        # Built in the call, not kept here: the client lets go of it once its body is made.
        answer = await self._websim_client().asend(
            ChatRequest(convert_messages(messages), project_id, self.json_mode is True)
        )
        return _result(chat_answer(model, answer, stop))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._websim_client().run_sync(self._agenerate(messages, stop, **kwargs))
        chunk = only_chunk(_answer(result))
        if run_manager is not None:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        chunk = only_chunk(_answer(await self._agenerate(messages, stop, **kwargs)))
        if run_manager is not None:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk


# langchain-core asks for these methods' signatures on every call (do they take
# ``run_manager``?): bound, they carry them ready-made (``_presigned``).
presign(ChatWebsim, "_generate")
presign(ChatWebsim, "_agenerate")


def _check_call_kwargs(kwargs: dict[str, Any], known: frozenset[str]) -> None:
    if kwargs and not known.issuperset(kwargs):
        unknown = ", ".join(sorted(set(kwargs) - known))
        raise TypeError(
            f"ChatWebsim got unexpected call arguments: {unknown} (it takes "
            f"{', '.join(('stop', *_CHAT_KWARGS))}, and for image models "
            f"{', '.join(_IMAGE_KWARGS)})"
        )


def _result(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


def _answer(result: ChatResult) -> AIMessage:
    """The one answer of a result made by :func:`_result`."""
    message = result.generations[0].message
    assert isinstance(message, AIMessage)
    return message


def _check_chat_kwargs(model: str, kwargs: dict[str, Any]) -> None:
    """A chat model's call takes no image options."""
    if not kwargs.keys().isdisjoint(_IMAGE_KWARGS):
        names = ", ".join(f"{name}=" for name in _IMAGE_KWARGS if name in kwargs)
        raise ValueError(
            f"{names} apply to image models ({', '.join(IMAGE_MODELS)}) only, not to the "
            f"chat model {model!r}"
        )


def _check_structured_output_args(schema: Any, method: str, strict: bool | None) -> None:
    """``with_structured_output``'s arguments, refused before anything is bound."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    if strict is not None and method == "json_mode":
        raise ValueError(
            "strict applies to method='json_schema' or 'function_calling', not json_mode"
        )
    if schema is None and method != "json_mode":
        raise ValueError(
            f"method={method!r} needs a schema; only method='json_mode' works without one"
        )
