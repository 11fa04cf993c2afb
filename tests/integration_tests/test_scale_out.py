"""Models and tools made in a Ray driver work in Ray tasks, and the goodput benchmark's Ray
runner (S6) counts right, fails fast and cleans up.

One local Ray cluster (2 CPUs, loopback only, offline) serves the whole module and is shut
down after it.  Tasks that talk to the emulator reach it over loopback like any client.
In the parallel run a file's tests share one worker (see ``tests/conftest.py``), so the
cluster starts once.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_socket
import ray

from langchain_websim import ChatWebsim
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests import _fleet as fleet
from tests.integration_tests.conftest import LOOPBACK

pytestmark = pytest.mark.slow  # tens of seconds in all: a parallel run starts this file first

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
CPUS = 2


@pytest.fixture(scope="module")
def goodput_fleet() -> Iterator[ModuleType]:
    """``benchmarks/_goodput_fleet.py``, whose ``run_in_ray_tasks`` is the S6 runner."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("_goodput_fleet")


@pytest.fixture(scope="module")
def ray_cluster(goodput_fleet: ModuleType) -> Iterator[None]:
    import _ray_scenario  # on the path goodput_fleet set up

    # The driver's own sockets are held to loopback while the cluster starts and stops;
    # Ray's processes are kept there by the environment local_ray() sets.
    pytest_socket.socket_allow_hosts(LOOPBACK, allow_unix_socket=True)
    try:
        with _ray_scenario.local_ray(num_cpus=CPUS):
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


def _jobs(url: str, workers: int = 2, calls: int = 3) -> list[Any]:
    from _goodput_worker import Job

    return [Job("websim", url, calls, calls, rate=10.0, burst=10.0)] * workers


@pytest.mark.usefixtures("ray_cluster")
def test_s6_runner_counts_answers_and_failures_per_task(
    goodput_fleet: ModuleType, emulator: WebsimEmulator
) -> None:
    from _goodput_worker import ANSWER

    emulator.enqueue("chat", status=422, json={"error": "no"})  # one call fails for good
    emulator.enqueue("chat", json={"content": ANSWER}, times=None)
    result = goodput_fleet.run_in_ray_tasks(_jobs(emulator.base_url), fleet.TIMEOUT)
    summaries = result.summaries
    assert sorted((s["ok"], s["failed"]) for s in summaries) == [(2, 1), (3, 0)]
    assert [s["errors"] for s in summaries if s["failed"]] == [{"WebsimAPIError": 1}]
    # The fleet's wall time runs from go, before any task's first call, to the last answer.
    assert result.wall >= max(s["wall"] for s in summaries) > 0
    assert len(emulator.requests_for("chat")) == 6


@pytest.mark.usefixtures("ray_cluster")
def test_s6_runner_reports_a_task_that_fails_before_go_without_waiting(
    goodput_fleet: ModuleType, emulator: WebsimEmulator
) -> None:
    from _goodput_worker import ANSWER

    # ChatWebsim refuses the URL when the task builds it: the other task waits at the gate.
    good, bad = _jobs(emulator.base_url)[0], _jobs("ftp://127.0.0.1:9")[0]
    with pytest.raises(ray.exceptions.RayTaskError, match="base_url must be an absolute"):
        goodput_fleet.run_in_ray_tasks([good, bad], fleet.TIMEOUT)
    assert emulator.requests_for("chat") == []
    # The waiting task was cancelled and gave its CPU back: the cluster is fit for work.
    emulator.enqueue("chat", json={"content": ANSWER}, times=None)
    result = goodput_fleet.run_in_ray_tasks(_jobs(emulator.base_url, calls=1), fleet.TIMEOUT)
    assert [s["ok"] for s in result.summaries] == [1, 1]


@pytest.mark.usefixtures("ray_cluster")
def test_s6_runner_stops_tasks_that_outlive_its_timeout(
    goodput_fleet: ModuleType, emulator: WebsimEmulator
) -> None:
    from _goodput_worker import ANSWER

    emulator.enqueue("chat", delay=60, times=None)
    with pytest.raises(goodput_fleet.FleetTimeout, match="2 Ray task\\(s\\) not done"):
        goodput_fleet.run_in_ray_tasks(_jobs(emulator.base_url, calls=1), 1)
    # The cluster is still fit for work: the cancelled tasks gave their CPUs back.
    emulator.clear()
    emulator.enqueue("chat", json={"content": ANSWER}, times=None)
    result = goodput_fleet.run_in_ray_tasks(_jobs(emulator.base_url, calls=1), fleet.TIMEOUT)
    assert [(s["ok"], s["failed"]) for s in result.summaries] == [(1, 0), (1, 0)]


def test_one_process_can_start_one_local_cluster_after_another(tmp_path: Path) -> None:
    # In a fresh interpreter: the module's cluster above must not be the one reused.
    script = tmp_path / "two_clusters.py"
    script.write_text(
        "import ray, _ray_scenario\n"
        "for n in range(2):\n"
        "    with _ray_scenario.local_ray(num_cpus=1):\n"
        "        print(ray.get(ray.remote(lambda: 'task ran').remote()), flush=True)\n"
        "    assert not ray.is_initialized()\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RAY_"))}
    env["PYTHONPATH"] = os.pathsep.join((str(BENCHMARKS), str(BENCHMARKS.parent)))
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=fleet.TIMEOUT,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    # The second cluster used to fail to start: the driver kept the first one's token.
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["task ran", "task ran"]
