"""The Python example on the batch docs page runs as written, against the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from langchain_websim.testing import WebsimEmulator

DOC = Path(__file__).resolve().parents[2] / "docs" / "batch.md"


def test_the_docs_page_example_runs(
    emulator: WebsimEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    text = DOC.read_text(encoding="utf-8")
    [block] = re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    monkeypatch.setenv("WEBSIM_BASE_URL", emulator.base_url)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "batch_docs"}
    exec(compile(block, f"{DOC.name} python block", "exec"), namespace)
    out = capsys.readouterr().out
    assert "2 done, 0 failed, 0 left" in out
    assert "['1.png', 'heron.png']" in out
    answers = tmp_path.joinpath("answers.jsonl").read_text().splitlines()[1:]
    assert {json.loads(line)["content"] for line in answers} == {
        "Echo: Describe a blue ceramic mug.",
        "Echo: Describe a teapot.",
    }
    assert all(
        r.body["messages"][0] == {"role": "system", "content": "You write product copy."}
        for r in emulator.requests_for("chat")
    )


def test_the_options_table_names_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from langchain_websim.cli import build_parser

    text = DOC.read_text(encoding="utf-8")
    for kind in ("chat", "image"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["batch", kind, "--help"])
        usage = capsys.readouterr().out
        for flag in set(re.findall(r"\[(--[a-z-]+)", usage)):
            assert f"`{flag}" in text, flag
