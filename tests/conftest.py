"""Test-wide settings: live tests only run with WEBSIM_LIVE=1."""

from __future__ import annotations

import os

import pytest

LIVE = os.environ.get("WEBSIM_LIVE") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LIVE:
        return
    skip_live = pytest.mark.skip(reason="talks to the Websim service; set WEBSIM_LIVE=1 to run")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip_live)


@pytest.fixture(autouse=True)
def _isolated_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own WEBSIM_BASE_URL must not leak into tests that check the default.
    if not LIVE:
        monkeypatch.delenv("WEBSIM_BASE_URL", raising=False)
