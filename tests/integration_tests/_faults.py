"""The surfaces the fault matrix runs every row on, and how each is built, called and checked.

A *surface* is one way a user reaches the service: ``client`` (``WebsimClient.achat`` and
``agenerate_image``), ``chat`` (``ChatWebsim.ainvoke``), ``chat_flux``
(``ChatWebsim(model="flux")``) and ``tool`` (``WebsimImageTool`` called with a tool call, as
an agent calls it).  ``SurfaceFactory`` builds all of them from the same ``**settings``; a
``Caller`` drives one of them and reports what came back in one shape, so a row of the
matrix is written once and asserted the same way on every surface.
"""

from __future__ import annotations

import inspect
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pytest
from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.tools import ToolException

from langchain_websim import (
    ChatWebsim,
    WebsimChatResponse,
    WebsimClient,
    WebsimImageResponse,
    WebsimImageTool,
)
from langchain_websim.errors import WebsimError
from langchain_websim.testing import WebsimEmulator

EndpointName = Literal["chat", "image"]
SurfaceName = Literal["client", "chat", "chat_flux", "tool"]
TEXT = "hello there"
TOOL_FAILED = "Image generation failed: "
T = TypeVar("T")

# The parameters that pick a process-wide client: ChatWebsim and WebsimImageTool document
# that instances with the same values of these share ``WebsimClient.shared(...)``.  Read
# from the signature, so a setting added to the client later is covered without a change.
_SHARED_CLIENT_PARAMS = frozenset(inspect.signature(WebsimClient.shared).parameters)


@dataclass(frozen=True)
class Surface:
    name: SurfaceName
    endpoint: EndpointName

    def __str__(self) -> str:  # the test id
        return f"client-{self.endpoint}" if self.name == "client" else self.name


SURFACES = [
    Surface("client", "chat"),
    Surface("client", "image"),
    Surface("chat", "chat"),
    Surface("chat_flux", "image"),
    Surface("tool", "image"),
]


def surfaces_on(*endpoints: EndpointName) -> list[Surface]:
    return [s for s in SURFACES if s.endpoint in endpoints]


@dataclass(frozen=True)
class Answer:
    text: str  # the chat answer, or the image URL
    attempts: int | None  # None where the surface does not report it (the tool)


@dataclass(frozen=True)
class Failure:
    error: WebsimError  # for the tool: the ``__cause__`` of the ToolException
    message: str | None  # what the tool handed the model; None for the other surfaces
    statuses: list[int | None]  # what the emulator answered during one call, in order
    elapsed: float  # seconds the (slowest) call took


def shared_client_of(obj: ChatWebsim | WebsimImageTool) -> WebsimClient:
    """The process-wide client ``obj`` uses (it has no explicit ``client``)."""
    fields = type(obj).model_fields
    return WebsimClient.shared(
        **{name: getattr(obj, name) for name in _SHARED_CLIENT_PARAMS if name in fields}
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def measured(row: str, **values: object) -> None:
    """One line per test that ``pytest -s`` shows; the docs' "measured" column comes from it."""
    print(f"\nMEASURED {row}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


class Caller(ABC):
    """Drives one surface: ``acall``/``call`` as its users do, ``answer`` checks a result."""

    def __init__(self, surface: Surface, emulator: WebsimEmulator) -> None:
        self.surface = surface
        self.emulator = emulator

    @abstractmethod
    async def acall(self, text: str = TEXT) -> Any:
        """Ask for ``text`` (a chat message or an image prompt) the async way."""

    @abstractmethod
    def call(self, text: str = TEXT) -> Any:
        """The same through the surface's synchronous API."""

    @abstractmethod
    def answer(self, result: Any, text: str = TEXT) -> Answer:
        """Check that ``result`` answers ``text``; return it in one shape."""

    async def ask(self, text: str = TEXT) -> Answer:
        """One call that must be answered; checks the answer and returns it."""
        return self.answer(await self.acall(text), text)

    def statuses(self) -> list[int | None]:
        return [r.status for r in self.emulator.requests_for(self.surface.endpoint)]

    def check_image_url(self, url: object) -> str:
        assert isinstance(url, str), url
        assert url.startswith(self.emulator.base_url + "/images/"), url
        return url

    async def fail(self, script: Callable[[], None]) -> Failure:
        """Run ``script`` (which scripts the fault), then one call that must fail."""
        error, statuses, elapsed = await self._watch(script, self._error)
        return Failure(error, None, statuses, elapsed)

    async def _error(self) -> WebsimError:
        with pytest.raises(WebsimError) as info:
            await self.acall()
        return info.value

    async def _watch(
        self, script: Callable[[], None], run: Callable[[], Awaitable[T]]
    ) -> tuple[T, list[int | None], float]:
        before, before_all = len(self.statuses()), len(self.emulator.requests)
        script()
        started = time.perf_counter()
        result = await run()
        elapsed = time.perf_counter() - started
        seen = self.statuses()[before:]
        assert len(self.emulator.requests) - before_all == len(seen)  # none to the other API
        return result, seen, elapsed


class ClientCaller(Caller):
    def __init__(self, surface: Surface, emulator: WebsimEmulator, client: WebsimClient) -> None:
        super().__init__(surface, emulator)
        self.client = client

    async def acall(self, text: str = TEXT) -> WebsimChatResponse | WebsimImageResponse:
        if self.surface.endpoint == "chat":
            return await self.client.achat([{"role": "user", "content": text}])
        return await self.client.agenerate_image(text)

    def call(self, text: str = TEXT) -> WebsimChatResponse | WebsimImageResponse:
        if self.surface.endpoint == "chat":
            return self.client.chat([{"role": "user", "content": text}])
        return self.client.generate_image(text)

    def answer(self, result: Any, text: str = TEXT) -> Answer:
        if self.surface.endpoint == "chat":
            assert isinstance(result, WebsimChatResponse), result
            assert result.text == f"Echo: {text}"
            return Answer(result.text, result.attempts)
        assert isinstance(result, WebsimImageResponse), result
        assert result.prompt == text
        return Answer(self.check_image_url(result.url), result.attempts)


class ChatCaller(Caller):
    """``ChatWebsim``: a chat model, or (``chat_flux``) the ``flux`` image model."""

    def __init__(self, surface: Surface, emulator: WebsimEmulator, llm: ChatWebsim) -> None:
        super().__init__(surface, emulator)
        self.llm = llm

    async def acall(self, text: str = TEXT) -> Any:
        return await self.llm.ainvoke(text)

    def call(self, text: str = TEXT) -> Any:
        return self.llm.invoke(text)

    def answer(self, result: Any, text: str = TEXT) -> Answer:
        assert isinstance(result, AIMessage), result
        attempts = result.response_metadata["attempts"]
        if self.surface.endpoint == "chat":
            assert result.content == f"Echo: {text}"
            return Answer(result.content, attempts)
        return Answer(self.check_image_url(result.response_metadata["image_url"]), attempts)


class ToolCaller(Caller):
    """``WebsimImageTool`` as an agent sees it: a tool call in, a ``ToolMessage`` out.

    A failure is run twice: through ``tool`` (``handle_tool_error=True``, the default: the
    message the model reads) and through ``raising`` (``handle_tool_error=False``: the
    ``ToolException`` chained to the typed error).
    """

    def __init__(
        self,
        surface: Surface,
        emulator: WebsimEmulator,
        tool: WebsimImageTool,
        raising: WebsimImageTool,
    ) -> None:
        super().__init__(surface, emulator)
        self.tool, self.raising = tool, raising

    def tool_call(self, text: str) -> ToolCall:
        return ToolCall(
            name=self.tool.name, args={"prompt": text}, id=f"call:{text}", type="tool_call"
        )

    async def acall(self, text: str = TEXT) -> Any:
        return await self.tool.ainvoke(self.tool_call(text))

    def call(self, text: str = TEXT) -> Any:
        return self.tool.invoke(self.tool_call(text))

    def answer(self, result: Any, text: str = TEXT) -> Answer:
        assert isinstance(result, ToolMessage), result
        assert (result.status, result.tool_call_id) == ("success", f"call:{text}"), result
        url = self.check_image_url(result.content)
        assert result.artifact["url"] == url and result.artifact["prompt"] == text
        return Answer(url, None)

    async def fail(self, script: Callable[[], None]) -> Failure:
        handled, statuses, elapsed = await self._watch(script, self._message)
        cause, raised_statuses, raised_elapsed = await self._watch(script, self._raised(handled))
        assert raised_statuses == statuses  # the same fault, the same requests
        return Failure(cause, handled, statuses, max(elapsed, raised_elapsed))

    async def _message(self) -> str:
        message = await self.tool.ainvoke(self.tool_call(TEXT))
        assert isinstance(message, ToolMessage), message
        assert (message.status, message.tool_call_id) == ("error", f"call:{TEXT}")
        assert isinstance(message.content, str) and message.content.startswith(TOOL_FAILED)
        return message.content

    def _raised(self, message: str) -> Callable[[], Awaitable[WebsimError]]:
        async def run() -> WebsimError:
            with pytest.raises(ToolException) as info:
                await self.raising.ainvoke(self.tool_call(TEXT))
            assert str(info.value) == message
            cause = info.value.__cause__
            assert isinstance(cause, WebsimError), cause
            return cause

        return run


class SurfaceFactory:
    """Builds every surface from one set of ``**settings`` and closes what it built.

    ``defaults`` apply to every surface built (a test module can run the whole matrix
    under other settings through them); per-call settings override them.
    """

    def __init__(
        self,
        emulator: WebsimEmulator,
        make_client: Callable[..., WebsimClient],
        defaults: Mapping[str, Any],
    ) -> None:
        self.emulator = emulator
        self._make_client = make_client  # closes its clients itself
        self._defaults = dict(defaults)
        self._shared: list[ChatWebsim | WebsimImageTool] = []

    def __call__(self, surface: Surface, **settings: Any) -> Caller:
        settings = {
            "base_url": self.emulator.base_url,
            "retry_base_delay": 0.01,
            "timeout": 10,
            **self._defaults,
            **settings,
        }
        if surface.name == "client":
            return ClientCaller(surface, self.emulator, self._make_client(**settings))
        if surface.name == "tool":
            tool = WebsimImageTool(**settings)
            self._shared.append(tool)
            # Its own client: the same fault must meet the same fresh client twice, not a
            # rate controller that the first run taught (a Retry-After pause, say).
            own = self._make_client(**settings)
            raising = WebsimImageTool(handle_tool_error=False, client=own)
            return ToolCaller(surface, self.emulator, tool, raising)
        model = "flux" if surface.name == "chat_flux" else "gemini-1.5-pro"
        llm = ChatWebsim(model=model, **settings)
        self._shared.append(llm)
        return ChatCaller(surface, self.emulator, llm)

    async def aclose(self) -> None:
        # Look every client up before closing any: a closed one would be replaced.
        clients = {id(c): c for c in map(shared_client_of, self._shared)}
        for client in clients.values():
            await client.aclose()
