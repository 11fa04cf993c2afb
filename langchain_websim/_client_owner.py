"""How ``ChatWebsim`` and ``WebsimImageTool`` hold their ``WebsimClient``.

Both carry the same connection fields and an optional explicit ``client``.  A client is a
connection pool with a loop thread: it is resolved lazily (construction never touches the
network), shared between copies like a rate limiter, and never pickled -- only its
configuration crosses a pickle, and the copy gets the process-wide client for it.
"""

from __future__ import annotations

from typing import Any, Self, cast

from langchain_websim._client import WebsimClient

CONNECTION_FIELDS = (
    "base_url",
    "timeout",
    "max_retries",
    "retry_base_delay",
    "retry_max_delay",
    "proxy",
)

_PICKLED_CONFIG = "websim_client_config"


def client_config(client: WebsimClient) -> dict[str, Any]:
    """Everything needed to get an equivalent client from ``WebsimClient.shared``."""
    return {
        "base_url": client.base_url,
        "timeout": client.timeout,
        "max_retries": client.max_retries,
        "retry_base_delay": client.retry.base_delay,
        "retry_max_delay": client.retry.max_delay,
        "proxy": client.proxy,
        "headers": dict(client.headers),
        "max_connections": client.max_connections,
    }


class ClientOwner:
    """Mixin for pydantic models with the connection fields, ``client`` and a private
    ``_shared_client`` attribute (declared by each model: pydantic needs it there)."""

    client: WebsimClient | None
    _shared_client: WebsimClient | None
    base_url: str | None
    timeout: float
    max_retries: int
    retry_base_delay: float
    retry_max_delay: float
    proxy: str | None

    def _websim_client(self) -> WebsimClient:
        if self.client is not None:
            return self.client
        client = self._shared_client
        if client is None or client.closed:
            client = self._shared_client = WebsimClient.shared(
                self.base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
                retry_base_delay=self.retry_base_delay,
                retry_max_delay=self.retry_max_delay,
                proxy=self.proxy,
            )
        return client

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        memo = {} if memo is None else memo
        for client in (self.client, self._shared_client):
            if client is not None:
                memo[id(client)] = client
        copy: Self = cast(Any, super()).__deepcopy__(memo)
        return copy

    def __getstate__(self) -> dict[Any, Any]:
        state: dict[Any, Any] = dict(cast(Any, super()).__getstate__())
        fields = dict(state["__dict__"])
        client = fields.get("client")
        if isinstance(client, WebsimClient):
            state[_PICKLED_CONFIG] = client_config(client)
            fields["client"] = None
        state["__dict__"] = fields
        private = dict(state.get("__pydantic_private__") or {})
        private["_shared_client"] = None
        state["__pydantic_private__"] = private
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        cast(Any, super()).__setstate__(state)
        config = state.get(_PICKLED_CONFIG)
        if config is not None:
            self.__dict__["client"] = WebsimClient.shared(**config)
