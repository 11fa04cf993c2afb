"""Run the ``websim`` command in a subprocess, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys

from langchain_websim import _wire


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != _wire.BASE_URL_ENV}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "langchain_websim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def error_lines_are_ours(stderr: str) -> bool:
    """Every line of an error report starts with 'websim:' (no argparse usage dump)."""
    lines = [line for line in stderr.splitlines() if not line.startswith("(")]
    return bool(lines) and all(line.startswith("websim: ") for line in lines)
