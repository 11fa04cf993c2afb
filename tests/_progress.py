"""One line per test file as it finishes, for the parallel run (``pytest -n 4``).

With pytest-xdist the terminal shows a dot per passed test and no file names, so a long run
says nothing about where it is.  This plugin drops the letters of passed, skipped and
xfailed tests (failures, errors and xpasses keep theirs) and prints, when the last test of a
file is done::

    tests/integration_tests/test_workers.py  9 passed  34.1 s                     [ 45%]

where the seconds are the sum of the file's test durations (it ran in one worker) and the
percentage is how much of the whole run is done.  Runs without ``-n`` or with ``-v`` keep
pytest's own output.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pytest


def wanted(config: pytest.Config) -> bool:
    """In the controller of a parallel run at normal verbosity."""
    parallel = bool(getattr(config.option, "numprocesses", None))
    return parallel and not hasattr(config, "workerinput") and config.option.verbose <= 0


class FileProgress:
    def __init__(self, reporter: Any) -> None:
        self._reporter = reporter
        self._left: Counter[str] = Counter()
        self._total = 0
        self._done = 0
        self._outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._seconds: Counter[str] = Counter()

    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        # Every worker collects the same tests; the first list is the one to count.
        if not self._total:
            self._left.update(_file_of(nodeid) for nodeid in ids)
            self._total = len(ids)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        # Counted in the summary as ever, without a letter: the file's line counts them.
        outcome = _outcome(report)
        if outcome in _QUIET:
            return outcome, "", _QUIET[outcome]
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = _file_of(report.nodeid)
        self._seconds[path] += report.duration
        outcome = _outcome(report)
        if outcome is not None:
            self._outcomes[path][outcome] += 1
        if report.when != "teardown" or path not in self._left:
            return
        self._done += 1
        self._left[path] -= 1
        if self._left[path] == 0:
            del self._left[path]
            self._write(path)

    def _write(self, path: str) -> None:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in self._outcomes.pop(path).items())
        left = f"{path}  {counts}  {self._seconds.pop(path):.1f} s"
        right = f"[{100 * self._done // max(self._total, 1):3d}%]"
        writer = self._reporter.config.get_terminal_writer()
        if writer.width_of_current_line:  # after the letter of a failure or a skip
            writer.line()
        width = max(writer.fullwidth - len(left) - 1, len(right))
        writer.line(f"{left} {right:>{width}}")


# The outcomes shown only in the file's line, with the word ``-v`` would print.
_QUIET = {"passed": "PASSED", "skipped": "SKIPPED", "xfailed": "XFAIL"}


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _outcome(report: pytest.TestReport) -> str | None:
    """The word the summary line uses for this report, or None if it decides nothing."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "skipped"
    return "passed" if report.when == "call" else None
