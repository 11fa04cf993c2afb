"""The ``websim`` command, driven as a subprocess against the emulator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_websim import WebsimClient, _wire
from langchain_websim.testing import WebsimEmulator
from tests.integration_tests.cli_run import error_lines_are_ours, run
from tests.png import read_png

CANNED = "canned"
IMAGE_URL_RE = r"http://127\.0\.0\.1:\d+/images/[0-9a-f]{16}-\d+x\d+\.png"

pytestmark = pytest.mark.usefixtures("cli_tmpdir")


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "websim"
    assert script.exists(), "the 'websim' console script is not installed beside python"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("chat", "image", "emulator", "demo"):
        assert command in done.stdout


def test_chat_against_in_process_emulator_says_answers_are_canned() -> None:
    done = run("chat", "--emulator", "hello", "there")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Echo: hello there"
    assert CANNED in done.stderr
    assert "Traceback" not in done.stderr


def test_chat_json_prints_the_full_result() -> None:
    done = run("chat", "--emulator", "--json", "--model", "gemini-1.5-flash", "hi")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["content"] == "Echo: hi"
    meta = result["response_metadata"]
    assert meta["model_name"] == "gemini-1.5-flash"
    assert _wire.CHAT.project_id_re.match(meta["project_id"])
    assert meta["attempts"] == 1
    assert "usage_metadata" not in result


def test_chat_sends_system_message_to_base_url(emulator: WebsimEmulator) -> None:
    done = run("chat", "--base-url", emulator.base_url, "--system", "Be brief.", "Hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Echo: Hi"
    assert CANNED not in done.stderr  # a real server, as far as the command knows
    (request,) = emulator.requests_for("chat")
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


def test_base_url_from_environment(emulator: WebsimEmulator) -> None:
    done = run("image", "a", "red", "fox", env={_wire.BASE_URL_ENV: emulator.base_url})
    assert done.returncode == 0, done.stderr
    (request,) = emulator.requests_for("image")
    assert request.body["prompt"] == "a red fox"
    assert done.stdout.strip().startswith(emulator.base_url + "/images/")


def test_image_json_with_aspect_ratio(emulator: WebsimEmulator) -> None:
    done = run("image", "--base-url", emulator.base_url, "--json", "--aspect-ratio", "16:9", "x")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["aspect_ratio"] == "16:9"
    assert result["model"] == "flux"
    assert _wire.IMAGE.project_id_re.match(result["project_id"])
    assert result["url"].endswith(".png")
    assert emulator.requests_for("image")[0].body["aspect_ratio"] == "16:9"


def test_flux_through_chat_prints_the_image_url(emulator: WebsimEmulator) -> None:
    done = run("chat", "--base-url", emulator.base_url, "--model", "flux", "a", "boat")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(IMAGE_URL_RE, done.stdout.strip())
    assert emulator.requests_for("image")[0].body["prompt"] == "a boat"
    assert done.stderr == ""  # a live server's URL: nothing to save or warn about


def test_service_error_exits_1_with_message_and_no_traceback(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", status=422, json={"error": "unprocessable prompt"})
    done = run("chat", "--base-url", emulator.base_url, "Hi")
    assert done.returncode == 1
    assert "HTTP 422" in done.stderr
    assert "unprocessable prompt" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_retries_are_reported_on_stderr(emulator: WebsimEmulator) -> None:
    emulator.enqueue("chat", status=503, json={"error": "busy"}, headers={"Retry-After": "0"})
    done = run("chat", "--base-url", emulator.base_url, "Hi")
    assert done.returncode == 0, done.stderr
    assert "HTTP 503; retrying" in done.stderr
    assert len(emulator.requests_for("chat")) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("image", "--emulator", "--aspect-ratio", "16x9", "fox"), "aspect_ratio"),
        (("image", "--emulator", "--aspect-ratio", "0:0", "fox"), "aspect_ratio must look"),
        (("image", "--emulator", "--seed", "-1", "fox"), "seed must be 0 to"),
        (("image", "--emulator", "--seed", "x", "fox"), "argument --seed: invalid int value"),
        (("image", "--emulator", "--width", "10", "fox"), "width must be 64 to 2048 pixels"),
        (("image", "--emulator", "--image-input", "ftp://x/a.png", "fox"), "neither an http(s)"),
        (("image", "--emulator", "--output", "no/such/dir/a.png", "fox"), "does not exist"),
        (("image", "--emulator", "--output", ".", "fox"), "is a directory"),
        (("chat", "--base-url", "ftp://example.com", "hi"), "base_url"),
        (("chat", "--emulator", "--base-url", "http://x.test", "hi"), "not allowed with"),
        (("chat", "--emulator", "--model", " ", "hi"), "--model is empty"),
        (("image", "--emulator", "   "), "prompt"),
        (("demo", "--emulator", "   "), "prompt is empty"),
        (("chat",), "the following arguments are required: prompt (see 'websim chat --help')"),
        (("draw", "x"), "invalid choice"),
        (("emulator", "--json"), "unrecognized arguments: --json (see 'websim emulator --help')"),
        (("emulator", "--emulator"), "unrecognized arguments: --emulator"),
        (("--json", "chat", "hi"), "unrecognized arguments: --json"),
    ],
)
def test_usage_errors_exit_2_before_the_emulator_starts(
    args: tuple[str, ...], message: str
) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert error_lines_are_ours(done.stderr), done.stderr
    # Input is checked first: no in-process emulator was started for it.
    assert CANNED not in done.stderr
    assert done.stdout == ""


def test_emulator_subcommand_serves_until_terminated() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_websim", "emulator", "--port", "0", "--lenient"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        with WebsimClient(base_url, max_retries=0) as client:
            assert client.chat([{"role": "user", "content": "ping"}]).text == "Echo: ping"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert stderr == ""


def test_demo_runs_the_agent_loop_offline_and_keeps_the_image(cli_tmpdir: str) -> None:
    done = run("demo", "--emulator", "Draw", "a", "red", "fox")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("-> tool call: websim_image_generation(")
    assert '"prompt": "Draw a red fox"' in lines[0]
    assert re.fullmatch(f"<- image: {IMAGE_URL_RE}", lines[1])
    url = lines[1].removeprefix("<- image: ")
    # The emulator dies with the command: the image was saved while it ran.
    saved = Path(lines[2].removeprefix("   saved: "))
    assert saved.parent.parent == Path(cli_tmpdir) and saved.name == url.rsplit("/", 1)[1]
    assert read_png(saved.read_bytes()).width == 1024
    assert lines[-3].startswith("answer: ") and url in lines[-3]
    assert lines[-2:] == ["saved 1 image:", f"  {saved}"]  # the summary lists every file
    assert CANNED in done.stderr
    assert f"the images are saved in {saved.parent}" in done.stderr


def test_demo_json_lists_every_step() -> None:
    done = run("demo", "--emulator", "--json", "Draw a boat")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["prompt"] == "Draw a boat"
    kinds = [step["step"] for step in result["steps"]]
    assert kinds == ["tool_call", "tool_result", "answer"]
    assert result["steps"][0]["calls"][0]["args"]["prompt"] == "Draw a boat"
    assert result["steps"][1]["status"] == "success"
    assert result["steps"][1]["url"] in result["steps"][2]["text"]
    assert Path(result["steps"][1]["file"]).is_file()
