"""The goodput benchmark's printout: one Markdown table per scenario, then its targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from _goodput_worker import CONTENDERS

MAX_LIMITED_SHARE = 0.20  # 429s per call for ChatWebsim's defaults
MAX_OVER_ORACLE = 1.10


@dataclass
class Row:
    """One contender in one scenario, every worker summed up."""

    contender: str
    calls: int
    ok: int
    failed: int
    requests: int
    limited: int
    wall: float | None
    """Seconds from go to the last worker's answer; None if the run timed out."""
    ideal: float
    errors: dict[str, int] = field(default_factory=dict)
    rate_waits: list[float] = field(default_factory=list)
    by_route: dict[str, int] = field(default_factory=dict)
    """Requests the server saw on each path."""

    @property
    def label(self) -> str:
        return CONTENDERS[self.contender]

    def to_json(self) -> dict[str, Any]:
        waits = self.rate_waits
        return {
            "contender": self.contender,
            "label": self.label,
            "calls": self.calls,
            "ok": self.ok,
            "failed": self.failed,
            "requests": self.requests,
            "limited": self.limited,
            "wall": self.wall,
            "ideal": self.ideal,
            "errors": self.errors,
            "requests_by_route": self.by_route,
            "rate_wait": (
                {"calls": len(waits), "mean": statistics.fmean(waits), "max": max(waits)}
                if waits
                else None
            ),
        }


@dataclass(frozen=True)
class Target:
    name: str
    value: str
    goal: str
    ok: bool


COLUMNS = (
    "contender",
    "calls ok / failed",
    "requests",
    "429s",
    "429s % of calls",
    "wall s",
    "ideal s",
    "wall / ideal",
    "wall / oracle",
    "goodput calls/s",
    "rate wait s (mean / max)",
)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def table(rows: list[Row]) -> list[str]:
    oracle = next((r.wall for r in rows if r.contender == "oracle"), None)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in rows:
        wall = "timeout" if r.wall is None else f"{r.wall:.1f}"
        waits = (
            f"{statistics.fmean(r.rate_waits):.2f} / {max(r.rate_waits):.2f}"
            if r.rate_waits
            else "-"
        )
        cells = [
            r.label,
            f"{r.ok} / {r.failed}",
            str(r.requests),
            str(r.limited),
            f"{100 * r.limited / r.calls:.0f} %",
            wall,
            f"{r.ideal:.1f}",
            _ratio(r.wall, r.ideal),
            _ratio(r.wall, oracle),
            "-" if r.wall is None else f"{r.ok / r.wall:.1f}",
            waits,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _time_target(name: str, row: Row, base: float, limit: float) -> Target:
    """``row.wall / base`` against ``limit``.  A run with failed calls meets no time target:
    its wall time is short because calls gave up, not because they got through."""
    if row.wall is None:
        return Target(name, "timeout", f"<= {limit:.1f}", False)
    ratio = row.wall / base
    value = f"{ratio:.2f}" + (f" with {row.failed} calls failed" if row.failed else "")
    return Target(
        name, value, f"<= {limit:.1f}, every call answered", not row.failed and ratio <= limit
    )


def targets(name: str, rows: list[Row], wall_target: float) -> list[Target]:
    """ChatWebsim's defaults against the goals; none if that contender did not run."""
    row = next((r for r in rows if r.contender == "websim"), None)
    if row is None:
        return []
    share = row.limited / row.calls
    found = [
        Target(f"{name} failed calls", str(row.failed), "0", row.failed == 0),
        Target(
            f"{name} 429s",
            f"{100 * share:.1f} % of calls",
            f"<= {100 * MAX_LIMITED_SHARE:.0f} %",
            # A run cut short meets no target, however few 429s it saw.
            row.wall is not None and share <= MAX_LIMITED_SHARE,
        ),
        _time_target(f"{name} wall / ideal", row, row.ideal, wall_target),
    ]
    oracle = next((r for r in rows if r.contender == "oracle"), None)
    if oracle is not None and oracle.wall is not None:
        found.append(_time_target(f"{name} wall / oracle", row, oracle.wall, MAX_OVER_ORACLE))
    return found


def print_scenario(title: str, rows: list[Row], found: list[Target]) -> None:
    print(f"\n{title}\n")
    print("\n".join(table(rows)))
    for r in rows:
        if r.errors:
            kinds = ", ".join(f"{n} x {kind}" for kind, n in sorted(r.errors.items()))
            print(f"  failures, {r.label}: {kinds}")
    if found:
        print("targets for ChatWebsim defaults:")
    for t in found:
        print(f"  {'PASS' if t.ok else 'MISS'}  {t.name} = {t.value}  (target {t.goal})")
