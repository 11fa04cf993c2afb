"""A batch's input: one call per line, read as a stream and checked before anything is sent.

The input is a JSONL file (one object per line: an optional ``id``, ``prompt`` or
``messages``, per-line options) or a plain text file (one prompt per line), or a list of
the same in Python.  It is read twice, never held whole: once to check every line (so bad
input is refused with nothing sent) and once to run it.  A stream that cannot be read twice
(standard input) is copied to a temporary file on the first pass.

The per-line options are not declared here: a chat line's are ``ChatWebsim`` fields,
checked by ``ChatWebsim`` itself; an image line's are ``ImageRequest`` fields, checked by
``ImageRequest``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

from pydantic import ValidationError

from langchain_websim import _wire
from langchain_websim._image_options import IMAGE_OPTIONS
from langchain_websim._requests import ChatRequest, ImageRequest

__all__ = [
    "KINDS",
    "MAX_SHOWN",
    "BatchInputError",
    "BatchLine",
    "BatchSource",
    "ChatCall",
    "InputFormat",
    "Kind",
    "check_defaults",
    "check_input",
    "image_stem",
]

Kind: TypeAlias = Literal["chat", "image"]
InputFormat: TypeAlias = Literal["auto", "jsonl", "text"]
KINDS: tuple[Kind, ...] = ("chat", "image")
MAX_SHOWN = 10
"""Input problems named one by one; the rest are counted."""

# What a chat line may set besides its text: ChatWebsim fields that make sense per call
# (the connection settings belong to the whole batch, tools have no batch form).
CHAT_LINE_OPTIONS = ("model", "stop", "json_mode")
# An image line may set the aspect ratio and every image option (ImageRequest checks them).
IMAGE_LINE_OPTIONS = ("aspect_ratio", *(option.name for option in IMAGE_OPTIONS))
_TEXT_KEYS = ("prompt", "messages", "system")
_LINE_KEYS: dict[Kind, tuple[str, ...]] = {
    "chat": ("id", *_TEXT_KEYS, *CHAT_LINE_OPTIONS),
    "image": ("id", "prompt", *IMAGE_LINE_OPTIONS),
}
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class ChatCall:
    """One chat call: LangChain-style ``{"role", "content"}`` messages and ``ChatWebsim``
    keyword arguments (the command line's defaults with the line's own options on top)."""

    messages: list[dict[str, Any]]
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One checked line: where it is, its id, and the call it asks for."""

    line: int
    """1-based line number in the input file (the item number for a list)."""
    id: str
    call: ChatCall | ImageRequest


class BatchInputError(ValueError):
    """The input has problems; nothing was sent.

    ``problems`` holds the first ``MAX_SHOWN`` as ``(line number, what is wrong)``;
    ``count`` is how many there are in all.
    """

    def __init__(self, source: str, problems: list[tuple[int, str]], count: int) -> None:
        self.source = source
        self.problems = problems
        self.count = count
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """The report, one line per problem, headed by the count."""
        noun = "problem" if self.count == 1 else "problems"
        head = f"{self.source} has {self.count} {noun}; nothing was sent:"
        shown = [f"line {line}: {problem}" for line, problem in self.problems]
        more = self.count - len(self.problems)
        return [head, *shown, *([f"... and {more} more"] if more else [])]


def image_stem(call_id: str) -> str:
    """The file name (without suffix) an image line is saved under.

    An id that is already a plain file name is used as it is; any other gets its unsafe
    characters replaced and a short hash of the id added, so two ids never share a file.
    """
    if _SAFE_STEM.match(call_id) and not call_id.endswith("."):
        return call_id
    digest = hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:10]
    cleaned = _UNSAFE_CHARS.sub("_", call_id).strip("._")[:80]
    return f"{cleaned}-{digest}" if cleaned else f"id-{digest}"


# --------------------------------------------------------------------------- the source


class BatchSource:
    """Where the lines come from: a file path, a readable stream, or a list.

    ``lines()`` can be called more than once; a stream is copied to a temporary file the
    first time (closed by ``close()``).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | IO[str] | Sequence[str | Mapping[str, Any]],
        input_format: InputFormat = "auto",
    ) -> None:
        if input_format not in ("auto", "jsonl", "text"):
            raise ValueError(
                f"input_format must be 'auto', 'jsonl' or 'text', got {input_format!r}"
            )
        self._format = input_format
        self._path: Path | None = None
        self._stream: IO[str] | None = None
        self._items: Sequence[str | Mapping[str, Any]] | None = None
        self._spool: IO[str] | None = None
        if isinstance(source, (str, os.PathLike)):
            self._path = Path(source).expanduser()
            if not self._path.is_file():
                raise ValueError(f"input {source} is not a readable file")
            self.name = str(source)
        elif isinstance(source, io.IOBase) or hasattr(source, "readline"):
            self._stream = source  # type: ignore[assignment]
            self.name = getattr(source, "name", "the input")
            if not isinstance(self.name, str) or self.name == "<stdin>":
                self.name = "standard input"
        elif isinstance(source, Sequence):
            self._items = source
            self.name = "the input list"
        else:
            raise TypeError(
                "input must be a file path, a readable text stream, or a list of prompts or "
                f"line objects, got {type(source).__name__}"
            )

    @property
    def path(self) -> Path | None:
        """The input file, when the input is one."""
        return self._path

    def lines(self) -> Iterator[tuple[int, str | Mapping[str, Any]]]:
        """``(line number, text or object)`` for every non-blank line."""
        if self._items is not None:
            for number, item in enumerate(self._items, 1):
                yield number, item
            return
        with self._open() as text:
            jsonl = self._format == "jsonl"
            decided = self._format != "auto"
            for number, raw in enumerate(text, 1):
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                if not decided:
                    jsonl, decided = line.lstrip().startswith("{"), True
                yield number, (_Json(line) if jsonl else line)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _open(self) -> contextlib.AbstractContextManager[IO[str]]:
        if self._path is not None:
            return self._path.open(encoding="utf-8", newline="")
        if self._spool is None:
            assert self._stream is not None
            # Read once, kept on disk: the input is never held in memory whole.
            stream = self._stream
            # Closed by close(), after the last pass.
            spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115
            for chunk in iter(lambda: stream.read(1 << 16), ""):
                spool.write(chunk)
            self._spool = spool
        self._spool.seek(0)
        return contextlib.nullcontext(self._spool)  # kept open for the next pass


class _Json(str):
    """A line of a JSONL input, still to be parsed."""

    __slots__ = ()


# --------------------------------------------------------------------------- one line


def parse_line(
    kind: Kind, number: int, item: str | Mapping[str, Any], defaults: Mapping[str, Any]
) -> BatchLine:
    """Check one line and build its call; ``ValueError`` names what is wrong."""
    if isinstance(item, _Json):
        try:
            fields = json.loads(item)
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise ValueError("malformed JSON: nested too deeply") from None
        if not isinstance(fields, dict):
            raise ValueError(f"expected a JSON object, got {type(fields).__name__}")
    elif isinstance(item, str):
        fields = {"prompt": item}
    elif isinstance(item, Mapping):
        fields = dict(item)
    else:
        raise ValueError(f"expected a prompt or an object, got {type(item).__name__}")
    unknown = sorted(str(key) for key in fields if key not in _LINE_KEYS[kind])
    if unknown:
        article = "an" if kind == "image" else "a"
        raise ValueError(
            f"unknown option {', '.join(map(repr, unknown))} ({article} {kind} line takes "
            f"{', '.join(_LINE_KEYS[kind])})"
        )
    call_id = _line_id(fields.pop("id", None), number)
    build = _chat_call if kind == "chat" else _image_call
    return BatchLine(number, call_id, build(fields, defaults))


def check_defaults(kind: Kind, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The options every line starts from: names a line takes, except its id and text."""
    if not isinstance(defaults, Mapping):
        raise TypeError(f"options must be a mapping of option names to values, got {defaults!r}")
    allowed = [key for key in _LINE_KEYS[kind] if key not in ("id", "prompt", "messages")]
    unknown = sorted(str(key) for key in defaults if key not in allowed)
    if unknown:
        raise ValueError(
            f"unknown option {', '.join(map(repr, unknown))} for a {kind} batch (the options "
            f"are {', '.join(allowed)})"
        )
    # Checked once here, so a bad default is one problem rather than one per line.
    build = _chat_call if kind == "chat" else _image_call
    try:
        build({"prompt": "a prompt"}, defaults)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the options for every line: {exc}") from None
    return dict(defaults)


def _line_id(value: Any, number: int) -> str:
    if value is None:
        return str(number)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        shown = _wire.excerpt(repr(value), 60)
        raise ValueError(f"id must be a string or a whole number, got {shown}")
    text = str(value)
    if not text.strip() or any(ord(c) < 32 for c in text):
        raise ValueError(f"id must be non-empty, without control characters, got {text!r}")
    return text


def _chat_call(fields: dict[str, Any], defaults: Mapping[str, Any]) -> ChatCall:
    from langchain_core.messages import convert_to_messages

    from langchain_websim._messages import convert_messages
    from langchain_websim.chat_models import ChatWebsim

    messages = _chat_messages(fields, defaults)
    options = {
        name: fields[name] if name in fields else defaults[name]
        for name in CHAT_LINE_OPTIONS
        if name in fields or name in defaults
    }
    try:
        model = ChatWebsim(**options)
    except ValidationError as exc:
        raise ValueError(_pydantic_problem(exc)) from None
    if _wire.is_image_model(model.model):
        raise ValueError(
            f"model {model.model!r} generates images; use a batch of kind 'image' for those"
        )
    try:
        wire = convert_messages(convert_to_messages(messages))
    except (TypeError, NotImplementedError) as exc:
        raise ValueError(f"messages: {exc}") from None
    ChatRequest(wire, None, model.json_mode is True)  # the send path's own checks
    return ChatCall(messages, options)


def _chat_messages(fields: dict[str, Any], defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    prompt, messages = fields.get("prompt"), fields.get("messages")
    if (prompt is None) == (messages is None):
        raise ValueError(
            "give either 'prompt' or 'messages'"
            if prompt is None
            else "give 'prompt' or 'messages', not both"
        )
    if prompt is not None:
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        messages = [{"role": "user", "content": prompt}]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("messages must be a list of {'role': ..., 'content': ...} objects")
    system = fields.get("system", defaults.get("system"))
    if system is None:
        return list(messages)
    if not isinstance(system, str):
        raise ValueError(f"system must be a string, got {type(system).__name__}")
    return [{"role": "system", "content": system}, *messages]


def _image_call(fields: dict[str, Any], defaults: Mapping[str, Any]) -> ImageRequest:
    if "prompt" not in fields:
        raise ValueError("give a 'prompt' (what to draw)")
    options = {name: defaults[name] for name in IMAGE_LINE_OPTIONS if name in defaults}
    options.update({name: fields[name] for name in IMAGE_LINE_OPTIONS if name in fields})
    try:
        return ImageRequest(fields["prompt"], **options)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _pydantic_problem(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


# --------------------------------------------------------------------------- the whole input


@dataclass(frozen=True, slots=True)
class InputReport:
    """What the checking pass found: every line is good, and these are its ids."""

    ids: frozenset[str]


def check_input(kind: Kind, source: BatchSource, defaults: Mapping[str, Any]) -> InputReport:
    """Read every line once; raise ``BatchInputError`` naming the problems, if any.

    Ids are unique, and for images so are the file names they are saved under (compared
    without case, for file systems that ignore it).
    """
    seen: dict[str, int] = {}
    stems: dict[str, tuple[int, str]] = {}
    problems: list[tuple[int, str]] = []
    count = 0
    for number, item in source.lines():
        problem = None
        try:
            line = parse_line(kind, number, item, defaults)
        except (ValueError, TypeError) as exc:
            problem = str(exc)
        else:
            problem = _clash(line, seen, stems, kind)
        if problem is not None:
            count += 1
            if len(problems) < MAX_SHOWN:
                problems.append((number, problem))
    if count:
        raise BatchInputError(source.name, problems, count)
    if not seen:
        raise ValueError(f"{source.name} has no lines to run (it is empty or only blank lines)")
    return InputReport(frozenset(seen))


def _clash(
    line: BatchLine, seen: dict[str, int], stems: dict[str, tuple[int, str]], kind: Kind
) -> str | None:
    first = seen.setdefault(line.id, line.line)
    if first != line.line:
        return f"duplicate id {line.id!r} (first on line {first})"
    if kind == "image":
        stem = image_stem(line.id).casefold()
        other = stems.setdefault(stem, (line.line, line.id))
        if other[0] != line.line:
            return (
                f"id {line.id!r} would be saved under the same file name as id {other[1]!r} "
                f"(line {other[0]})"
            )
    return None
