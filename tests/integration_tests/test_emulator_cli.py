"""The emulator from the command line: ``python -m langchain_websim.testing`` and
``websim emulator``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from langchain_websim import WebsimClient
from langchain_websim.cli import build_parser
from langchain_websim.errors import WebsimRateLimitError
from langchain_websim.testing import WebsimEmulator
from langchain_websim.testing.__main__ import main as emulator_main
from tests.integration_tests.emulator_http import USER


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
    with pytest.raises(SystemExit) as exited:
        emulator_main(["--port", "70000"])
    assert exited.value.code == 2
    assert "port must be 0 (any free port) or 1-65535" in capsys.readouterr().err


def test_command_line_reports_a_busy_port(
    emulator: WebsimEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    port = emulator.base_url.rsplit(":", 1)[1]
    assert emulator_main(["--port", port]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: cannot serve on 127.0.0.1:{port}")


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
        with WebsimClient(base_url=base_url, max_retries=0) as client:
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
    with pytest.raises(SystemExit) as exited:
        emulator_main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


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
