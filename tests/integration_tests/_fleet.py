"""What the scale-out tests send to worker processes, and how they check what comes back.

Shared by the multiprocessing tests (``test_workers.py``) and the Ray tests
(``test_scale_out.py``):

* the fleet: ``WORKERS`` workers x ``CALLS`` calls, each worker a ``batch`` of its own
  prompts, against one emulator limited to ``RATE`` requests/s -- every call must be answered,
  each exactly once;
* the round trip: a model and a tool with every setting changed from its default must arrive
  in a worker with the same settings, and resolve a client there with the same settings.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trustme
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from langchain_websim import ChatWebsim, RateTuning, WebsimImageTool
from langchain_websim.testing import WebsimEmulator

WORKERS = 4
CALLS = 20
"""Each worker's calls: 4 x 20 = 80 against room for 10 a second keeps the limit binding for
most of the run (the 429s are checked), in a third of the time 4 x 50 took."""
CONCURRENCY = 10
"""Each worker's ``max_concurrency``: a batch job's usual setting, well over what 10/s needs."""
RATE = 10.0
BURST = 10
TIMEOUT = 180.0
"""Seconds for a whole fleet, worker start-up included; letting every call through the limit
takes (80 - 10) / 10 = 7 s, so only a hang or a very slow machine reaches this."""


def prompts(worker: int) -> list[str]:
    return [f"worker {worker} call {n}" for n in range(CALLS)]


def answer_all(llm: ChatWebsim, worker: int) -> list[str]:
    """One worker's share: each answer's text, or the error's type and message."""
    results = llm.batch(
        prompts(worker), config={"max_concurrency": CONCURRENCY}, return_exceptions=True
    )
    # Pool and Ray workers outlive the task: stop the client's loop thread here.
    llm._websim_client().close()
    return [
        str(r.content) if isinstance(r, BaseMessage) else f"{type(r).__name__}: {r}"
        for r in results
    ]


def limit(emulator: WebsimEmulator) -> None:
    """From here on, one rate limit for the whole fleet; the parent's own calls are forgotten."""
    emulator.set_rate_limit(RATE, burst=BURST)
    emulator.clear()


def check_fleet(emulator: WebsimEmulator, answers: Sequence[Sequence[str]]) -> None:
    failed = Counter(
        answer.partition(":")[0]
        for got in answers
        for answer in got
        if not answer.startswith("Echo: ")
    )
    total = WORKERS * CALLS
    assert not failed, f"{failed.total()} of {total} calls failed: {dict(failed)}"
    assert [list(got) for got in answers] == [
        [f"Echo: {p}" for p in prompts(w)] for w in range(WORKERS)
    ]
    # Answered exactly once each: no call was sent again after the service had answered it.
    answered = Counter(
        r.body["messages"][-1]["content"] for r in emulator.requests_for("chat") if r.status == 200
    )
    assert answered == Counter(p for w in range(WORKERS) for p in prompts(w))
    # The fleet did outrun the limit: the calls were answered despite 429s, not without them.
    assert any(r.status == 429 for r in emulator.requests_for("chat"))


# ---------------------------------------------------------------------- the settings round trip

NOT_SENT = {
    "ssl_context": "cannot be pickled (a TypeError says so); ca_bundle is the form that travels",
    "client": "an explicit client travels as its settings, compared below as the worker's client",
    "callbacks": "handlers of the process that runs the call, not settings",
    "rate_limiter": "a LangChain rate limiter holds a lock and counts for one process only",
}
DERIVED = {"args_schema"}  # the tool's input schema follows default_aspect_ratio


def write_ca_bundle(directory: Path) -> str:
    """A PEM file of a throwaway CA, for the one TLS setting that can travel."""
    path = directory / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def token_ids(text: str) -> list[int]:
    return [len(word) for word in text.split()]


def _connection_changes(ca_bundle: str) -> dict[str, Any]:
    return {
        "base_url": "http://127.0.0.1:9/websim",
        "timeout": 7.5,
        "max_retries": 5,
        "retry_base_delay": 0.25,
        "retry_max_delay": 4.0,
        "proxy": "http://user:secret@127.0.0.1:3128",
        "headers": {"X-Job": "scale-out"},
        "max_connections": 7,
        "ca_bundle": ca_bundle,
        # The adaptive rate controller's settings, once the classes have them.
        "adaptive_rate": False,
        "rate_limit_deadline": 12.5,
        "rate_tuning": RateTuning(initial_window=3.0, min_rate=0.5),
    }


_SHARED_CHANGES = {
    "verbose": True,
    "tags": ["scale-out"],
    "metadata": {"job": "scale-out"},
    # The image options, on both classes.
    "seed": 7,
    "width": 512,
    "height": 256,
    "transparent": True,
    "image_inputs": ("https://cdn.example.test/reference.png",),
}
_CHAT_CHANGES = {
    **_SHARED_CHANGES,
    "name": "fleet-model",
    "cache": False,
    "custom_get_token_ids": token_ids,
    "disable_streaming": True,
    "output_version": "v1",
    "profile": {"max_input_tokens": 1000},
    "model": "claude-3.5-sonnet",
    "project_id": "fleet-chat",
    "stop": ["STOP"],
    "aspect_ratio": "16:9",
    "streaming": True,
    "tool_call_retries": 3,
    "json_mode": True,
}
_TOOL_CHANGES = {
    **_SHARED_CHANGES,
    "name": "draw",
    "description": "Draws a picture of what it is told.",
    "return_direct": True,
    "handle_tool_error": "the image could not be made",
    "handle_validation_error": "the arguments were not valid",
    "response_format": "content",
    "extras": {"team": "images"},
    "default_aspect_ratio": "9:16",
    "project_id": "fleet-image",
    "return_image": True,
}


def _changed(cls: type[BaseModel], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` for the fields ``cls`` has, each checked to differ from its default, and
    every field of ``cls`` accounted for: a new setting must be added here to be tested."""
    fields = cls.model_fields
    values = {name: value for name, value in changes.items() if name in fields}
    left_out = set(fields) - set(values) - set(NOT_SENT) - DERIVED
    assert not left_out, f"give {cls.__name__}.{sorted(left_out)} a non-default value here"
    for name, value in values.items():
        default = fields[name].get_default(call_default_factory=True)
        assert value != default, f"{cls.__name__}.{name}: {value!r} is the default"
    return values


def changed_chat_model(ca_bundle: str) -> ChatWebsim:
    changes = {**_connection_changes(ca_bundle), **_CHAT_CHANGES}
    return ChatWebsim(**_changed(ChatWebsim, changes))


def changed_image_tool(ca_bundle: str) -> WebsimImageTool:
    changes = {**_connection_changes(ca_bundle), **_TOOL_CHANGES}
    return WebsimImageTool(**_changed(WebsimImageTool, changes))


def _comparable(value: Any) -> Any:
    # Classes and functions compare by what they are, and must not need pickling by value.
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value.model_json_schema()
    if callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def settings_of(obj: ChatWebsim | WebsimImageTool) -> dict[str, Any]:
    """Every field but the unsendable ones, and the settings of the client it resolves."""
    fields = {
        name: _comparable(getattr(obj, name))
        for name in type(obj).model_fields
        if name not in NOT_SENT
    }
    return {"fields": fields, "client": obj._websim_client().settings.model_dump()}


def settings_in_worker(obj: ChatWebsim | WebsimImageTool) -> tuple[int, dict[str, Any]]:
    settings = settings_of(obj)
    obj._websim_client().close()
    return os.getpid(), settings


# ---------------------------------------------------------------------- multiprocessing pools

# The jobs of a fork pool, set before the fork: the children inherit them, nothing is pickled.
_FORKED: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []


def _run_inherited(index: int) -> Any:
    fn, args = _FORKED[index]
    return fn(*args)


def run_in_pool(
    start_method: str, fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """``fn(*job)`` for each job, in a pool of one process per job; bounded by ``TIMEOUT``.

    With ``fork`` the function and its arguments are inherited; otherwise they are pickled.
    Leaving the pool terminates its processes, whatever happened.
    """
    ctx = multiprocessing.get_context(start_method)
    if start_method == "fork":
        _FORKED[:] = [(fn, tuple(job)) for job in jobs]
    try:
        with ctx.Pool(len(jobs)) as pool:
            if start_method == "fork":
                inherited = pool.map_async(_run_inherited, range(len(jobs)), chunksize=1)
                return list(inherited.get(TIMEOUT))
            return list(pool.starmap_async(fn, jobs, chunksize=1).get(TIMEOUT))
    finally:
        _FORKED.clear()
