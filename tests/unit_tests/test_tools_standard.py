"""langchain-tests' standard unit suite for ``WebsimImageTool``."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from langchain_websim import WebsimImageTool


class TestWebsimImageToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return WebsimImageTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"base_url": "http://websim.test", "default_aspect_ratio": "16:9"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"prompt": "a lighthouse at dusk, oil painting", "aspect_ratio": "16:9"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"WEBSIM_BASE_URL": "http://emulator.test:8765/"},
            {"timeout": 30},
            {"base_url": "http://emulator.test:8765", "timeout": 30.0},
        )
