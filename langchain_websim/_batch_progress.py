"""How a running batch shows its progress: a bar on a terminal, status lines elsewhere.

The bar is ``tqdm``'s: small, no dependencies of its own, and it already does what a bar
needs (terminal width, redraw throttling, rate and ETA smoothing, logging that does not
tear the bar).  Where stderr is not a terminal (a log file, CI, a notebook's stream) a bar
would write a control sequence per redraw, so a plain line is printed every few seconds
instead.  Both show done / total, failed, calls per second, the rate Websim currently
allows (the client's learned rate, or "learning" until a 429 has taught it one) and ETA.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Literal, TextIO, TypeAlias

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

__all__ = ["Progress", "ProgressMode", "make_progress"]

ProgressMode: TypeAlias = Literal["auto", "bar", "lines", "off"]
STATUS_EVERY = 5.0
"""Seconds between two status lines when stderr is not a terminal."""

RateProbe = Callable[[], str]
"""Returns the rate Websim currently allows, in words ("10.0/s", "learning", "off")."""


class Progress:
    """Counts finished calls; subclasses show them.  This base shows nothing."""

    def __init__(self, total: int, done: int, failed: int, allowed: RateProbe) -> None:
        self.total = total
        self.done = done
        self.failed = failed
        self._allowed = allowed
        self._started = time.monotonic()
        self._finished_here = 0

    def advance(self, ok: bool) -> None:
        """One call's line is in the journal."""
        self._finished_here += 1
        if ok:
            self.done += 1
        else:
            self.failed += 1

    def tick(self) -> None:
        """Called about once a second, whether or not calls finished."""

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        """Show progress for the duration of the block."""
        yield

    def calls_per_second(self) -> float:
        elapsed = time.monotonic() - self._started
        return self._finished_here / elapsed if elapsed > 0 else 0.0

    def allowed(self) -> str:
        return self._allowed()


class _Bar(tqdm):  # type: ignore[type-arg]
    monitor_interval = 0  # no monitor thread: the runner ticks the bar itself


class BarProgress(Progress):
    """A ``tqdm`` bar on stderr."""

    def __init__(self, total: int, done: int, failed: int, allowed: RateProbe, out: TextIO) -> None:
        super().__init__(total, done, failed, allowed)
        self._out = out
        self._bar: tqdm | None = None  # type: ignore[type-arg]

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        bar = _Bar(
            total=self.total,
            initial=self.done + self.failed,
            file=self._out,
            unit="call",
            dynamic_ncols=True,
            smoothing=0.1,
            mininterval=0.2,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
            "{rate_fmt}{postfix}]",
        )
        self._bar = bar
        self._postfix()
        try:
            # Retry warnings go above the bar instead of through it.
            with logging_redirect_tqdm([logging.getLogger("langchain_websim")], _Bar):
                yield
        finally:
            self._postfix()
            bar.close()
            self._bar = None

    def advance(self, ok: bool) -> None:
        super().advance(ok)
        if self._bar is not None:
            if not ok:
                self._postfix()
            self._bar.update(1)

    def tick(self) -> None:
        self._postfix()

    def _postfix(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(
                f"failed {self.failed}, Websim allows {self.allowed()}", refresh=True
            )


class LinesProgress(Progress):
    """A status line every ``every`` seconds, for logs and pipes."""

    def __init__(
        self,
        total: int,
        done: int,
        failed: int,
        allowed: RateProbe,
        out: TextIO,
        every: float | None = None,
    ) -> None:
        super().__init__(total, done, failed, allowed)
        self._out = out
        self._every = STATUS_EVERY if every is None else every
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last >= self._every:
            self._print()

    def _print(self) -> None:
        self._last = time.monotonic()
        rate = self.calls_per_second()
        left = self.total - self.done - self.failed
        eta = f"{left / rate:.0f} s" if rate > 0 else "unknown"
        print(
            f"batch: {self.done + self.failed}/{self.total} done ({self.failed} failed), "
            f"{rate:.1f} calls/s, Websim allows {self.allowed()}, ETA {eta}",
            file=self._out,
            flush=True,
        )


def make_progress(
    mode: ProgressMode, total: int, done: int, failed: int, allowed: RateProbe
) -> Progress:
    """``auto``: a bar when stderr is a terminal, status lines otherwise."""
    if mode not in ("auto", "bar", "lines", "off"):
        raise ValueError(f"progress must be 'auto', 'bar', 'lines' or 'off', got {mode!r}")
    out = sys.stderr
    if mode == "auto":
        mode = "bar" if out.isatty() else "lines"
    if mode == "bar":
        return BarProgress(total, done, failed, allowed, out)
    if mode == "lines":
        return LinesProgress(total, done, failed, allowed, out)
    return Progress(total, done, failed, allowed)
