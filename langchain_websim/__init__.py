"""LangChain integration for the Websim AI inference API.

``ChatWebsim`` (chat model), ``WebsimImageTool`` (image generation tool) and
``WebsimClient`` (the shared async HTTP client both use).  Public names are imported lazily,
so ``import langchain_websim`` stays cheap until a class is actually used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_websim._client import (
        WebsimChatResponse,
        WebsimClient,
        WebsimImageResponse,
    )
    from langchain_websim.chat_models import ChatWebsim
    from langchain_websim.errors import (
        WebsimAPIError,
        WebsimBlockedError,
        WebsimConnectionError,
        WebsimError,
        WebsimRateLimitError,
        WebsimResponseError,
        WebsimTimeoutError,
    )
    from langchain_websim.tools import WebsimImageInput, WebsimImageTool

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ChatWebsim": "langchain_websim.chat_models",
    "WebsimImageTool": "langchain_websim.tools",
    "WebsimImageInput": "langchain_websim.tools",
    "WebsimClient": "langchain_websim._client",
    "WebsimChatResponse": "langchain_websim._client",
    "WebsimImageResponse": "langchain_websim._client",
    "WebsimError": "langchain_websim.errors",
    "WebsimAPIError": "langchain_websim.errors",
    "WebsimRateLimitError": "langchain_websim.errors",
    "WebsimBlockedError": "langchain_websim.errors",
    "WebsimConnectionError": "langchain_websim.errors",
    "WebsimTimeoutError": "langchain_websim.errors",
    "WebsimResponseError": "langchain_websim.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_websim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
