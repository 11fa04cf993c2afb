"""How ``ChatWebsim`` and ``WebsimImageTool`` hold their ``WebsimClient``.

Both inherit the connection settings as fields (``ConnectionSettings``, defined once) plus
an optional explicit ``client``.  A client is a connection pool with a loop thread: it is
resolved lazily (construction never touches the network), shared between copies like a
rate limiter, and never pickled as a pool -- the settings cross a pickle, and the copy gets
the receiving process's shared client for them.  An explicit client's settings are mirrored
into the fields, so what the object reports is what it uses, and pickles keep it.  Settings
are checked when assigned, and a changed one applies from the next call (the client is
resolved again); with an explicit client, assigning a different setting is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Self, cast

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from langchain_websim._client import WebsimClient
from langchain_websim._settings import SETTING_NAMES, ConnectionSettings, WebsimSettings

__all__ = ["ClientOwner"]

# What the lazily resolved client depends on.
_RESOLVED_FROM = frozenset({*SETTING_NAMES, "client"})


class ClientOwner(ConnectionSettings):
    """The connection settings, an optional explicit ``client``, and their resolution."""

    client: WebsimClient | None = Field(default=None, exclude=True)
    """An explicit client to share; by default the process-wide one for the settings."""

    _shared_client: WebsimClient | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _mirror_client_settings(self) -> Self:
        client = self.client
        if client is None:
            return self
        for name in SETTING_NAMES:
            actual = getattr(client.settings, name)
            if name in self.model_fields_set and getattr(self, name) != actual:
                shown = "<hidden>" if name == "proxy" else repr(getattr(self, name))
                raise ValueError(
                    f"{name}={shown} conflicts with the explicit client's setting; configure "
                    "one or the other (the client already carries its connection settings)"
                )
            # Not via setattr: that would mark the field as set by the caller.
            self.__dict__[name] = actual
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _own_fields(type(self)):
            # This package's fields are checked as in the constructor (the field's checks,
            # then the model's), so ``llm.max_retries = -3`` raises and changes nothing.
            # Not frozen fields: LangChain objects are configured by assigning them.  Not
            # pydantic's ``validate_assignment`` either: it would cover LangChain's own
            # fields too, and LangChain's validators assign fields (``profile``), which
            # would then validate, and assign, again without end.
            type(self).__pydantic_validator__.validate_assignment(self, name, value)
        else:
            super().__setattr__(name, value)
        if name in _RESOLVED_FROM:
            # A changed setting or client applies from the next call on: the client
            # resolved for the old settings stays with whoever else shares it.
            self._shared_client = None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        if update and not _RESOLVED_FROM.isdisjoint(update):
            # pydantic's ``update`` skips validation: assigning the changed settings again
            # checks them (and resolves the client again on the next call).
            for name in _RESOLVED_FROM.intersection(update):
                setattr(copied, name, getattr(copied, name))
        return copied

    def _websim_client(self) -> WebsimClient:
        if self.client is not None:
            return self.client
        client = self._shared_client
        if client is None or client.closed:
            settings = WebsimSettings.model_construct(**self.connection_settings())
            client = self._shared_client = WebsimClient.shared_for(settings)
        return client

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        # Copies share the client (and an SSL context, which cannot be copied), as they
        # would share a rate limiter: a copy is the same configuration, not a new pool.
        memo = {} if memo is None else memo
        for shared in (self.client, self._shared_client, self.ssl_context):
            if shared is not None:
                memo[id(shared)] = shared
        copy: Self = cast(Any, super()).__deepcopy__(memo)
        return copy

    def __getstate__(self) -> dict[Any, Any]:
        self.check_picklable(f"this {type(self).__name__}")
        # An explicit client pickles as its settings (``WebsimClient.__reduce__``) and
        # arrives as the receiving process's shared client for them; the lazily resolved
        # one is resolved again there on first use.
        state: dict[Any, Any] = dict(cast(Any, super()).__getstate__())
        # pydantic hands out the live __dict__: copy it, or subclasses editing the state
        # would edit the object being pickled.
        state["__dict__"] = dict(state["__dict__"])
        private = dict(state.get("__pydantic_private__") or {})
        private["_shared_client"] = None
        state["__pydantic_private__"] = private
        return state


@functools.cache
def _own_fields(cls: type[BaseModel]) -> frozenset[str]:
    """The fields of ``cls`` that this package adds (not LangChain's, even with our defaults)."""
    ours = [base for base in cls.__mro__ if base.__module__.startswith("langchain_websim.")]
    theirs = [
        base
        for base in cls.__mro__
        if issubclass(base, BaseModel) and not base.__module__.startswith("langchain_websim.")
    ]
    declared = {name for base in ours for name in getattr(base, "__annotations__", {})}
    inherited = {name for base in theirs for name in base.model_fields}
    return frozenset((declared & set(cls.model_fields)) - inherited)
