"""``with_structured_output`` for ChatWebsim: JSON through the prompt, parsed and validated.

Built like the partner packages build it (``langchain-openai``, ``-groq``, ``-ollama``): the
model is bound with a request for structured output plus ``ls_structured_output_format``
for tracing, and piped into a parser; ``include_raw`` wraps both in the usual
``{"raw", "parsed", "parsing_error"}`` map.  Websim cannot constrain generation, so the
parsers here do the enforcing: they find the JSON in a noisy reply (fences, prose around
it), validate it against the schema, and raise ``OutputParserException`` saying exactly what
was wrong instead of returning ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ValidationError
from pydantic.v1 import ValidationError as ValidationErrorV1

from langchain_websim._json_extract import extract_json
from langchain_websim._schema_check import schema_errors

if TYPE_CHECKING:
    from langchain_core.language_models import LanguageModelInput

    from langchain_websim.chat_models import ChatWebsim

__all__ = ["structured_output"]

Method = Literal["json_schema", "function_calling", "json_mode"]
_METHODS = ("json_schema", "function_calling", "json_mode")
_EXCERPT = 200


def structured_output(
    llm: ChatWebsim,
    schema: Any,
    *,
    method: Method,
    include_raw: bool,
    strict: bool | None,
    kwargs: dict[str, Any],
) -> Runnable[LanguageModelInput, Any]:
    """Build the structured-output runnable (see ``ChatWebsim.with_structured_output``)."""
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
    tracing = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
    if method == "function_calling":
        function = _function(schema)
        bound = llm.bind_tools(
            [schema],
            tool_choice=function["name"],
            ls_structured_output_format=tracing,
            **kwargs,
        )
        parse: Callable[[BaseMessage], Any] = partial(
            _parse_tool_call, schema=schema, name=function["name"]
        )
    else:
        if method == "json_mode":
            tracing = {"kwargs": {"method": method}, "schema": schema}
        response_format = _response_format(schema)
        bound = llm.bind(
            response_format=response_format, ls_structured_output_format=tracing, **kwargs
        )
        parse = partial(
            _parse_json_reply,
            schema=schema,
            json_schema=_check_schema(schema, method, response_format),
        )
    parser = RunnableLambda(parse, name="WebsimStructuredOutputParser")
    if include_raw:
        parser_assign = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
        parser_with_fallback = parser_assign.with_fallbacks(
            [parser_none], exception_key="parsing_error"
        )
        return RunnableMap(raw=bound) | parser_with_fallback
    return bound | parser


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def _function(schema: Any) -> dict[str, Any]:
    """The OpenAI function for ``schema``: name, description and parameters."""
    try:
        function = convert_to_openai_tool(schema)["function"]
    except (ValueError, TypeError) as exc:
        raise TypeError(
            "schema must be a pydantic model, a TypedDict, a JSON schema with a 'title' or an "
            f"OpenAI function/tool dict; {exc}"
        ) from exc
    return dict(function)


def _response_format(schema: Any) -> dict[str, Any]:
    """The ``response_format`` call argument: the schema for the instruction, if any."""
    if schema is None:
        return {"type": "json_object"}
    try:
        function = _function(schema)
    except TypeError:
        if not isinstance(schema, Mapping):
            raise
        # A JSON schema without a title: the title only names it, so ask for it as it is.
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    spec: dict[str, Any] = {
        "name": function["name"],
        "schema": function.get("parameters") or {"type": "object"},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"type": "json_schema", "json_schema": spec}


def _check_schema(
    schema: Any, method: Method, response_format: dict[str, Any]
) -> Mapping[str, Any] | None:
    """The JSON schema replies are held to besides pydantic (``None``: pydantic only)."""
    if _is_pydantic(schema):
        return None
    if method == "json_mode":
        return {"type": "object"}  # a JSON object, as in OpenAI's JSON mode
    return dict(response_format["json_schema"]["schema"])


def _excerpt(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _EXCERPT else text[:_EXCERPT] + "...")


def _parse_json_reply(
    message: BaseMessage, *, schema: Any, json_schema: Mapping[str, Any] | None
) -> Any:
    text = message.text
    try:
        value = extract_json(text)
    except ValueError:
        raise OutputParserException(
            f"the model's reply holds no JSON object: {_excerpt(text)}", llm_output=text
        ) from None
    return _validated(value, schema, json_schema, text)


def _validated(value: Any, schema: Any, json_schema: Mapping[str, Any] | None, text: str) -> Any:
    if _is_pydantic(schema):
        try:
            if hasattr(schema, "model_validate"):
                return schema.model_validate(value)
            return schema.parse_obj(value)  # pydantic.v1 model
        except (ValidationError, ValidationErrorV1) as exc:
            raise OutputParserException(
                f"the model's JSON does not match {schema.__name__}: {exc}", llm_output=text
            ) from exc
    if json_schema is not None:
        errors = schema_errors(value, json_schema, root="reply")
        if errors:
            raise OutputParserException(
                "the model's JSON does not match the schema: " + "; ".join(errors),
                llm_output=text,
            )
    return value


def _parse_tool_call(message: BaseMessage, *, schema: Any, name: str) -> Any:
    text = message.text
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    if not any(call["name"] == name for call in calls):
        invalid = message.invalid_tool_calls if isinstance(message, AIMessage) else []
        if invalid:
            reasons = "; ".join(str(call.get("error")) for call in invalid)
            problem = f"the model's call to {name!r} was invalid: {reasons}"
        else:
            problem = f"the model answered without calling {name!r}: {_excerpt(text)}"
        raise OutputParserException(problem, llm_output=text)
    generation: list[Generation] = [ChatGeneration(message=message)]
    if not _is_pydantic(schema):
        return JsonOutputKeyToolsParser(key_name=name, first_tool_only=True).parse_result(
            generation
        )
    try:
        return PydanticToolsParser(tools=[schema], first_tool_only=True).parse_result(generation)
    except (ValidationError, ValidationErrorV1) as exc:
        raise OutputParserException(
            f"the model's call to {name!r} does not match {schema.__name__}: {exc}",
            llm_output=text,
        ) from exc
