"""Finding JSON values in noisy model replies.

Models wrap JSON in Markdown fences, put prose before and after it, and sometimes write
text that merely looks like JSON.  ``langchain_core.utils.json.parse_json_markdown`` expects
the reply to be (almost) only the JSON, and its partial-JSON repair retries the parse once per
trailing character, so it fits neither prose around the value nor megabyte-sized replies.
This module scans instead: every ``{`` or ``[`` is a candidate start, decoded with
``json.JSONDecoder.raw_decode``; a decoded value is skipped over as a whole, so nothing inside
it is scanned twice.

Failed candidates are where naive scanning turns quadratic (``[[[[...`` or
``{"a": [1, [1, ...`` re-scanned from every bracket).  Each failure is charged the length it
made the decoder read, against a budget proportional to the text length; once the budget is
spent, the scan resumes after the point where the failed decode stopped instead of at the
next bracket.  Ordinary replies never exhaust the budget, and hostile ones cost a bounded
number of passes over the text: the whole scan is linear in the input size.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonSpan", "extract_json", "iter_json_spans", "loads_json"]

# Failed decodes may read this many characters per character of input before the scan
# switches to skipping past failures.
_BUDGET_PER_CHAR = 2
_BUDGET_FLOOR = 1 << 16
# Python refuses int() on longer digit strings; such numbers become floats instead of
# aborting the decode of the value around them.
_MAX_INT_DIGITS = 4000
_EXCERPT = 120

_OPENER = re.compile(r"[\[{]")
# A bracket that can start a JSON value: what follows must be a key, a value or the close.
# Filtering here keeps a reply full of stray braces from costing one decode per brace.
_CANDIDATE = re.compile(r'\{\s*["}]|\[\s*[\[{"\]\-0-9tfnNI]')
_FIRST_WINDOW = 512
# A decode error this close to the end of a window may be the window's fault (``tru|e``).
_TRUNCATION_SLACK = 8
# Between an opening fence and the value: an optional info string (``json``) and space.
_FENCE_GAP = re.compile(r"[^\S\n]*(?:[A-Za-z][\w+.-]*)?\s*")
_FENCE_CLOSE = re.compile(r"\s*```")
# How far back an opening fence may sit before the value it wraps.
_FENCE_LOOKBACK = 256


def _parse_int(digits: str) -> int | float:
    if len(digits) > _MAX_INT_DIGITS:
        return float(digits)
    return int(digits)


# strict=False: models put raw newlines and tabs inside string values (multi-line code,
# addresses); JSON forbids them, but refusing them would only throw the reply away.
_DECODER = json.JSONDecoder(parse_int=_parse_int, strict=False)


@dataclass(frozen=True, slots=True)
class JsonSpan:
    """A JSON object or array found in a text.

    ``start``/``end`` delimit the JSON itself; ``outer_start``/``outer_end`` also cover the
    Markdown fence around it when there is one (the part to cut when removing the value).
    """

    value: Any
    start: int
    end: int
    outer_start: int
    outer_end: int

    @property
    def fenced(self) -> bool:
        return self.outer_start != self.start


def loads_json(text: str) -> Any:
    """Decode one JSON document, raising ``ValueError`` for anything undecodable.

    Unlike ``json.loads`` this never raises ``RecursionError`` (pathologically nested input)
    and accepts raw control characters inside strings, like the scanner below.
    """
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


def iter_json_spans(text: str) -> Iterator[JsonSpan]:
    """Yield every top-level JSON object or array in ``text``, left to right.

    Values nested inside a decoded value are not reported separately.  Never raises.
    """
    budget = _BUDGET_PER_CHAR * len(text) + _BUDGET_FLOOR
    pos = 0
    while True:
        match = _CANDIDATE.search(text, pos)
        if match is None:
            return
        start = match.start()
        outcome = _decode_at(text, start)
        if isinstance(outcome, _Failure):
            budget -= outcome.cost
            pos = max(outcome.resume, start + 1) if budget < 0 else start + 1
            continue
        value, end = outcome
        outer_start, outer_end = _fence_around(text, start, end)
        yield JsonSpan(value, start, end, outer_start, outer_end)
        pos = end


@dataclass(frozen=True, slots=True)
class _Failure:
    cost: int  # characters the decoder read before giving up
    resume: int  # first position not yet known to belong to the failed attempt


def _decode_at(text: str, start: int) -> tuple[Any, int] | _Failure:
    """Decode the value starting at ``start``, reading only as much text as it needs.

    The decoder works on a window of the text that grows only while the value runs past
    it: decoding in place would make every failure cost O(start), because
    ``JSONDecodeError`` counts the lines before the error position.
    """
    size = len(text)
    window = _FIRST_WINDOW
    while True:
        stop = min(size, start + window)
        chunk = text[start:stop]
        try:
            value, end = _DECODER.raw_decode(chunk)
        except RecursionError:
            # The decoder went about recursion-limit brackets deep without an error.
            reached = _nth_opener(text, start, sys.getrecursionlimit())
            return _Failure(cost=reached - start, resume=reached)
        except json.JSONDecodeError as exc:
            unterminated = exc.msg.startswith("Unterminated string")
            if stop < size and (unterminated or exc.pos >= len(chunk) - _TRUNCATION_SLACK):
                window *= 4  # the value may just run past the window
                continue
            if unterminated:
                # Reported at the string's start, but the decoder read to the end of the
                # text; no unescaped quote follows, so no later string can start there.
                return _Failure(cost=size - start, resume=start + exc.pos + 1)
            return _Failure(cost=exc.pos + 1, resume=start + exc.pos)
        return value, start + end


def extract_json(text: str) -> Any:
    """Return the JSON object or array a reply carries.

    The first value that fills a Markdown fence (```` ```json ```` or bare ```` ``` ````)
    wins, otherwise the first bare object/array; prose before and after is ignored.
    Raises ``ValueError`` when the text holds none.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_json expects a str, got {type(text).__name__}")
    first: JsonSpan | None = None
    for span in iter_json_spans(text):
        if span.fenced:
            return span.value
        if first is None:
            first = span
    if first is not None:
        return first.value
    excerpt = text.strip()
    if len(excerpt) > _EXCERPT:
        excerpt = excerpt[:_EXCERPT] + "..."
    raise ValueError(f"no JSON object or array found in the text: {excerpt!r}")


def _nth_opener(text: str, start: int, count: int) -> int:
    """Position of the ``count``-th bracket at or after ``start`` (or the end of the text)."""
    for index, match in enumerate(_OPENER.finditer(text, start)):
        if index == count:
            return match.start()
    return len(text)


def _fence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the Markdown fence wrapping ``text[start:end]``, or the value's own span."""
    close = _FENCE_CLOSE.match(text, end)
    if close is None:
        return start, end
    head = text.rfind("```", max(0, start - _FENCE_LOOKBACK), start)
    if head < 0 or _FENCE_GAP.fullmatch(text, head + 3, start) is None:
        return start, end
    return head, close.end()
