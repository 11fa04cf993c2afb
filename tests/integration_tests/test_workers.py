"""Models and tools made in a parent process work inside worker processes.

Fork, spawn and forkserver pools; a fleet of pool workers sharing one rate limit; every
setting surviving the trip.  The same for Ray tasks is in ``test_scale_out.py``.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests import _fleet as fleet

pytestmark = pytest.mark.slow  # tens of seconds in all: a parallel run starts this file first

# Set before a fork, so the child inherits the objects instead of unpickling them.
_INHERITED: dict[str, Any] = {}
_CHILD_TIMEOUT = 60


def _chat_in_child(text: str) -> tuple[int, str]:
    return os.getpid(), _INHERITED["llm"].invoke(text).content


def _draw_in_child(prompt: str) -> str:
    return str(_INHERITED["tool"].invoke({"prompt": prompt}))


def _client_in_child(text: str) -> str:
    return str(_INHERITED["client"].chat([{"role": "user", "content": text}]).text)


def test_a_forked_child_of_a_process_that_already_called_does_not_hang(
    emulator: WebsimEmulator,
) -> None:
    llm = ChatWebsim(base_url=emulator.base_url, timeout=10)
    tool = WebsimImageTool(base_url=emulator.base_url, timeout=10)
    client = WebsimClient(emulator.base_url, timeout=10)
    # The parent's background loop and pools are live when the fork happens.
    assert llm.invoke("parent").content == "Echo: parent"
    assert tool.invoke({"prompt": "parent fox"}).startswith("http")
    assert client.chat([{"role": "user", "content": "parent"}]).text == "Echo: parent"
    _INHERITED.update(llm=llm, tool=tool, client=client)
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            chats = pool.map_async(_chat_in_child, ["one", "two", "three", "four"])
            pids_and_answers = chats.get(timeout=_CHILD_TIMEOUT)
            drawn = pool.apply_async(_draw_in_child, ("a fox",)).get(timeout=_CHILD_TIMEOUT)
            direct = pool.apply_async(_client_in_child, ("x",)).get(timeout=_CHILD_TIMEOUT)
    finally:
        _INHERITED.clear()
    assert [answer for _, answer in pids_and_answers] == [
        "Echo: one",
        "Echo: two",
        "Echo: three",
        "Echo: four",
    ]
    assert os.getpid() not in {pid for pid, _ in pids_and_answers}
    assert drawn.startswith("http") and direct == "Echo: x"
    # The parent's own pool is untouched by what the children did.
    assert llm.invoke("parent again").content == "Echo: parent again"
    client.close()
    llm._websim_client().close()


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_a_pickled_model_works_in_fresh_worker_processes(
    emulator: WebsimEmulator, start_method: str
) -> None:
    llm = ChatWebsim(base_url=emulator.base_url, timeout=10, max_retries=1)
    assert llm.invoke("parent").content == "Echo: parent"
    with multiprocessing.get_context(start_method).Pool(1) as pool:
        answers = pool.starmap_async(_chat_with, [(llm, "one"), (llm, "two")])
        assert answers.get(timeout=_CHILD_TIMEOUT) == ["Echo: one", "Echo: two"]
    llm._websim_client().close()


def _chat_with(llm: ChatWebsim, text: str) -> str:
    return str(llm.invoke(text).content)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_pool_workers_sharing_one_rate_limit_answer_every_call(
    emulator: WebsimEmulator, start_method: str
) -> None:
    # Default settings, made and used in the parent, as a batch script would.
    llm = ChatWebsim(base_url=emulator.base_url)
    assert llm.invoke("parent").content == "Echo: parent"
    fleet.limit(emulator)
    jobs = [(llm, worker) for worker in range(fleet.WORKERS)]
    answers = fleet.run_in_pool(start_method, fleet.answer_all, jobs)
    fleet.check_fleet(emulator, answers)
    llm._websim_client().close()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_every_setting_of_a_model_and_a_tool_arrives_in_a_pool_worker(
    tmp_path: Path, start_method: str
) -> None:
    ca_bundle = fleet.write_ca_bundle(tmp_path)
    llm, tool = fleet.changed_chat_model(ca_bundle), fleet.changed_image_tool(ca_bundle)
    sent = [fleet.settings_of(llm), fleet.settings_of(tool)]
    got = fleet.run_in_pool(start_method, fleet.settings_in_worker, [(llm,), (tool,)])
    assert [settings for _, settings in got] == sent
    assert os.getpid() not in {pid for pid, _ in got}
    llm._websim_client().close()
    tool._websim_client().close()
