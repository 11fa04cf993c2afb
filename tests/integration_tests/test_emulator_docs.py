"""Every Python example on the emulator's docs page runs as written."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from langchain_websim.testing import WebsimEmulator

DOC = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"


def test_docs_page_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 10
    namespace: dict[str, Any] = {"__name__": "emulator_docs"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} python block {number}", "exec"), namespace)
    # The pytest example defines a test; run it the way pytest would, with a fresh emulator.
    with WebsimEmulator() as emu:
        namespace["test_my_app_survives_a_rate_limit"](emu)
    out = capsys.readouterr().out
    assert "/images/" in out
    assert "timed out, as scripted" in out
    assert re.search(r"\d+ faults retried in \d+ requests", out)
    assert "WebsimResponseError" in out
    assert re.search(r"[1-9]\d* of \d+ requests were rate limited", out)
    # Every option of enqueue() is documented in the options table.
    for option in inspect.signature(WebsimEmulator.enqueue).parameters:
        if option not in ("self", "endpoint"):
            assert f"| `{option}` |" in text, option
    # And so is every option of set_rate_limit(), in the rate-limit table.
    for option in inspect.signature(WebsimEmulator.set_rate_limit).parameters:
        if option != "self":
            assert f"| `{option}` |" in text, option
