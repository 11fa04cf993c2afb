"""``websim image`` options and saved files, ``websim demo --output-dir``, and every
subcommand's help, driven as a subprocess."""

from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_websim import WebsimClient, WebsimConnectionError, __version__
from langchain_websim.cli import main
from langchain_websim.testing import WebsimEmulator, agent_responder
from tests.integration_tests.cli_run import run
from tests.png import read_png

pytestmark = pytest.mark.usefixtures("cli_tmpdir")


def test_image_options_go_on_the_wire_and_output_saves_the_picture(
    emulator: WebsimEmulator, tmp_path: Path
) -> None:
    target = tmp_path / "fox.png"
    done = run(
        "image", "--base-url", emulator.base_url, "--seed", "42", "--width", "320",
        "--height", "200", "--transparent", "--output", str(target), "a", "fox",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (request,) = emulator.requests_for("image")
    assert request.violations == []
    assert {k: request.body[k] for k in ("seed", "width", "height", "transparent")} == {
        "seed": 42,
        "width": 320,
        "height": 200,
        "transparent": True,
    }
    assert done.stdout.strip().endswith("-320x200-alpha.png")
    png = read_png(target.read_bytes())
    assert (png.width, png.height, png.channels) == (320, 200, 4)
    assert done.stderr == f"(saved {target})\n"


def test_a_plain_image_sends_only_the_known_fields(emulator: WebsimEmulator) -> None:
    done = run("image", "--base-url", emulator.base_url, "a fox")
    assert done.returncode == 0, done.stderr
    assert set(emulator.requests_for("image")[0].body) == {"project_id", "prompt", "aspect_ratio"}
    assert done.stderr == ""  # nothing saved, nothing to warn about


def test_image_json_names_the_options_and_the_file(
    emulator: WebsimEmulator, tmp_path: Path
) -> None:
    done = run(
        "image", "--base-url", emulator.base_url, "--json", "--seed", "7", "--aspect-ratio",
        "16:9", "--output", str(tmp_path / "x.png"), "a boat",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["seed"], result["aspect_ratio"]) == (7, "16:9")
    assert "width" not in result and "transparent" not in result
    assert result["file"] == str(tmp_path / "x.png")
    assert read_png((tmp_path / "x.png").read_bytes()).height == 576


def test_emulator_images_are_saved_before_the_emulator_stops(cli_tmpdir: str) -> None:
    done = run("image", "--emulator", "--width", "100", "--height", "80", "a fox")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    match = re.search(r"the image is saved at (\S+)\)", done.stderr)
    assert match, done.stderr
    assert "the emulator stops with this command, and its image URLs with it" in done.stderr
    saved = Path(match[1])
    assert saved.is_relative_to(cli_tmpdir) and saved.name == url.rsplit("/", 1)[1]
    assert (read_png(saved.read_bytes()).width, read_png(saved.read_bytes()).height) == (100, 80)
    # What the note says: the printed URL no longer answers.
    with WebsimClient(url.split("/images/")[0], max_retries=0) as client:
        with pytest.raises(WebsimConnectionError):
            client.download(url)


def test_an_emulator_image_goes_to_output_when_given(tmp_path: Path) -> None:
    done = run("image", "--emulator", "--output", str(tmp_path / "a.png"), "a fox")
    assert done.returncode == 0, done.stderr
    assert f"the image is saved at {tmp_path / 'a.png'}" in done.stderr
    assert read_png((tmp_path / "a.png").read_bytes()).width == 1024


def test_flux_chat_on_the_emulator_saves_the_image_too() -> None:
    done = run("chat", "--emulator", "--json", "--model", "flux", "a boat")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert Path(result["file"]).name == result["response_metadata"]["image_url"].rsplit("/")[-1]
    assert read_png(Path(result["file"]).read_bytes()).width == 1024


def test_image_input_takes_urls_and_local_files(emulator: WebsimEmulator, tmp_path: Path) -> None:
    local = tmp_path / "ref.png"
    local.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    done = run(
        "image", "--base-url", emulator.base_url, "--json", "--image-input",
        "https://cdn.example/ref.jpg", "--image-input", str(local), "make it blue",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, second = emulator.requests_for("image")[0].body["image_inputs"]
    assert first == {"url": "https://cdn.example/ref.jpg"}
    assert second["url"] == "data:image/png;base64," + base64.b64encode(local.read_bytes()).decode()
    assert json.loads(done.stdout)["image_inputs"] == 2  # counted, not echoed in full


def test_image_input_refuses_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    done = run("image", "--emulator", "--image-input", str(tmp_path / "notes.txt"), "x")
    assert done.returncode == 2
    assert done.stderr.startswith("websim: --image-input ") and "not a PNG, JPEG" in done.stderr


@pytest.mark.parametrize(
    ("head", "needle"),
    [(b"\x89PNG\r\n\x1a\n", "is larger than 20 MiB"), (b"\x00\x00\x00\x18ftypmp42", "not a PNG")],
    ids=["png-too-large", "video"],
)
def test_image_input_judges_a_large_file_before_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], head: bytes, needle: str
) -> None:
    big = tmp_path / "clip.bin"
    with big.open("wb") as file:  # sparse: 64 MiB on paper, nothing on disk
        file.write(head)
        file.truncate(64 * 1024 * 1024)
    logger = logging.getLogger("langchain_websim")
    handlers, level = logger.handlers[:], logger.level
    tracemalloc.start()
    try:
        code = main(["image", "--emulator", "--image-input", str(big), "x"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        logger.handlers[:] = handlers  # main() adds its stderr handler for the command
        logger.setLevel(level)
    assert code == 2
    assert needle in capsys.readouterr().err
    assert peak < 4 * 1024 * 1024  # the file was not read whole (64 MiB)


def test_demo_output_dir_keeps_every_image(tmp_path: Path) -> None:
    out = tmp_path / "new" / "images"
    with WebsimEmulator(chat_responder=agent_responder) as emu:
        done = run("demo", "--base-url", emu.base_url, "--output-dir", str(out), "Draw a fox")
    assert done.returncode == 0, done.stderr
    (saved,) = out.iterdir()
    assert read_png(saved.read_bytes()).width == 1024
    assert f"   saved: {saved}" in done.stdout.splitlines()
    assert "emulator stops" not in done.stderr  # a server that outlives the command


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """``main()`` in this process (fast): temporary files under a test directory, and the
    logging handler the command adds removed afterwards."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    logger = logging.getLogger("langchain_websim")
    handlers, level = logger.handlers[:], logger.level
    yield temp
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _two_drawings(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """An agent model that draws the request twice in one turn (the same file name twice)."""
    last = messages[-1]["content"]
    if isinstance(last, str) and not last.startswith("Result of the call"):
        call = {"name": "websim_image_generation", "arguments": {"prompt": last}}
        return "```json\n" + json.dumps({"tool_calls": [call, call]}) + "\n```"
    return agent_responder(messages, body)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_demo_never_replaces_an_image_and_lists_every_file(
    in_process: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "unrelated.png"
    earlier.write_bytes(b"an earlier run's file")
    with WebsimEmulator(chat_responder=_two_drawings) as emu:
        emu.enqueue("image", json={"url": emu.base_url + "/images/fox-64x64.png"})
        emu.enqueue("image", json={"url": emu.base_url + "/images/fox-64x64.png?v=2"})
        args = ["demo", "--base-url", emu.base_url, "--output-dir", str(out), "Draw a fox"]
        assert main([*args, "--json"] if as_json else args) == 0
        first_run = capsys.readouterr().out
        # A second run into the same directory keeps the first run's files too.
        emu.enqueue("image", json={"url": emu.base_url + "/images/unrelated.png"}, times=2)
        assert main(args) == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "fox-64x64-2.png",
        "fox-64x64.png",
        "unrelated-2.png",
        "unrelated-3.png",
        "unrelated.png",
    ]
    assert earlier.read_bytes() == b"an earlier run's file"
    first = [str(out / "fox-64x64.png"), str(out / "fox-64x64-2.png")]
    if as_json:
        assert json.loads(first_run)["files"] == first
    else:
        assert first_run.endswith(f"saved 2 images:\n  {first[0]}\n  {first[1]}\n")
    for path in first:
        assert read_png(Path(path).read_bytes()).width == 64


def test_demo_on_the_emulator_leaves_no_directory_when_nothing_is_drawn(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import langchain_websim.testing

    def no_drawing(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
        return "I would rather describe it in words."

    monkeypatch.setattr(langchain_websim.testing, "agent_responder", no_drawing)
    assert main(["demo", "--emulator", "Draw a fox"]) == 0
    assert "saved: no image" in capsys.readouterr().out
    assert list(in_process.iterdir()) == []  # no empty websim-images-* directory


@pytest.mark.parametrize("command", ["chat", "image", "emulator", "demo"])
def test_every_subcommand_has_a_description_and_shows_defaults(command: str) -> None:
    done = run(command, "--help")
    assert done.returncode == 0
    usage, description, *_ = done.stdout.split("\n\n")
    assert usage.startswith(f"usage: websim {command}")
    assert len(description.split()) >= 15  # a sentence or two, not a bare title
    entries = help_entries(done.stdout)
    assert len(entries) >= 3
    for option, text in entries.items():
        if option not in ("-h", "--json"):  # switches with nothing to default
            assert "(default: " in text, (command, option, text)


def help_entries(help_text: str) -> dict[str, str]:
    """Each option's help text (its lines joined), from the option sections of --help."""
    entries: dict[str, str] = {}
    current = None
    for line in help_text.split("options:", 1)[1].splitlines():
        if re.match(r"^  -", line):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif current is not None and line.startswith("      "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {option: " ".join(text.split()) for option, text in entries.items()}


def test_version_and_top_level_help() -> None:
    version = run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"langchain-websim {__version__}")
    overview = run("--help").stdout
    for command in ("chat", "image", "emulator", "demo"):
        assert re.search(rf"^    {command} +\w", overview, flags=re.MULTILINE), command
    assert "--emulator" not in overview and "--base-url" not in overview


def test_a_file_that_cannot_be_written_is_a_failure_in_words(
    emulator: WebsimEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In process, to make the disk full; the command's log handler is removed afterwards.
    import errno
    import logging

    from langchain_websim import _download, cli

    def full_disk(target: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(_download, "write_file", full_disk)
    logger = logging.getLogger("langchain_websim")
    handlers, level = list(logger.handlers), logger.level
    try:
        code = cli.main(
            ["image", "--base-url", emulator.base_url, "--output", str(tmp_path / "a.png"), "x"]
        )
    finally:
        logger.handlers[:], logger.level = handlers, level
        WebsimClient.close_shared(emulator.base_url)
    assert code == 1
    err = capsys.readouterr().err
    assert err == f"websim: [Errno 28] No space left on device: '{tmp_path / 'a.png'}'\n"
    assert list(tmp_path.iterdir()) == []


def test_demo_help_shows_the_default_prompt_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: 'Draw a lighthouse on a cliff at dusk')" in text
    assert "['Draw" not in text  # not a Python list
