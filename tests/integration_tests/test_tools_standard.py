"""langchain-tests' standard integration suite for ``WebsimImageTool``, on the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests

from langchain_websim import WebsimImageTool
from langchain_websim.testing import WebsimEmulator


class TestWebsimImageToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return WebsimImageTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"retry_base_delay": 0.0, "max_retries": 1}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"prompt": "a lighthouse at dusk, oil painting", "aspect_ratio": "16:9"}

    @pytest.fixture
    def tool(self, emulator: WebsimEmulator) -> Iterator[BaseTool]:
        # The emulator's address is only known per test, so the fixture adds it.
        tool = WebsimImageTool(base_url=emulator.base_url, **self.tool_constructor_params)
        yield tool
        if tool._shared_client is not None:
            tool._shared_client.close()
        # Every standard test must really have generated an image, with a clean request.
        (request,) = emulator.requests_for("image")
        assert request.status == 200 and request.violations == []
        assert request.body["prompt"] == self.tool_invoke_params_example["prompt"]
