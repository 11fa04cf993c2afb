"""LangChain integration for the Websim AI inference API.

``ChatWebsim`` (chat model), ``WebsimImageTool`` (image generation tool) and
``WebsimClient`` (the shared async HTTP client both use); ``run_batch``/``arun_batch`` for
bulk jobs that resume after a crash.  Public names are imported lazily,
so ``import langchain_websim`` stays cheap until a class is actually used.

Documentation: https://github.com/langchain-websim/langchain-websim/blob/main/README.md
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # "X as X" marks an explicit re-export, so strict type checkers accept
    # `from langchain_websim import ChatWebsim` while the runtime import stays lazy.
    from langchain_websim._client import WebsimClient as WebsimClient
    from langchain_websim._rate_tuning import RateTuning as RateTuning
    from langchain_websim._responses import WebsimChatResponse as WebsimChatResponse
    from langchain_websim._responses import WebsimImageResponse as WebsimImageResponse
    from langchain_websim.batch import BatchInputError as BatchInputError
    from langchain_websim.batch import BatchSummary as BatchSummary
    from langchain_websim.batch import arun_batch as arun_batch
    from langchain_websim.batch import run_batch as run_batch
    from langchain_websim.chat_models import ChatWebsim as ChatWebsim
    from langchain_websim.errors import WebsimAPIError as WebsimAPIError
    from langchain_websim.errors import WebsimBlockedError as WebsimBlockedError
    from langchain_websim.errors import WebsimConnectionError as WebsimConnectionError
    from langchain_websim.errors import WebsimError as WebsimError
    from langchain_websim.errors import WebsimRateLimitError as WebsimRateLimitError
    from langchain_websim.errors import WebsimResponseError as WebsimResponseError
    from langchain_websim.errors import WebsimTimeoutError as WebsimTimeoutError
    from langchain_websim.tools import WebsimImageInput as WebsimImageInput
    from langchain_websim.tools import WebsimImageTool as WebsimImageTool

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ChatWebsim": "langchain_websim.chat_models",
    "WebsimImageTool": "langchain_websim.tools",
    "WebsimImageInput": "langchain_websim.tools",
    "WebsimClient": "langchain_websim._client",
    "RateTuning": "langchain_websim._rate_tuning",
    "WebsimChatResponse": "langchain_websim._responses",
    "WebsimImageResponse": "langchain_websim._responses",
    "WebsimError": "langchain_websim.errors",
    "WebsimAPIError": "langchain_websim.errors",
    "WebsimRateLimitError": "langchain_websim.errors",
    "WebsimBlockedError": "langchain_websim.errors",
    "WebsimConnectionError": "langchain_websim.errors",
    "WebsimTimeoutError": "langchain_websim.errors",
    "WebsimResponseError": "langchain_websim.errors",
    "run_batch": "langchain_websim.batch",
    "arun_batch": "langchain_websim.batch",
    "BatchSummary": "langchain_websim.batch",
    "BatchInputError": "langchain_websim.batch",
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
