"""The goodput benchmark's worker: one contender in a fresh process, its calls, a summary.

A worker builds its chat model, reports ``ready``, waits for ``go`` (so every worker of a
scenario starts its calls together and import time is never timed), runs all its calls
through ``abatch`` and sends back what happened.  ``serve`` is a spawned process's body;
``build_model`` and ``run_calls`` do not care how the worker was started (the Ray runner
in ``_goodput_fleet`` calls them in its tasks).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

PROMPT = "What is 2 + 2?"
ANSWER = "2 + 2 is 4."  # what both of the bucket server's routes answer

CONTENDERS: dict[str, str] = {
    "websim": "ChatWebsim defaults",
    "websim-off": "ChatWebsim, adaptive rate off",
    "oracle": "ChatWebsim + InMemoryRateLimiter (oracle)",
    "openai": "ChatOpenAI defaults",
}


@dataclass(frozen=True)
class Job:
    """One worker's share of a scenario."""

    contender: str
    url: str
    calls: int
    concurrency: int
    rate: float
    """This worker's share of the true rate, for the oracle."""
    burst: float
    schedule: tuple[tuple[float, float], ...] = ()
    """The oracle's (seconds after go, new rate) steps, rates already shared out."""
    settings: tuple[tuple[str, Any], ...] = ()
    """Settings every ChatWebsim contender is built with."""

    def __post_init__(self) -> None:
        # Checked where the job is made: a worker would only fail later, and less clearly.
        if self.contender not in CONTENDERS:
            raise ValueError(
                f"unknown contender {self.contender!r}; choose from {', '.join(CONTENDERS)}"
            )
        for name in ("calls", "concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be a whole number >= 1, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def adaptive_off() -> dict[str, Any]:
    """``adaptive_rate=False`` where ChatWebsim has that setting; nothing where it has not."""
    from langchain_websim import ChatWebsim

    return {"adaptive_rate": False} if "adaptive_rate" in ChatWebsim.model_fields else {}


def build_model(job: Job) -> tuple[Any, Any]:
    """The contender's chat model, and the oracle's rate limiter (else None)."""
    if job.contender == "openai":
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        # The server checks no key; the SDK refuses to start without one.
        key = SecretStr("x")
        return ChatOpenAI(model="gpt-4o-mini", base_url=job.url + "/v1", api_key=key), None
    from langchain_websim import ChatWebsim

    settings = dict(job.settings)
    if job.contender == "websim":
        return ChatWebsim(base_url=job.url, **settings), None
    if job.contender == "websim-off":
        return ChatWebsim(base_url=job.url, **settings, **adaptive_off()), None
    if job.contender == "oracle":
        from langchain_core.rate_limiters import InMemoryRateLimiter

        limiter = InMemoryRateLimiter(
            requests_per_second=job.rate,
            # Polled by every waiting call: often enough to lose little of each token's time.
            check_every_n_seconds=0.01,
            # The server's own burst, so tokens that accrue between polls are not dropped.
            max_bucket_size=max(1.0, job.burst),
        )
        model = ChatWebsim(base_url=job.url, rate_limiter=limiter, **settings, **adaptive_off())
        return model, limiter
    raise ValueError(f"unknown contender {job.contender!r}; choose from {', '.join(CONTENDERS)}")


async def run_calls(job: Job, model: Any, limiter: Any) -> dict[str, Any]:
    """All the job's calls at once through ``abatch``; the summary of what came back."""
    loop = asyncio.get_running_loop()

    def switch(rate: float) -> None:
        limiter.requests_per_second = rate

    # The oracle knows the schedule: it changes its rate when the server does (the server
    # counts from the first request, a moment after go, so the oracle is never late).
    timers = [loop.call_later(at, switch, rate) for at, rate in job.schedule if limiter]
    started = time.perf_counter()
    try:
        results = await model.abatch(
            [PROMPT] * job.calls,
            config={"max_concurrency": job.concurrency},
            return_exceptions=True,
        )
    finally:
        for timer in timers:
            timer.cancel()
    wall = time.perf_counter() - started
    await close_model(model)
    return summarize(results, wall)


async def close_model(model: Any) -> None:
    # ChatWebsim closes its session when this loop shuts down; the OpenAI SDK's client has
    # to be told, or its pooled connections outlive the loop they belong to.
    sdk_client = getattr(model, "root_async_client", None)
    if sdk_client is not None:
        await sdk_client.close()


def summarize(results: list[Any], wall: float) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    waits: list[float] = []
    ok = 0
    for result in results:
        if isinstance(result, BaseException):
            errors[type(result).__name__] += 1
            continue
        if result.text != ANSWER:
            errors["wrong answer"] += 1
            continue
        ok += 1
        wait = result.response_metadata.get("rate_wait")
        if isinstance(wait, (int, float)):
            waits.append(float(wait))
    return {
        "ok": ok,
        "failed": len(results) - ok,
        "errors": dict(errors),
        "wall": wall,
        "rate_waits": waits,
    }


def quiet_retry_logs() -> None:
    # Both clients log every retry at WARNING; hundreds of them would bury the tables.
    for name in ("langchain_websim", "openai", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def serve(conn: Connection, job: Job) -> None:
    """A worker process's body: build, report ready, wait for go, run, send the summary."""
    try:
        quiet_retry_logs()
        model, limiter = build_model(job)
        conn.send(("ready", None))
        if conn.recv() != "go":
            return
        message: tuple[str, Any] = ("done", asyncio.run(run_calls(job, model, limiter)))
    except (EOFError, BrokenPipeError):
        return  # the parent gave up on this run and will reap the process
    except Exception:
        message = ("error", traceback.format_exc())
    try:
        conn.send(message)
    except BrokenPipeError:
        pass
    finally:
        conn.close()
