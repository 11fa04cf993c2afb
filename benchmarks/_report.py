"""The benchmark's printout: the machine, the medians, and each target as PASS or MISS."""

from __future__ import annotations

import os
import platform
import statistics
from importlib import metadata
from typing import Any

PROTOCOLS = ("HTTP", "HTTPS")
LIBRARIES = ("langchain-core", "aiohttp", "langchain-openai", "openai", "pydantic")


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            models = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    libs = ", ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES)
    return (
        f"machine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()} "
        f"({platform.system()}); {libs}"
    )


def _cell(samples: list[float]) -> str:
    med = statistics.median(samples)
    if len(samples) == 1:
        return f"{med:.3f} s"
    return f"{med:.3f} s ({min(samples):.3f}-{max(samples):.3f})"


def report(
    config: Any,
    times: dict[str, list[float]],
    cpu: dict[str, list[float]],
    memory: dict[str, float],
    imports: dict[str, float],
) -> list[bool]:
    """Print everything; return one verdict per target line."""
    n, conc, seq = config.calls, config.concurrency, config.sequential
    print(machine())
    print(
        f"{n} calls, {conc} concurrent; {seq} sequential calls; median (min-max) of "
        f"{config.rounds} interleaved round(s)\n"
    )
    rows = [
        ("raw aiohttp, one session", "raw"),
        ("LangChain layer (no network)", "langchain"),
        ("floor: raw aiohttp in a LangChain model", "floor"),
        ("ChatWebsim.ainvoke", "websim"),
        ("ChatOpenAI.ainvoke", "openai"),
        (f"{seq} x ChatWebsim.invoke, sequential", "sync"),
        (f"{seq} x ChatWebsim.ainvoke, sequential", "async"),
        ("ChatWebsim.ainvoke, a new client per round", "fresh websim"),
        ("floor, a new session per round", "fresh floor"),
    ]
    print(f"{'figure':42}{'HTTP':>26}{'HTTPS':>26}")
    for label, key in rows:
        if key == "langchain":
            cells = [_cell(times[key]), "(no network)"]
        else:
            cells = [_cell(times[f"{key} {p}"]) for p in PROTOCOLS]
        print(f"{label:42}{cells[0]:>26}{cells[1]:>26}")
    calls = int(memory["calls"])
    print(
        f"\n{calls} concurrent ChatWebsim.ainvoke (fresh process): peak RSS "
        f"{memory['peak_mb']:.1f} MB (VmHWM {memory['vm_hwm_mb']:.1f} MB; "
        f"{memory['before_mb']:.1f} MB before the calls; {memory['seconds']:.2f} s)"
    )
    print(
        f"import time, median of {config.import_runs} fresh process(es): langchain_core chat "
        f"models + aiohttp {imports['baseline_ms']:.1f} ms, then `import langchain_websim` "
        f"+{imports['package_ms']:.1f} ms, `from langchain_websim import ChatWebsim` "
        f"+{imports['chat_model_ms']:.1f} ms"
    )

    def med(key: str) -> float:
        return statistics.median(times[key])

    print("\ntargets")
    verdicts: list[bool] = []

    def target(name: str, value: str, goal: str, ok: bool) -> None:
        verdicts.append(ok)
        print(f"  {'PASS' if ok else 'MISS'}  {name} = {value}  (target {goal})")

    for p in PROTOCOLS:
        ratio = med(f"websim {p}") / (med("langchain") + med(f"raw {p}"))
        target(
            f"[1] {p} ChatWebsim / (LangChain layer + raw aiohttp)",
            f"{ratio:.3f}",
            "<= 1.10",
            ratio <= 1.10,
        )
    for p in PROTOCOLS:
        speedup = med(f"openai {p}") / med(f"websim {p}")
        target(f"[2] {p} ChatOpenAI / ChatWebsim", f"{speedup:.2f}x", ">= 6x", speedup >= 6)
    for p in PROTOCOLS:
        ratio = med(f"sync {p}") / med(f"async {p}")
        target(
            f"[3] {p} sync invoke / ainvoke, sequential", f"{ratio:.3f}", "<= 1.15", ratio <= 1.15
        )
    for p in PROTOCOLS:
        ratio = paired(times[f"fresh websim {p}"], times[f"fresh floor {p}"])
        target(
            f"[6] {p} ChatWebsim / floor, a new client per round",
            f"{ratio:.3f}",
            "<= 1.05",
            ratio <= 1.05,
        )
    peak = memory["peak_mb"]
    target(f"[4] peak RSS, {calls} concurrent ainvoke", f"{peak:.1f} MB", "< 300 MB", peak < 300)
    for label, key in (
        ("import langchain_websim", "package_ms"),
        ("from langchain_websim import ChatWebsim", "chat_model_ms"),
    ):
        ms = imports[key]
        target(f"[5] {label}, added import time", f"{ms:.1f} ms", "<= 50 ms", ms <= 50)
    print(f"\n{sum(verdicts)} of {len(verdicts)} targets met")

    print("\nfor reference (not targets)")
    for p in PROTOCOLS:
        floor = med(f"floor {p}")
        print(
            f"  {p} floor / (LangChain layer + raw aiohttp) = "
            f"{floor / (med('langchain') + med(f'raw {p}')):.3f}; "
            f"ChatWebsim / floor = {med(f'websim {p}') / floor:.3f}"
        )

    def cpu_med(key: str) -> float:
        return statistics.median(cpu[key])

    # The client's CPU time is what other work on the machine disturbs least.
    print("  the same ratios on the client process's CPU time (medians):")
    for p in PROTOCOLS:
        both = cpu_med("langchain") + cpu_med(f"raw {p}")
        print(
            f"    {p} ChatWebsim / (LangChain layer + raw aiohttp) = "
            f"{cpu_med(f'websim {p}') / both:.3f}; floor / (...) = "
            f"{cpu_med(f'floor {p}') / both:.3f}; ChatOpenAI / ChatWebsim = "
            f"{cpu_med(f'openai {p}') / cpu_med(f'websim {p}'):.2f}x; sync / async = "
            f"{cpu_med(f'sync {p}') / cpu_med(f'async {p}'):.3f}"
        )
    return verdicts


def paired(samples: list[float], baseline: list[float]) -> float:
    """The median of each round's ratio to the same round's baseline.

    A new client per round makes a round's time swing with the machine (the floor itself
    took 0.56-0.70 s within one run); both contenders of a round ran within a second or
    two of each other, so their ratio carries less of that swing than a ratio of medians
    taken from different rounds."""
    return statistics.median(a / b for a, b in zip(samples, baseline, strict=True))


def fresh_report(config: Any, times: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """``--fresh``: a new client (ChatWebsim) or session (the floor) per round, side by side."""
    print(machine())
    print(
        f"{config.calls} calls, {config.concurrency} concurrent, a new client per round; "
        f"median (min-max) of {config.rounds} interleaved round(s); ratios are the median "
        "of each round's ratio\n"
    )
    for p in PROTOCOLS:
        websim, floor = times[f"fresh websim {p}"], times[f"fresh floor {p}"]
        wall = paired(websim, floor)
        busy = paired(cpu[f"fresh websim {p}"], cpu[f"fresh floor {p}"])
        warm = paired(times[f"websim {p}"], times[f"floor {p}"])
        warm_cpu = paired(cpu[f"websim {p}"], cpu[f"floor {p}"])
        of_medians = statistics.median(websim) / statistics.median(floor)
        print(f"{p}: ChatWebsim {_cell(websim)}, floor {_cell(floor)}")
        verdict = "PASS" if wall <= 1.05 else "MISS"
        print(
            f"  {verdict}  [6] ChatWebsim / floor = {wall:.3f} (target <= 1.05); CPU "
            f"{busy:.3f}; ratio of the medians {of_medians:.3f}"
        )
        print(
            f"  the same with one warmed client and session for every round: {warm:.3f}; "
            f"CPU {warm_cpu:.3f}"
        )
