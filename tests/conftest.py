"""Test-wide settings: live tests only run with WEBSIM_LIVE=1.

The suite runs in parallel (``pytest -n 4``, pytest-xdist: four worker processes, each with
its own session), so every test must pass next to any other test running at the same time:

* Listen on port 0 (``WebsimEmulator()`` does) and read the port back; never a fixed port.
* Write under ``tmp_path``/``tmp_path_factory``, never at a fixed path or in the checkout.
* A test file runs in one worker (``pytest_xdist_make_scheduler`` below), so a module-scoped
  fixture (a Ray cluster) starts once, as in a serial run; a session-scoped one exists once
  per worker, not once per run.  Several slow tests in one file run one after another:
  split a file whose tests take long rather than let it hold up the run.
* A file whose tests take tens of seconds in all says so: ``pytestmark = pytest.mark.slow``;
  a parallel run then starts it first instead of last.
* Wait for an event (``emulator.wait_for_requests``, a barrier, ``asyncio.Event``), not for
  a time: four workers on two cores make every sleep's guess wrong.  Where waiting is the
  subject (a rate limit), keep the number of calls small: a test's time is mostly the time
  the limit makes it wait.
* Output printed by a test is not shown under ``-n`` even with ``-s``; run the test alone
  (``-n 0 -s``, or without ``-n``) to see it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests import _progress

LIVE = os.environ.get("WEBSIM_LIVE") == "1"


@pytest.hookimpl(optionalhook=True)  # an xdist hook: known only when xdist is installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``-n``, each test file goes to one worker, the files in the order collected.

    One worker per file keeps module fixtures to one start each; the order collected puts the
    slow integration files first instead of the files with the most tests (xdist's default).
    Set here rather than as ``--dist loadfile`` in ``addopts``: any ``--dist`` there would
    also switch pytest-benchmark's timings off in runs without ``-n``.  An explicit
    ``--dist`` other than ``load`` on the command line wins.
    """
    from xdist.scheduler import LoadFileScheduling

    if config.getoption("dist") != "load":
        return None
    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)


@pytest.hookimpl(trylast=True)  # after the terminal reporter exists
def pytest_configure(config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and _progress.wanted(config):
        config.pluginmanager.register(_progress.FileProgress(reporter), "file-progress")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):
        slow_first(items)
    if LIVE:
        return
    skip_live = pytest.mark.skip(reason="talks to the Websim service; set WEBSIM_LIVE=1 to run")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)


def slow_first(items: list[pytest.Item]) -> None:
    """In a parallel run, the files marked ``slow`` go out first (in an xdist worker, whose
    order is the order files are handed out): one started last would finish last, alone."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(autouse=True)
def _isolated_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own WEBSIM_BASE_URL must not leak into tests that check the default.
    if not LIVE:
        monkeypatch.delenv("WEBSIM_BASE_URL", raising=False)
