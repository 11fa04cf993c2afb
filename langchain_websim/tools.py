"""``WebsimImageTool``: Websim's ``flux`` image generation as a LangChain tool.

The tool is written for agent loops: the argument schema and descriptions are addressed to
the model that fills them in, the content of the result is the image URL (what the model
needs), the artifact is a structured record (what the application needs), and every failure
comes back as a message the model can act on instead of an exception that ends the loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self, cast

from langchain_core.tools import BaseTool, InjectedToolArg, ToolException
from langchain_core.tools.base import ArgsSchema, ToolExceptionHandlerOutput
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.v1 import ValidationError as ValidationErrorV1

from langchain_websim import _wire
from langchain_websim._answers import image_artifact, image_content
from langchain_websim._client_owner import ClientOwner
from langchain_websim._image_options import (
    IMAGE_OPTION_NAMES,
    IMAGE_OPTIONS,
    ImageOptionFields,
    check_image_field,
)
from langchain_websim._requests import AspectRatio, ImageRequest, ProjectId, validate_prompt
from langchain_websim.errors import (
    WebsimAPIError,
    WebsimBlockedError,
    WebsimConnectionError,
    WebsimError,
    WebsimRateLimitError,
    WebsimResponseError,
    WebsimTimeoutError,
)

__all__ = ["MAX_PROMPT_CHARS", "WebsimImageInput", "WebsimImageTool"]

logger = logging.getLogger("langchain_websim")

# A tool result's content: the image URL, or with ``return_image`` the URL and an image block.
Content = str | list[str | dict[Any, Any]]

MAX_PROMPT_CHARS = 4000
"""Longest prompt the tool accepts (after stripping).  Websim publishes no limit; image
models read only the first few hundred tokens, and a cap keeps a runaway model from sending
a whole document as a prompt."""

_PROMPT_DESCRIPTION = (
    "A detailed, self-contained description of the image to generate: subject, setting, "
    "style (photo, watercolour, 3D render, ...), composition, lighting and colours. Plain "
    f"text, at most {MAX_PROMPT_CHARS} characters. Do not put the aspect ratio here."
)


# Set by the application, per call or on the tool, never by the model: InjectedToolArg keeps
# them out of the schema the model sees.
_Injected = InjectedToolArg()


def _aspect_ratio_description(default: str) -> str:
    return (
        "Shape of the image as 'W:H'. Known values: '1:1' (square), '16:9' (landscape, wide), "
        "'9:16' (portrait, tall); other small whole-number ratios such as '4:3' are passed "
        f"to the service as they are. Leave it out for '{default}'."
    )


class _PromptArguments(BaseModel):
    """The arguments every image has: what to draw and its shape."""

    # An argument the tool does not have is reported to the model, not silently dropped.
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        description=_PROMPT_DESCRIPTION,
        json_schema_extra={"minLength": 1, "maxLength": MAX_PROMPT_CHARS},
    )
    aspect_ratio: AspectRatio = Field(
        default=_wire.DEFAULT_ASPECT_RATIO,
        description=_aspect_ratio_description(_wire.DEFAULT_ASPECT_RATIO),
    )

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        value = validate_prompt(value)
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"prompt is {len(value)} characters long, the maximum is {MAX_PROMPT_CHARS}; "
                "shorten it to the essential visual details"
            )
        return value

    _check_image_option = field_validator(*IMAGE_OPTION_NAMES, mode="before", check_fields=False)(
        check_image_field
    )


def _option_argument(name: str) -> tuple[Any, Any]:
    """An image option as a tool argument: described for the model when it may set it,
    hidden from the model's schema (``InjectedToolArg``) when it is the application's."""
    option = next(option for option in IMAGE_OPTIONS if option.name == name)
    annotation = ImageOptionFields.model_fields[name].annotation
    if option.for_model is None:
        return Annotated[annotation, _Injected], None
    return annotation, Field(default=None, description=option.for_model)


WebsimImageInput = create_model(
    "WebsimImageInput",
    __base__=_PromptArguments,
    __module__=__name__,
    __doc__="Arguments of ``websim_image_generation``: the prompt, the aspect ratio and the "
    "image options (``IMAGE_OPTIONS``; those without a description for the model are hidden "
    "from its schema).",
    **cast(dict[str, Any], {name: _option_argument(name) for name in IMAGE_OPTION_NAMES}),
)


@functools.cache
def _input_schema(default_aspect_ratio: str) -> type[_PromptArguments]:
    """The argument schema advertising ``default_aspect_ratio`` as the default.

    BaseTool fills omitted arguments with the schema's defaults before ``_run`` sees them,
    so the tool's own default has to live in the schema (where the model also reads it).
    """
    if default_aspect_ratio == _wire.DEFAULT_ASPECT_RATIO:
        return WebsimImageInput
    schema = create_model(
        "WebsimImageInput",
        __base__=WebsimImageInput,
        __module__=__name__,
        aspect_ratio=(
            AspectRatio,
            Field(
                default=default_aspect_ratio,
                description=_aspect_ratio_description(default_aspect_ratio),
            ),
        ),
    )
    _RATIO_SCHEMAS.add(schema)
    return schema


# The schemas ``_input_schema`` derived: a tool holding one follows its default ratio.
_RATIO_SCHEMAS: set[type[BaseModel]] = set()


def _follows_ratio(schema: Any) -> bool:
    return schema is WebsimImageInput or schema in _RATIO_SCHEMAS


def describe_invalid_arguments(error: ValidationError | ValidationErrorV1) -> str:
    """Tool output for arguments that fail the schema: each field and what is wrong."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ())) or "arguments"
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        problems.append(message if message.startswith(field) else f"{field}: {message}")
    return f"Invalid arguments: {'; '.join(problems)}. Fix these arguments and call the tool again."


class WebsimImageTool(ClientOwner, ImageOptionFields, BaseTool):
    """Generate an image with Websim's ``flux`` model; returns the image URL.

    Invoked with plain arguments it returns the URL; invoked with a ``ToolCall`` it returns
    a ``ToolMessage`` whose content is the URL and whose ``artifact`` is
    ``{"url", "prompt", "aspect_ratio", "model", "project_id"}`` plus the image options
    that were sent.  With ``return_image=True`` the content is a text block with the URL and
    an image block with the same URL, so a vision-capable model (``ChatWebsim`` is one) sees
    the picture.

    The image options are the fields of ``IMAGE_OPTIONS`` (``langchain_websim._image_options``):
    the ones it describes for the model (``seed``, ``transparent``) are in the model's
    schema, the others (``width``, ``height``, ``image_inputs``) are the application's: set
    them on the tool, or per call in the arguments of ``invoke`` (they are hidden from the
    model's schema).  The tool's own values apply when a call leaves an option out.  See
    https://github.com/langchain-websim/langchain-websim/blob/main/docs/image_tool.md

    Service failures and invalid arguments come back as tool output (a ``ToolMessage`` with
    ``status="error"`` for a tool call) so an agent can react; set
    ``handle_tool_error=False`` / ``handle_validation_error=False`` to get the
    ``ToolException`` (its ``__cause__`` is the typed ``Websim*`` error) or the
    ``ValidationError`` raised instead.

    The connection settings are the fields of ``ConnectionSettings``
    (``langchain_websim._settings``), defined there once.  Without ``client``, the tool uses
    ``WebsimClient.shared(...)`` for its settings, resolved on the first call: tools and
    models with the same settings share one connection pool.  A setting assigned later is
    checked and applies from the next call.
    """

    # Unknown settings are refused, not ignored; inputs stay out of validation errors
    # because a rejected proxy URL may carry a password.
    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", hide_input_in_errors=True
    )

    name: str = "websim_image_generation"
    description: str = (
        "Generate an image from a text description with the flux image model. Use it when "
        "the user asks for a picture, illustration, photo, drawing, logo or any other visual. "
        "Give a detailed prompt and, if the shape matters, an aspect_ratio ('1:1' square, "
        "'16:9' landscape, '9:16' portrait). Returns the URL of the generated image; show "
        "or link that URL to the user. Every call creates a new image, so call it again "
        "with an adjusted prompt to revise one; pass a seed to make an image reproducible, "
        "and transparent=true for a transparent background."
    )
    args_schema: Annotated[ArgsSchema | None, SkipValidation()] = WebsimImageInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Callable[[ToolException], ToolExceptionHandlerOutput] | None = (
        True
    )
    handle_validation_error: (
        bool | str | Callable[[ValidationError | ValidationErrorV1], str] | None
    ) = describe_invalid_arguments

    default_aspect_ratio: AspectRatio = _wire.DEFAULT_ASPECT_RATIO
    """Aspect ratio used when the model leaves ``aspect_ratio`` out."""
    project_id: ProjectId | None = None
    """Fixed project id for every call; default: a fresh image project id per call."""
    return_image: bool = False
    """Also put the image in the result's content (``[URL text block, image block]``), so a
    vision-capable model sees what it drew and can refine its prompt; the artifact is
    unchanged."""

    # ------------------------------------------------------------------ validation

    @model_validator(mode="after")
    def _finish(self) -> Self:
        # Runs after every checked assignment too, so a new default ratio brings its schema.
        if _follows_ratio(self.args_schema):
            self.args_schema = _input_schema(self.default_aspect_ratio)
        return self

    # ------------------------------------------------------------------ running

    def _run(
        self, prompt: str, aspect_ratio: str | None = None, **options: Any
    ) -> tuple[Content, dict[str, Any]]:
        return self._websim_client().run_sync(self._generate(prompt, aspect_ratio, options))

    async def _arun(
        self, prompt: str, aspect_ratio: str | None = None, **options: Any
    ) -> tuple[Content, dict[str, Any]]:
        return await self._generate(prompt, aspect_ratio, options)

    async def _generate(
        self, prompt: str, aspect_ratio: str | None, options: dict[str, Any]
    ) -> tuple[Content, dict[str, Any]]:
        # None is what the schema fills in for an argument the call left out.
        given = {name: value for name, value in options.items() if value is not None}
        request = ImageRequest(
            prompt,
            aspect_ratio or self.default_aspect_ratio,
            self.project_id,
            **self.image_options(given),
        )
        try:
            image = await self._websim_client().asend(request)
        except WebsimError as err:
            raise _tool_error(err) from err
        content = image_content(image.url) if self.return_image else image.url
        return content, image_artifact(image)

    # ------------------------------------------------------------------ copy and pickle

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        # `update` skips validation: assigning the new default ratio checks it and brings
        # its schema (``_finish``).
        if update and "default_aspect_ratio" in update:
            copied.default_aspect_ratio = copied.default_aspect_ratio
        return copied

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        fields = state["__dict__"]
        if fields.get("args_schema") is _input_schema(fields["default_aspect_ratio"]):
            fields["args_schema"] = WebsimImageInput  # derived schemas are rebuilt on load
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        if self.__dict__.get("args_schema") is WebsimImageInput:
            self.__dict__["args_schema"] = _input_schema(self.default_aspect_ratio)


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _words(err: WebsimConnectionError) -> str:
    return err.problem.removeprefix("connection failed: ")


def _tool_error(err: WebsimError) -> ToolException:
    """A message that tells an agent what happened and what it can do about it."""
    tries = _attempts(err.attempts)
    if isinstance(err, WebsimRateLimitError):
        if err.retry_after is not None:
            hint = f"rate limited; retry after {err.retry_after:g} s"
        else:
            hint = f"rate limited after {tries}; wait a minute before retrying"
    elif isinstance(err, WebsimBlockedError):
        hint = (
            f"blocked by a challenge page (HTTP {err.status_code}) before reaching the image "
            "service; retrying now will not help, tell the user image generation is "
            "unavailable at the moment"
        )
    elif isinstance(err, WebsimTimeoutError):
        each = f" of {err.timeout:g} s each" if err.timeout is not None else ""
        hint = f"timed out after {tries}{each}; try again later"
    elif isinstance(err, WebsimConnectionError) and err.reason == "tls":
        hint = (
            f"could not verify the image service's TLS certificate ({_words(err)}); retrying "
            "will not help, the tool's ca_bundle or base_url needs fixing"
        )
    elif isinstance(err, WebsimConnectionError):
        hint = f"could not reach the image service after {tries} ({_words(err)}); try again later"
    elif isinstance(err, WebsimResponseError):
        hint = f"the image service sent an unusable answer ({err.problem}); calling again may work"
    elif isinstance(err, WebsimAPIError) and 400 <= err.status_code < 500:
        detail = f": {_wire.excerpt(err.body, 200)}" if err.body else ""
        hint = (
            f"the image service rejected the request with HTTP {err.status_code}{detail}; "
            "change the prompt or aspect_ratio before calling again"
        )
    elif isinstance(err, WebsimAPIError) and 300 <= err.status_code < 400:
        hint = (
            f"the image service redirected the request (HTTP {err.status_code}); the tool's "
            "base_url is misconfigured, retrying will not help"
        )
    elif isinstance(err, WebsimAPIError):
        hint = (
            f"the image service failed with HTTP {err.status_code} after {tries}; try again later"
        )
    else:
        hint = str(err)
    # The handled message reaches only the model; keep the full diagnostics in the log.
    logger.warning("websim_image_generation failed: %s", err)
    return ToolException(f"Image generation failed: {hint}.")
