"""Integration tests talk to the local emulator over real sockets, and to nothing else.

Every emulator listens on a free port of its own (port 0), so tests run side by side in the
parallel run (see ``tests/conftest.py``); ``shared_emulator`` is one per xdist worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_socket

from langchain_websim import WebsimClient
from langchain_websim.testing import WebsimEmulator

LOOPBACK = ["127.0.0.1", "localhost", "::1"]


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[None]:
    pytest_socket.socket_allow_hosts(LOOPBACK, allow_unix_socket=True)
    yield
    # enable_socket() only restores socket creation, not the connect() guard that
    # socket_allow_hosts installs; pytest-socket's own teardown hook undoes both.
    pytest_socket.enable_socket()


@pytest.fixture
def emulator() -> Iterator[WebsimEmulator]:
    """A fresh, started emulator per test (strict contract checks)."""
    with WebsimEmulator() as emu:
        yield emu


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[WebsimEmulator]:
    """One emulator for the whole session; call ``clear()`` before relying on its state."""
    with WebsimEmulator() as emu:
        yield emu


@pytest.fixture
async def make_client(emulator: WebsimEmulator) -> AsyncIterator[Callable[..., WebsimClient]]:
    """Clients on the emulator with fast retries, all closed after the test."""
    clients: list[WebsimClient] = []

    def make(**kwargs: Any) -> WebsimClient:
        kwargs.setdefault("retry_base_delay", 0.01)
        kwargs.setdefault("timeout", 10)
        client = WebsimClient(kwargs.pop("base_url", emulator.base_url), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def run_script_in_dev_mode(
    source: str, *args: str, base_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a fresh interpreter where unclosed resources surface on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if base_url is not None:
        env["WEBSIM_BASE_URL"] = base_url
    return subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-W",
            "error::ResourceWarning",
            "-c",
            textwrap.dedent(source),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_tmpdir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Commands run by the test keep their temporary files (saved emulator images) here."""
    path = str(tmp_path_factory.mktemp("tmp"))
    monkeypatch.setenv("TMPDIR", path)
    return path


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session, for requests the client would retry, refuse or not build."""
    async with aiohttp.ClientSession() as session:
        yield session
