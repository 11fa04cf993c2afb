"""Models and tools made in a Ray driver work in Ray tasks, and the S6 runner counts right.

One local Ray cluster (2 CPUs, loopback only, offline) serves the whole module and is shut
down after it.  Tasks that talk to the emulator reach it over loopback like any client.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_socket
import ray
from langchain_core.messages import AIMessage

from langchain_websim import ChatWebsim
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests import _fleet as fleet
from tests.integration_tests.conftest import LOOPBACK

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
CPUS = 2


@pytest.fixture(scope="module")
def ray_scenario() -> Iterator[ModuleType]:
    """``benchmarks/_ray_scenario.py``: the S6 runner and the offline local cluster."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("_ray_scenario")


@pytest.fixture(scope="module")
def ray_cluster(ray_scenario: ModuleType) -> Iterator[None]:
    # The driver's own sockets are held to loopback while the cluster starts and stops;
    # Ray's processes are kept there by the environment local_ray() sets.
    pytest_socket.socket_allow_hosts(LOOPBACK, allow_unix_socket=True)
    try:
        with ray_scenario.local_ray(num_cpus=CPUS):
            yield
    finally:
        pytest_socket.enable_socket()
    assert not ray.is_initialized()


def run_on_ray(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``fn(*job)`` for each job, one Ray task each, all at once; bounded by the fleet timeout."""
    task = ray.remote(fn).options(num_cpus=CPUS / len(jobs), max_retries=0)
    refs = [task.remote(*job) for job in jobs]
    try:
        return list(ray.get(refs, timeout=fleet.TIMEOUT))
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise


@pytest.mark.usefixtures("ray_cluster")
def test_the_local_cluster_is_one_node_on_loopback() -> None:
    nodes = [node for node in ray.nodes() if node["Alive"]]
    assert [node["NodeManagerAddress"] for node in nodes] == ["127.0.0.1"]
    assert ray.cluster_resources()["CPU"] == CPUS


@pytest.mark.usefixtures("ray_cluster")
def test_ray_tasks_sharing_one_rate_limit_answer_every_call(emulator: WebsimEmulator) -> None:
    # Default settings, made and used in the driver, then sent to every task.
    llm = ChatWebsim(base_url=emulator.base_url)
    assert llm.invoke("driver").content == "Echo: driver"
    fleet.limit(emulator)
    model = ray.put(llm)
    answers = run_on_ray(fleet.answer_all, [(model, w) for w in range(fleet.WORKERS)])
    fleet.check_fleet(emulator, answers)
    llm._websim_client().close()


@pytest.mark.usefixtures("ray_cluster")
def test_every_setting_of_a_model_and_a_tool_arrives_in_a_ray_task(tmp_path: Path) -> None:
    ca_bundle = fleet.write_ca_bundle(tmp_path)
    llm, tool = fleet.changed_chat_model(ca_bundle), fleet.changed_image_tool(ca_bundle)
    sent = [fleet.settings_of(llm), fleet.settings_of(tool)]
    got = run_on_ray(fleet.settings_in_worker, [(llm,), (tool,)])
    assert [settings for _, settings in got] == sent
    assert os.getpid() not in {pid for pid, _ in got}
    llm._websim_client().close()


@pytest.mark.usefixtures("ray_cluster")
def test_s6_runner_counts_answers_and_failures_per_task(
    ray_scenario: ModuleType, emulator: WebsimEmulator
) -> None:
    emulator.enqueue("chat", status=422, json={"error": "no"})  # one call fails for good
    result = ray_scenario.run_s6_ray(
        emulator.base_url,
        {"max_retries": 0},
        workers=2,
        calls=3,
        concurrency=3,
        prompt="ping",
        expected="Echo: ping",
        timeout=fleet.TIMEOUT,
    )
    assert (result["ok"], result["failed"]) == (5, 1)
    assert result["errors"] == {"WebsimAPIError": 1}
    summaries = result["summaries"]
    assert sorted(s["ok"] + s["failed"] for s in summaries) == [3, 3]
    assert result["wall"] == max(s["wall"] for s in summaries) > 0
    assert len(emulator.requests_for("chat")) == 6


@pytest.mark.usefixtures("ray_cluster")
def test_s6_runner_stops_tasks_that_outlive_its_timeout(
    ray_scenario: ModuleType, emulator: WebsimEmulator
) -> None:
    emulator.enqueue("chat", delay=60, times=None)
    with pytest.raises(TimeoutError, match="2 Ray tasks did not finish within 3 s"):
        ray_scenario.run_s6_ray(emulator.base_url, {}, workers=2, calls=1, timeout=3)
    # The cluster is still fit for work: the cancelled tasks gave their CPUs back.
    emulator.clear()
    result = ray_scenario.run_s6_ray(emulator.base_url, {}, workers=2, calls=1, timeout=60)
    assert (result["ok"], result["failed"]) == (2, 0)


def test_s6_summary_counts_errors_and_wrong_answers(ray_scenario: ModuleType) -> None:
    results = [
        AIMessage("Echo: ping", response_metadata={"rate_wait": 0.25}),
        AIMessage("something else"),
        TimeoutError("slow"),
    ]
    summary = ray_scenario.summarize(results, "Echo: ping")
    assert summary == {
        "ok": 1,
        "failed": 2,
        "errors": {"wrong answer": 1, "TimeoutError": 1},
        "rate_waits": [0.25],
    }
    assert ray_scenario.summarize(results[:2], None)["ok"] == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"workers": 0}, ValueError, "workers must be a whole number >= 1"),
        ({"calls": 2.5}, TypeError, "calls must be a whole number >= 1"),
        ({"concurrency": True}, TypeError, "concurrency must be a whole number >= 1"),
        ({"timeout": 0}, ValueError, "timeout must be a number of seconds > 0"),
        ({"timeout": "60"}, TypeError, "timeout must be a number of seconds > 0"),
        ({"contender_kwargs": None}, TypeError, "contender_kwargs must be a mapping"),
    ],
)
def test_s6_runner_refuses_bad_arguments_before_starting_anything(
    ray_scenario: ModuleType, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"base_url": "http://127.0.0.1:9", "contender_kwargs": {}}
    with pytest.raises(error, match=message):
        ray_scenario.run_s6_ray(**{**arguments, **kwargs})
