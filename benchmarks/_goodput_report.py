"""The goodput benchmark's printout: one Markdown table per scenario, then its targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from _goodput_worker import CONTENDERS

if TYPE_CHECKING:
    from goodput import Scenario

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
    ideal: float | None
    """None: the server had no limit."""
    errors: dict[str, int] = field(default_factory=dict)
    rate_waits: list[float] = field(default_factory=list)
    by_route: dict[str, int] = field(default_factory=dict)
    """Requests the server saw on each path."""
    timeline: list[tuple[float, int, float]] = field(default_factory=list)
    """(arrived, status, answered) of every request the server saw, in seconds after the
    first one."""
    walls: list[float | None] = field(default_factory=list)
    """Every run's wall time when the contender ran more than once (this row is the median)."""

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
            "walls": self.walls,
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
    "wall / off",
)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def table(rows: list[Row]) -> list[str]:
    oracle = next((r.wall for r in rows if r.contender == "oracle"), None)
    off = next((r.wall for r in rows if r.contender == "websim-off"), None)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in rows:
        wall = "timeout" if r.wall is None else f"{r.wall:.2f}"
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
            "-" if r.ideal is None else f"{r.ideal:.1f}",
            _ratio(r.wall, r.ideal),
            _ratio(r.wall, oracle),
            "-" if r.wall is None else f"{r.ok / r.wall:.1f}",
            waits,
            _ratio(r.wall, off),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _time_target(name: str, row: Row, base: float, limit: float) -> Target:
    """``row.wall / base`` against ``limit``.  A run with failed calls meets no time target:
    its wall time is short because calls gave up, not because they got through."""
    if row.wall is None:
        return Target(name, "timeout", f"<= {limit:g}", False)
    ratio = row.wall / base
    value = f"{ratio:.2f}" + (f" with {row.failed} calls failed" if row.failed else "")
    return Target(
        name, value, f"<= {limit:g}, every call answered", not row.failed and ratio <= limit
    )


def targets(scenario: Scenario, rows: list[Row]) -> list[Target]:
    """ChatWebsim's defaults against the scenario's goals; none if that contender did not
    run (or the run its time goal is measured against did not)."""
    name = scenario.name
    row = next((r for r in rows if r.contender == "websim"), None)
    if row is None:
        return []
    found = [Target(f"{name} failed calls", str(row.failed), "0", row.failed == 0)]
    if scenario.limited_target is not None:
        share = row.limited / row.calls
        found.append(
            Target(
                f"{name} 429s",
                f"{100 * share:.1f} % of calls",
                f"<= {100 * scenario.limited_target:.0f} %",
                # A run cut short meets no target, however few 429s it saw.
                row.wall is not None and share <= scenario.limited_target,
            )
        )
    by = {r.contender: r for r in rows}
    off, oracle = by.get("websim-off"), by.get("oracle")
    if scenario.goal == "ideal" and row.ideal is not None:
        found.append(_time_target(f"{name} wall / ideal", row, row.ideal, scenario.wall_target))
    if scenario.goal == "off" and off is not None and off.wall is not None:
        found.append(_time_target(f"{name} wall / off", row, off.wall, scenario.wall_target))
    if scenario.goal == "noise" and off is not None and off.wall is not None:
        # "at most k x off + 1 s", as a ratio against that bound
        bound = scenario.wall_target * off.wall + 1.0
        found.append(
            _time_target(f"{name} wall / ({scenario.wall_target:g} x off + 1 s)", row, bound, 1.0)
        )
    if scenario.goal == "ideal" and oracle is not None and oracle.wall is not None:
        found.append(_time_target(f"{name} wall / oracle", row, oracle.wall, MAX_OVER_ORACLE))
    return found


def print_scenario(title: str, rows: list[Row], found: list[Target]) -> None:
    print(f"\n{title}\n")
    print("\n".join(table(rows)))
    for r in rows:
        if len(r.walls) > 1:
            walls = ", ".join("timeout" if w is None else f"{w:.2f}" for w in r.walls)
            print(f"  wall times, {r.label}: {walls} s (the median run is shown)")
        if r.errors:
            kinds = ", ".join(f"{n} x {kind}" for kind, n in sorted(r.errors.items()))
            print(f"  failures, {r.label}: {kinds}")
    if found:
        print("targets for ChatWebsim defaults:")
    for t in found:
        print(f"  {'PASS' if t.ok else 'MISS'}  {t.name} = {t.value}  (target {t.goal})")
