"""Integration tests talk to the local emulator over real sockets, and to nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket

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
