"""``python -m langchain_websim.testing``: the emulator from the command line."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from langchain_websim import WebsimClient
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
