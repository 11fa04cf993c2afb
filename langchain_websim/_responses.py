"""What a ``WebsimClient`` call returns: ``WebsimChatResponse`` and ``WebsimImageResponse``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from langchain_websim._download import writable_path, write_file
from langchain_websim._image_options import IMAGE_OPTION_NAMES, ImageOptionValues
from langchain_websim._requests import ImageRequest

__all__ = ["WebsimChatResponse", "WebsimImageResponse"]

T = TypeVar("T")


class Downloader(Protocol):
    """What saving an image needs of a ``WebsimClient`` (named here to avoid a cycle)."""

    settings: Any

    @property
    def closed(self) -> bool: ...
    @classmethod
    def shared_for(cls, settings: Any) -> Self: ...
    async def adownload(self, url: str) -> bytes: ...
    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T: ...


@dataclass(frozen=True, slots=True)
class WebsimChatResponse:
    """A chat answer: ``text`` is the stripped ``content`` the service returned."""

    text: str
    project_id: str
    attempts: int
    elapsed: float
    rate_wait: float = 0.0
    """Seconds the call waited for the adaptive rate control (not counted as attempts)."""


@dataclass(frozen=True, slots=True)
class WebsimImageResponse(ImageOptionValues):
    """A generated image: ``url`` is the absolute http(s) URL the service returned.

    The image options that were sent are echoed as fields of the same names (``None``: not
    sent); ``options`` has the ones that were.  ``save(path)`` / ``await asave(path)``
    download the image to a file.
    """

    url: str
    prompt: str
    aspect_ratio: str
    project_id: str
    attempts: int
    elapsed: float
    rate_wait: float = 0.0
    client: Downloader | None = field(default=None, kw_only=True, repr=False, compare=False)
    """The ``WebsimClient`` that generated the image; ``save`` downloads through it."""

    @classmethod
    def for_request(
        cls,
        request: ImageRequest,
        url: str,
        timing: tuple[int, float, float],
        client: Downloader,
    ) -> WebsimImageResponse:
        """``timing``: attempts, elapsed seconds, seconds waited for the rate control."""
        project_id = request.project_id
        assert project_id is not None  # drawn or checked when the request was built
        return cls(
            url,
            request.prompt,
            request.aspect_ratio,
            project_id,
            *timing,
            # As the request holds them: image_inputs stays a tuple, so the response hashes.
            **{name: getattr(request, name) for name in IMAGE_OPTION_NAMES},
            client=client,
        )

    def save(self, path: str | os.PathLike[str], *, client: Downloader | None = None) -> Path:
        """Download the image and write it to ``path`` (replaced whole); return the path.

        The download goes through ``client`` or the client that generated the image (if
        that one is closed, the shared client with its settings); it is capped at 20 MiB
        and raises the typed ``Websim*`` errors.  The path is checked before downloading.
        """
        target = writable_path(path)
        downloader = self._downloader(client)
        data = downloader.run_sync(downloader.adownload(self.url))
        write_file(target, data)
        return target

    async def asave(
        self, path: str | os.PathLike[str], *, client: Downloader | None = None
    ) -> Path:
        """Async twin of :meth:`save`; the file is written off the event loop."""
        target = writable_path(path)
        data = await self._downloader(client).adownload(self.url)
        await asyncio.to_thread(write_file, target, data)
        return target

    def __reduce__(self) -> tuple[Any, ...]:
        # A client is a pool and a thread (and may hold an SSL context): a pickled response
        # travels without it, and ``save`` then needs ``client=``.
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "client"}
        return (_image_response, (values,))

    def _downloader(self, client: Downloader | None) -> Downloader:
        if client is not None:
            return client
        if self.client is None:
            raise ValueError(
                "this WebsimImageResponse was not made by a WebsimClient; pass "
                "client=WebsimClient(...) to save it"
            )
        if self.client.closed:
            # Closing the client that made an image should not make the image unsaveable.
            return type(self.client).shared_for(self.client.settings)
        return self.client


def _image_response(values: dict[str, Any]) -> WebsimImageResponse:
    return WebsimImageResponse(**values)
