"""Past assistant turns, whoever wrote them, as the text Websim can take.

A conversation may have been started by another model (``with_fallbacks``, a fallback
middleware, switching models mid-thread) or by ``ChatWebsim`` itself drawing with ``flux``.
Its assistant turns then hold blocks Websim has no wire form for.  What the caller sends
*now* is checked strictly (``_messages``); what a model already said is history, so it is
carried as well as Websim can take it and never refused for its shape:

- visible text is kept (citations and annotations are metadata, dropped), and so is a
  refusal's text;
- hidden reasoning (``reasoning`` / ``thinking`` / ``redacted_thinking`` blocks, encrypted
  reasoning items) is dropped: it was never meant to be shown, let alone sent to another
  model;
- server-side tool blocks (a provider's own web search or code execution: its calls, its
  results) are dropped; the answer's text that used them stays;
- images and other media become a line of text that keeps the URL (``[image: <url>]``),
  or only names inline data (base64 is never replayed); an image whose URL the text
  already holds (``ChatWebsim``'s own ``flux`` answers) adds nothing;
- tool calls are skipped here: the caller renders them from ``tool_calls`` through the
  prompt protocol.

Blocks are read through langchain-core's ``content_blocks``, which translates every
provider's format (OpenAI Chat Completions and Responses, Anthropic, Google GenAI...) into
the standard block types, so this module only handles those.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage

__all__ = ["assistant_text"]

logger = logging.getLogger(__name__)

# Standard block types that restate the message's tool calls, rendered from ``tool_calls``.
_CALL_BLOCKS = frozenset({"tool_call", "tool_call_chunk", "invalid_tool_call"})
_MEDIA_BLOCKS = frozenset({"image", "audio", "video", "file", "text-plain"})


def assistant_text(message: BaseMessage) -> str:
    """The visible text of a past assistant turn, with media as placeholder lines."""
    if isinstance(message.content, str):
        # Text is all a string holds (reasoning and provider data live in metadata, which is
        # never sent); the common case skips the block translation.
        return message.content
    visible = message.text
    pieces: list[tuple[bool, str]] = []  # (is a line of its own, text)
    dropped: list[str] = []
    for block in _standard_blocks(message):
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            pieces.append((False, block["text"]))
        elif kind == "refusal" and isinstance(block.get("refusal"), str):
            pieces.append((True, block["refusal"]))
        elif kind in _MEDIA_BLOCKS:
            line = _media_line(block, visible)
            if line is not None:
                pieces.append((True, line))
        elif kind not in _CALL_BLOCKS:
            # reasoning, server_tool_call(_chunk), server_tool_result, and non_standard
            # provider blocks (redacted thinking, encrypted items...): never replayed
            dropped.append(_block_name(block))
    if dropped:
        logger.debug("a past %s turn is replayed without its %s blocks", message.type, dropped)
    return _joined(pieces)


def _standard_blocks(message: BaseMessage) -> list[Mapping[str, Any]]:
    """``message.content_blocks``; a provider translator that fails on an unusual block
    falls back to langchain-core's best-effort reading, so history is never refused."""
    try:
        blocks = message.content_blocks
    except Exception:  # any translator failure: read the blocks the generic way
        blocks = BaseMessage.content_blocks.fget(message)  # type: ignore[attr-defined]
    return [block for block in blocks if isinstance(block, Mapping)]


def _joined(pieces: list[tuple[bool, str]]) -> str:
    """Adjacent text blocks are pieces of one text (as in ``message.text``); a placeholder
    or a refusal stands on a line of its own."""
    out = ""
    after_line = False
    for is_line, text in pieces:
        if out and (is_line or after_line) and not out.endswith("\n"):
            out += "\n"
        out += text
        after_line = is_line
    return out


def _media_line(block: Mapping[str, Any], text: str) -> str | None:
    """One line standing for a media block; ``None`` when the text already holds its URL."""
    kind = str(block["type"])
    url = block.get("url")
    if isinstance(url, str) and not url.startswith("data:"):
        return None if url in text else f"[{kind}: {url}]"
    mime = block.get("mime_type")
    if isinstance(url, str):  # a data URL: name its type, never replay the data
        mime = url[5:].split(";", 1)[0].split(",", 1)[0] or mime
    if isinstance(block.get("file_id"), str):
        return f"[{kind}: file {block['file_id']}]"
    described = f"{mime} " if isinstance(mime, str) and mime else ""
    return f"[{kind}: inline {described}data, not replayed]"


def _block_name(block: Mapping[str, Any]) -> str:
    value = block.get("value")
    if block.get("type") == "non_standard" and isinstance(value, Mapping):
        return str(value.get("type"))  # the provider's own block type
    return str(block.get("type"))
