"""The README's Python snippets run against the emulator, and its two commands are real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from langchain_websim._client import _SHARED
from langchain_websim.testing import WebsimEmulator

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_python_snippets_run_against_the_emulator(
    emulator: WebsimEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```$", README, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 6
    monkeypatch.setenv("WEBSIM_BASE_URL", emulator.base_url)
    try:
        for number, block in enumerate(blocks, 1):
            namespace: dict[str, Any] = {"__name__": f"readme_{number}"}
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
    finally:
        for client in [c for key, c in _SHARED.items() if key[0] == emulator.base_url]:
            client.close()
    out = capsys.readouterr().out
    assert "Echo: What is a lighthouse?" in out
    assert "Echo: What is in this picture? [1 image]" in out
    assert "Echo: A haiku about the sea" in out
    assert "['Echo: A haiku about rain', 'Echo: A haiku about snow']" in out
    assert out.count(emulator.base_url + "/images/") >= 3
    assert "Echo: Hello again" in out
    prompts = [r.body["prompt"] for r in emulator.requests_for("image")]
    assert prompts == ["a lighthouse at dusk, oil painting", "a red fox", "a lighthouse at dusk"]
    # the agent snippet ran: its request carried the tool instruction
    systems = [
        m["content"]
        for r in emulator.requests_for("chat")
        for m in r.body["messages"]
        if m["role"] == "system"
    ]
    assert any("websim_image_generation" in s for s in systems)


def test_readme_commands_are_the_ones_ci_runs() -> None:
    commands = re.findall(r"^```bash\n(python3 -m venv .*?)\n```$", README, flags=re.MULTILINE)
    assert len(commands) == 2
    demo, tests = commands
    assert "websim demo --emulator" in demo
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
