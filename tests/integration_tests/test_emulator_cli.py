"""The emulator from the command line: ``python -m langchain_websim.testing`` and
``websim emulator``, one command under two names."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from langchain_websim import ChatWebsim, WebsimClient, WebsimImageTool
from langchain_websim._cli_emulator import build_parser as emulator_parser
from langchain_websim.cli import build_parser
from langchain_websim.errors import WebsimRateLimitError
from langchain_websim.testing import WebsimEmulator
from langchain_websim.testing.__main__ import main as emulator_main
from tests.integration_tests.emulator_http import USER


def exit_code(argv: list[str]) -> int:
    """The command's exit status, whether argparse or the command refused the input."""
    try:
        return emulator_main(argv)
    except SystemExit as exited:
        assert isinstance(exited.code, int)
        return exited.code


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_command_line_serves_until_signalled(stop_signal: signal.Signals) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "langchain_websim.testing", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url == f"http://127.0.0.1:{port}"
        with WebsimClient(base_url=base_url, max_retries=0) as client:
            assert client.chat(USER).text == "Echo: hello"
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert (out, err) == ("", "")


def test_command_line_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["--port", "70000"]) == 2
    assert (
        capsys.readouterr().err == "websim: port must be 0 (any free port) or 1-65535, got 70000\n"
    )


def test_command_line_reports_a_busy_port(
    emulator: WebsimEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    port = emulator.base_url.rsplit(":", 1)[1]
    assert emulator_main(["--port", port]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"websim: cannot serve on 127.0.0.1:{port}: ")


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """Run an emulator command in a subprocess; yield its base URL; stop it with SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, err) == (0, "")


@pytest.mark.parametrize(
    "command",
    [["langchain_websim.testing"], ["langchain_websim", "emulator"]],
    ids=["python-m", "websim-emulator"],
)
def test_command_line_rate_limit_options(command: list[str]) -> None:
    options = ["--port", "0", "--rate-limit", "0.5", "--burst", "2", "--retry-after", "3"]
    with serving(*command, *options) as base_url:
        with WebsimClient(base_url=base_url, max_retries=0, adaptive_rate=False) as client:
            assert [client.chat(USER).text for _ in range(2)] == ["Echo: hello"] * 2
            with pytest.raises(WebsimRateLimitError) as caught:
                client.chat(USER)
            assert client.generate_image("a fox").url.startswith(base_url)
    assert (caught.value.status_code, caught.value.retry_after) == (429, 3)
    assert "Rate limit exceeded" in str(caught.value.body)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate-limit", "0"], "rate_limit must be a finite number of requests per second > 0"),
        (["--rate-limit", "fast"], "argument --rate-limit: invalid float value: 'fast'"),
        (["--rate-limit", "1", "--burst", "0"], "burst must be >= 1 request"),
        (["--rate-limit", "1", "--burst", "2.5"], "argument --burst: invalid int value: '2.5'"),
        (["--rate-limit", "1", "--retry-after", "-1"], "retry_after must be a finite number"),
        (["--burst", "2"], "burst needs a rate_limit"),
        (["--retry-after", "2"], "retry_after needs a rate_limit"),
    ],
)
def test_command_line_rejects_bad_rate_limits(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("websim: ") and err.count("\n") == 1


def test_websim_emulator_parses_and_forwards_rate_limit_options() -> None:
    args = build_parser().parse_args(
        ["emulator", "--rate-limit", "2.5", "--burst", "5", "--retry-after", "1.5"]
    )
    assert (args.rate_limit, args.burst, args.retry_after) == (2.5, 5, 1.5)
    unset = build_parser().parse_args(["emulator"])
    assert (unset.rate_limit, unset.burst, unset.retry_after) == (None, None, None)
    # A bad value the websim parser accepts is refused by the emulator's own checks.
    done = subprocess.run(
        [sys.executable, "-m", "langchain_websim", "emulator", "--rate-limit=-inf"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "rate_limit must be a finite number" in done.stderr
    assert "Traceback" not in done.stderr


def _options(parser: argparse.ArgumentParser) -> dict[str, tuple[tuple[str, ...], Any]]:
    return {
        action.dest: (tuple(action.option_strings), action.default)
        for action in parser._actions
        if action.dest != "help"
    }


def test_both_names_offer_the_same_options_and_defaults() -> None:
    websim = build_parser()
    subcommand = websim._subparsers._group_actions[0].choices["emulator"]  # type: ignore[union-attr]
    assert _options(subcommand) == _options(emulator_parser())
    options = _options(emulator_parser())
    assert set(options) == {
        "host",
        "port",
        "agent",
        "lenient",
        "any_project_id",
        "rate_limit",
        "burst",
        "retry_after",
        "verbose",
    }
    assert options["verbose"] == (("--verbose", "--no-verbose", "-v"), None)  # None: a terminal
    assert options["port"] == (("--port",), 8765)
    assert options["host"] == (("--host",), "127.0.0.1")


def test_both_names_print_the_same_help() -> None:
    helps = [
        subprocess.run(
            [sys.executable, "-m", *command, "--help"], capture_output=True, text=True, timeout=60
        )
        for command in (["langchain_websim.testing"], ["langchain_websim", "emulator"])
    ]
    assert [done.returncode for done in helps] == [0, 0]
    # Only the usage line's program name differs.
    bodies = [done.stdout.split("\n\n", 1)[1] for done in helps]
    assert bodies[0] == bodies[1]
    assert "Serve a local Websim API emulator" in bodies[0]
    for option in ("--host", "--port", "--rate-limit", "--burst", "--retry-after", "--agent"):
        assert option in bodies[0]
    assert bodies[0].count("(default:") >= 8
    for foreign in ("--base-url", "--emulator", "--json"):
        assert foreign not in bodies[0]


@pytest.mark.parametrize(
    "command",
    [["langchain_websim.testing"], ["langchain_websim", "emulator"]],
    ids=["python-m", "websim-emulator"],
)
def test_both_names_take_lenient_any_project_id_and_agent(command: list[str]) -> None:
    options = ["--port", "0", "--lenient", "--any-project-id", "--agent"]
    with serving(*command, *options) as base_url:
        # A foreign origin breaks the contract: answered anyway (lenient); a made-up project
        # id passes (any project id); a request offering a tool gets a call (agent mode).
        foreign = {"origin": "http://elsewhere.test"}
        with WebsimClient(base_url=base_url, max_retries=0, headers=foreign) as client:
            answer = client.chat(USER, project_id="my-own-id")
        model = ChatWebsim(base_url=base_url, max_retries=0)
        try:
            reply = model.bind_tools([WebsimImageTool()]).invoke("Draw a fox")
        finally:
            model._websim_client().close()
    assert answer.text == "Echo: hello"
    assert reply.tool_calls[0]["name"] == "websim_image_generation"
