"""Unit tests never touch a network: sockets are disabled (Unix sockets stay allowed, the
event loop needs a socketpair).  HTTP is mocked with aioresponses."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import aiohttp
import aioresponses.core
import pytest
import pytest_socket
from aioresponses import aioresponses as MockedHTTP


@pytest.fixture(autouse=True)
def _disable_network() -> Iterator[None]:
    pytest_socket.disable_socket(allow_unix_socket=True)
    yield
    pytest_socket.enable_socket()


class _SentResponse(aiohttp.ClientResponse):
    # aioresponses 0.7.x builds responses without the `stream_writer` argument that
    # aiohttp 3.14 requires (pnuckowski/aioresponses#289).  Its mocked request is already
    # "sent", so a writer that reports zero bytes written is all aiohttp asks for.
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_on_aiohttp_3_14(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioresponses.core, "ClientResponse", _SentResponse)


@pytest.fixture
def http() -> Iterator[MockedHTTP]:
    """Mocked HTTP for one test; a test module may override it with answers set up."""
    with MockedHTTP() as mocked:
        yield mocked
