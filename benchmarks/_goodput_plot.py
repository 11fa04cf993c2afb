"""The goodput benchmark's pictures: per scenario, what each contender sent and got, over time.

One PNG per scenario, one panel per contender, from the server's own record of every
request (when it arrived, its status, when it was answered): requests per second as the
server received them, 200s per second as it answered them (a model's latency later), each
429 marked, and the server's limit as a line.  matplotlib is the benchmark extra's; it is
imported only when pictures are asked for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from _goodput_report import Row

if TYPE_CHECKING:
    from goodput import Scenario

BINS_PER_RUN = 60  # the rate is counted over 1/60 of the run's span, at least 10 ms


def per_second(times: list[float], span: float, width: float) -> tuple[list[float], list[float]]:
    """Counts of ``times`` in bins of ``width`` seconds over [0, span], as rates per second."""
    bins = max(1, math.ceil(span / width))
    counts = [0] * bins
    for t in times:
        counts[min(bins - 1, int(t / width))] += 1
    return [(i + 0.5) * width for i in range(bins)], [n / width for n in counts]


def limit_line(scenario: Scenario, span: float) -> tuple[list[float], list[float]] | None:
    """The server's rate over time as a step line; None without a limit."""
    if scenario.rate is None:
        return None
    xs, ys, rate = [0.0], [scenario.rate], scenario.rate
    for at, new in scenario.schedule:
        if at < span:
            xs += [at, at]
            ys += [rate, new]
            rate = new
    return [*xs, span], [*ys, rate]


def draw(scenario: Scenario, rows: list[Row], directory: str) -> Path:
    """Draw ``rows`` (one panel each) to ``directory/<scenario name>.png``; return the path."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    span = max((done for r in rows for _, _, done in r.timeline), default=1.0) or 1.0
    width = max(0.01, span / BINS_PER_RUN)
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.4 * len(rows)), sharex=True, squeeze=False)
    for ax, row in zip(axes[:, 0], rows, strict=True):
        sent = [t for t, _, _ in row.timeline]
        answered = [done for _, status, done in row.timeline if status == 200]
        refused = [t for t, status, _ in row.timeline if status == 429]
        xs, sent_rate = per_second(sent, span, width)
        _, ok_rate = per_second(answered, span, width)
        ax.step(xs, sent_rate, where="mid", label="requests/s received", color="tab:blue")
        ax.step(xs, ok_rate, where="mid", label="200s/s answered", color="tab:green")
        line = limit_line(scenario, span)
        if line is not None:
            ax.plot(*line, linestyle="--", color="black", label="server limit")
        if refused:
            ax.plot(
                refused,
                [0] * len(refused),
                "|",
                color="tab:red",
                markersize=12,
                label=f"429 ({len(refused)})",
            )
        wall = "timeout" if row.wall is None else f"{row.wall:.2f} s"
        ax.set_title(f"{row.label}: {row.ok} of {row.calls} answered, wall {wall}", fontsize=9)
        ax.set_ylabel("per second")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("seconds after the server's first request")
    fig.suptitle(scenario.title(), fontsize=9)
    fig.tight_layout()
    path = out / f"{scenario.name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
