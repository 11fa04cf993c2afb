"""The README's Python snippets run against the emulator, and its two commands are real."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import WebsimClient
from langchain_websim.testing import WebsimEmulator
from tests.png import read_png

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_python_snippets_run_against_the_emulator(
    emulator: WebsimEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```$", README, flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 7
    monkeypatch.setenv("WEBSIM_BASE_URL", emulator.base_url)
    monkeypatch.chdir(tmp_path)  # the client snippet saves an image in the current directory
    try:
        for number, block in enumerate(blocks, 1):
            namespace: dict[str, Any] = {"__name__": f"readme_{number}"}
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
    finally:
        WebsimClient.close_shared(emulator.base_url)
    out = capsys.readouterr().out
    assert "Echo: What is a lighthouse?" in out
    assert "Echo: What is in this picture? [1 image]" in out
    assert "Echo: A haiku about the sea" in out
    assert "['Echo: A haiku about rain', 'Echo: A haiku about snow']" in out
    assert out.count(emulator.base_url + "/images/") >= 3
    assert "Echo: Hello again" in out
    assert "2 done, 0 failed, 0 left" in out  # the batch snippet
    prompts = [r.body["prompt"] for r in emulator.requests_for("image")]
    assert prompts == ["a lighthouse at dusk, oil painting", "a red fox", "a lighthouse at dusk"]
    assert emulator.requests_for("image")[2].body["seed"] == 7
    saved = read_png((tmp_path / "lighthouse.png").read_bytes())
    assert (saved.width, saved.height) == (1024, 576)
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


def test_readme_command_line_section_shows_the_image_options() -> None:
    section = README.split("## Command line", 1)[1].split("\n## ", 1)[0]
    for option in ("--output", "--output-dir", "--seed", "--transparent", "--width", "--height"):
        assert option in section, option
    assert "--image-input" in section and "python -m langchain_websim.testing" in section
    commands = re.findall(r"^websim [a-z]+ .*$", section, flags=re.MULTILINE)
    assert len(commands) == 10
    # Every example parses with the real parser.
    from langchain_websim.cli import build_parser

    for command in commands:
        build_parser().parse_args(shlex.split(command.split("  #")[0])[1:])
