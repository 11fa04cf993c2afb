"""Unit tests never touch a network: sockets are disabled (Unix sockets stay allowed, the
event loop needs a socketpair).  HTTP is mocked with aioresponses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_socket


@pytest.fixture(autouse=True)
def _disable_network() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()
