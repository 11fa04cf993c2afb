"""Memory taken while an oversized image is refused, in each block form ChatWebsim accepts.

Usage::

    python benchmarks/refused_image_memory.py          # a 200 MB payload
    python benchmarks/refused_image_memory.py --mb 40  # a smaller one

For each form the payload is built first, then ``ChatWebsim.invoke`` is called (it refuses
the image before any request) under ``tracemalloc``: the figure is the peak traced memory
above what was held before the call, as a multiple of the payload.  LangChain's own base64
blocks cost one copy that is langchain-core's (it formats messages for its callbacks before
the model runs); the package's target is no copy of its own.
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections.abc import Callable
from typing import Any

from langchain_core.messages import HumanMessage

from langchain_websim import ChatWebsim

DATA_URL_HEAD = "data:image/png;base64,"

FORMS: dict[str, Callable[[str], dict[str, Any]]] = {
    "LangChain base64": lambda d: {"type": "image", "base64": d, "mime_type": "image/png"},
    "LangChain v0 base64": lambda d: {
        "type": "image",
        "source_type": "base64",
        "data": d,
        "mime_type": "image/png",
    },
    "Anthropic base64": lambda d: {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": d},
    },
    "OpenAI data URL": lambda d: {"type": "image_url", "image_url": {"url": DATA_URL_HEAD + d}},
    "LangChain data URL": lambda d: {"type": "image", "url": DATA_URL_HEAD + d},
}


def growth(llm: ChatWebsim, message: HumanMessage) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        try:
            llm.invoke([message])
        except ValueError:
            pass
        else:  # pragma: no cover - the image is over the limit by construction
            raise SystemExit("the oversized image was not refused")
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="payload size in MB (default: 200)")
    size = parser.parse_args().mb * 1_000_000
    llm = ChatWebsim(base_url="http://127.0.0.1:9")  # nothing is sent: refused before
    print(f"payload: {size / 1e6:.0f} MB of base64 text")
    for name, form in FORMS.items():
        message = HumanMessage(["what is this?", form("A" * size)])
        grew = growth(llm, message)
        print(f"{name:22} grew {grew / size:4.2f} x the payload ({grew / 1e6:6.0f} MB)")
        del message


if __name__ == "__main__":
    main()
