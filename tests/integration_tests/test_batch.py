"""Batch jobs against the emulator through the Python entry point: one journal line per
call, resume, failures and retries, images on disk, progress."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import BatchInputError, WebsimClient, arun_batch
from langchain_websim.testing import WebsimEmulator
from tests.png import Png, read_png


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def png_at(path: str | Path) -> Png:
    return read_png(Path(path).read_bytes())


def entries(out: Path) -> list[dict[str, Any]]:
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"websim_batch_journal": 1, "kind": json.loads(lines[0])["kind"]}
    return [json.loads(line) for line in lines[1:]]


async def test_a_chat_batch_journals_every_answer(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {"id": "lighthouse", "prompt": "What is a lighthouse?"},
        {"prompt": "Second question", "system": "Be brief."},
        {
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "then"},
            ]
        },
        {"prompt": "cut here STOP please", "stop": ["STOP"]},
    )
    out = tmp_path / "out.jsonl"
    summary = await arun_batch(
        "chat", source, out, client=make_client(), options={"system": "Default system."}
    )
    assert (summary.total, summary.done, summary.failed, summary.left) == (4, 4, 0, 0)
    assert summary.finished_this_run == 4 and not summary.interrupted
    by_id = {entry["id"]: entry for entry in entries(out)}
    assert by_id["lighthouse"]["content"] == "Echo: What is a lighthouse?"
    assert by_id["2"]["content"] == "Echo: Second question"
    assert by_id["3"]["content"] == "Echo: then"
    assert by_id["4"]["content"] == "Echo: cut here "  # cut client-side, as given
    for entry in by_id.values():
        assert entry["ok"] is True
        assert entry["attempts"] == 1
        assert entry["rate_wait"] >= 0 and entry["elapsed"] > 0
    systems = {
        request.body["messages"][-1]["content"]: request.body["messages"][0]["content"]
        for request in emulator.requests_for("chat")
    }
    assert systems["Second question"] == "Be brief."  # the line's own wins
    assert systems["What is a lighthouse?"] == "Default system."


async def test_a_rerun_sends_nothing_for_ids_already_answered(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", *({"prompt": f"q{i}"} for i in range(5)))
    out = tmp_path / "out.jsonl"
    await arun_batch("chat", source, out, client=make_client())
    assert len(emulator.requests) == 5
    # A new line appended to the input is the only call made on the rerun.
    with source.open("a") as more:
        more.write(json.dumps({"prompt": "q5"}) + "\n")
    summary = await arun_batch("chat", source, out, client=make_client())
    assert (summary.done, summary.finished_this_run) == (6, 1)
    assert [r.body["messages"][-1]["content"] for r in emulator.requests[5:]] == ["q5"]
    assert len(entries(out)) == 6


async def test_failures_are_lines_and_retry_failed_redoes_them(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", *({"prompt": f"q{i}"} for i in range(4)))
    out = tmp_path / "out.jsonl"
    emulator.enqueue("chat", status=400, json={"error": "bad request"}, times=2)
    first = await arun_batch("chat", source, out, client=make_client(max_retries=0), concurrency=1)
    assert (first.done, first.failed, first.left) == (2, 2, 0)
    failed = [entry for entry in entries(out) if not entry["ok"]]
    assert [entry["id"] for entry in failed] == ["1", "2"]
    assert failed[0]["error"]["type"] == "WebsimAPIError"
    assert failed[0]["error"]["status"] == 400
    assert "HTTP 400" in failed[0]["error"]["message"]

    again = await arun_batch("chat", source, out, client=make_client())
    assert (again.failed, again.finished_this_run, len(emulator.requests)) == (2, 0, 4)

    retried = await arun_batch("chat", source, out, client=make_client(), retry_failed=True)
    assert (retried.done, retried.failed, retried.finished_this_run) == (4, 0, 2)
    assert len(emulator.requests) == 6


async def test_a_torn_last_line_is_made_again(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", *({"prompt": f"q{i}"} for i in range(3)))
    out = tmp_path / "out.jsonl"
    await arun_batch("chat", source, out, client=make_client(), concurrency=1)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 12])  # a kill in the middle of the last write
    summary = await arun_batch("chat", source, out, client=make_client())
    assert (summary.done, summary.finished_this_run) == (3, 1)
    assert [r.body["messages"][-1]["content"] for r in emulator.requests[3:]] == ["q2"]
    assert sorted(entry["id"] for entry in entries(out)) == ["1", "2", "3"]


async def test_bad_input_sends_nothing_and_writes_nothing(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", {"prompt": "fine"}, {"prompt": "x", "seed": 1})
    out = tmp_path / "out.jsonl"
    with pytest.raises(BatchInputError, match="line 2: unknown option 'seed'"):
        await arun_batch("chat", source, out, client=make_client())
    assert emulator.requests == []
    assert not out.exists()


async def test_an_image_batch_saves_every_image_under_its_id(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    source = write_lines(
        tmp_path / "in.jsonl",
        {"id": "fox", "prompt": "a red fox", "seed": 3},
        {"id": "a/b c", "prompt": "a heron", "width": 64, "height": 64},
        {"prompt": "a whale"},
    )
    out = tmp_path / "out.jsonl"
    folder = tmp_path / "pictures"
    summary = await arun_batch(
        "image", source, out, images_dir=folder, client=make_client(), options={"seed": 9}
    )
    assert (summary.done, summary.images_dir) == (3, folder)
    by_id = {entry["id"]: entry for entry in entries(out)}
    assert Path(by_id["fox"]["path"]) == folder / "fox.png"
    assert Path(by_id["3"]["path"]) == folder / "3.png"
    odd = Path(by_id["a/b c"]["path"])
    assert odd.parent == folder and odd.name.startswith("a_b_c-") and odd.suffix == ".png"
    assert len({entry["path"] for entry in by_id.values()}) == 3
    for entry in by_id.values():
        assert entry["url"].startswith(emulator.base_url)
        png_at(entry["path"])  # a whole, valid PNG
    assert png_at(odd).width == 64
    seeds = {r.body["prompt"]: r.body.get("seed") for r in emulator.requests_for("image")}
    assert seeds == {"a red fox": 3, "a heron": 9, "a whale": 9}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        Path(e["path"]).name for e in by_id.values()
    )  # no partial files left behind


async def test_the_bar_shows_counts_failures_and_the_learned_rate(
    emulator: WebsimEmulator,
    make_client: Callable[..., WebsimClient],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Two 429s (one alone is weak evidence in the slow start) teach the rate control a
    # rate; the bar shows it.
    for _ in range(2):
        emulator.enqueue("chat", status=429, json={"error": "Rate limit exceeded", "status": 429})
    source = write_lines(tmp_path / "in.jsonl", {"prompt": "q"})
    summary = await arun_batch(
        "chat", source, tmp_path / "out.jsonl", client=make_client(), progress="bar"
    )
    assert (summary.done, summary.rate_limited) == (1, 2)
    err = capsys.readouterr().err
    assert "1/1" in err
    assert re.search(r"failed 0, Websim allows \d+\.\d/s", err)
    assert "Websim allows ? (learning)" in err  # before the 429 taught it


async def test_status_lines_when_stderr_is_not_a_terminal(
    emulator: WebsimEmulator,
    make_client: Callable[..., WebsimClient],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import langchain_websim._batch_progress as progress

    monkeypatch.setattr(progress, "STATUS_EVERY", 0.0)  # a line on every tick
    monkeypatch.setattr("langchain_websim._batch_run.TICK", 0.01)
    emulator.enqueue("chat", delay=0.2)
    source = write_lines(tmp_path / "in.jsonl", {"prompt": "slow"})
    await arun_batch("chat", source, tmp_path / "out.jsonl", client=make_client(), progress="auto")
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    assert re.search(r"^batch: 0/1 done \(0 failed\), [\d.]+ calls/s, Websim allows ", err, re.M)


async def test_cancelling_the_task_keeps_every_finished_call(
    emulator: WebsimEmulator, make_client: Callable[..., WebsimClient], tmp_path: Path
) -> None:
    import asyncio

    source = write_lines(tmp_path / "in.jsonl", *({"prompt": f"q{i}"} for i in range(6)))
    out = tmp_path / "out.jsonl"
    emulator.enqueue("chat", times=2)  # two quick answers ...
    emulator.enqueue("chat", delay=30, times=None)  # ... then answers that never come in time
    client = make_client()
    task = asyncio.create_task(arun_batch("chat", source, out, client=client, concurrency=3))
    await emulator.wait_for_requests(5, endpoint="chat")  # 2 answered, 3 hanging
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = entries(out)
    assert len(finished) == 2 and all(entry["ok"] for entry in finished)

    emulator.clear()
    summary = await arun_batch("chat", source, out, client=client)
    assert (summary.done, summary.finished_this_run) == (6, 4)
    assert sorted(entry["id"] for entry in entries(out)) == [str(i) for i in range(1, 7)]
