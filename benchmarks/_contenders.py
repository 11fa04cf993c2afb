"""What is timed: the contenders, and the one concurrency scheme they all run under.

Every contender is an ``async`` call of no arguments that does one chat exchange and returns
the answer text; ``run_concurrent`` drives ``n`` of them through ``concurrency`` worker
tasks, the same way for all, so the figures differ only by what each call costs.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

PROMPT = "What is 2 + 2?"

Call = Callable[[], Awaitable[str]]


async def run_concurrent(call: Call, n: int, concurrency: int) -> float:
    """Seconds for ``n`` calls, at most ``concurrency`` in flight at any time."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return time.perf_counter() - started


async def run_sequential_async(call: Call, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return time.perf_counter() - started


def run_sequential_sync(call: Callable[[], str], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - started


# ---------------------------------------------------------------------- raw aiohttp


class RawAiohttp:
    """The wire alone: one pooled session, the same POST as ChatWebsim's, the JSON parsed."""

    def __init__(self, base_url: str, trust: ssl.SSLContext | None) -> None:
        self.url = base_url + "/api/v1/inference/run_chat_completion"
        self._trust = trust
        self._session: aiohttp.ClientSession | None = None
        origin = base_url
        self.headers = {
            "accept": "*/*",
            "accept-language": "en-US,en;q=0.9",
            "content-type": "text/plain;charset=UTF-8",
            "origin": origin,
            "referer": origin + "/@ISWEARIAMNOTADDICTEDTOPILLOW/zelos-ai-assistant",
            "user-agent": (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/133.0.0.0 Safari/537.36"
            ),
            "websim-flags": "",
        }
        self.body = json.dumps(
            {
                "project_id": "ke3_xh5gai3gjkmruomu",
                "messages": [{"role": "user", "content": PROMPT}],
            }
        ).encode()

    async def call(self) -> str:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=100, limit_per_host=0, ssl=self._trust if self._trust else True
            )
            self._session = aiohttp.ClientSession(connector=connector)
        async with self._session.post(self.url, data=self.body, headers=self.headers) as resp:
            resp.raise_for_status()
            content: str = json.loads(await resp.read())["content"]
            return content

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


# ---------------------------------------------------------------------- LangChain's own layer


class FixedChatModel(BaseChatModel):
    """LangChain's own cost: a chat model whose native async path answers at once.

    Not ``FakeListChatModel``: its async path hops through a thread pool, which would
    charge LangChain for a cost no real async integration has.
    """

    answer: str = "2 + 2 is 4."

    @property
    def _llm_type(self) -> str:
        return "fixed-benchmark"

    def _result(self) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.answer))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result()


class WireChatModel(BaseChatModel):
    """The floor for any integration: LangChain's layer around the raw aiohttp exchange.

    What the two unavoidable layers cost *together*; the difference to their sum is what
    composing them costs on this machine (deeper coroutine chains resumed on every network
    event, a larger working set), which no integration can avoid either.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    wire: RawAiohttp

    @property
    def _llm_type(self) -> str:
        return "wire-benchmark"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("the floor model is timed on its async path only")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = await self.wire.call()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def ainvoke_call(model: BaseChatModel) -> Call:
    async def call() -> str:
        return (await model.ainvoke(PROMPT)).text

    return call


def invoke_call(model: BaseChatModel) -> Callable[[], str]:
    def call() -> str:
        return model.invoke(PROMPT).text

    return call
