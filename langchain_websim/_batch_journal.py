"""A batch's journal: one JSON line per finished call, appended as it finishes, fsynced.

The first line is a header naming the kind of batch, so a rerun can tell its own journal
from any other file: a file that is not a journal of the same kind is refused and never
written to.  The last line may be cut off when the process was killed while writing it;
that line is removed on resume and its call made again.  Lines are only ever appended, so
an id may appear more than once (a retried failure): its last line is its outcome.

Appends are group-committed: the lines finished while the previous write and fsync ran go
out together in one write and one fsync, off the event loop.  A call counts as finished
only once its line is on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_websim._batch_input import Kind

__all__ = ["HEADER_KEY", "Journal", "JournalState", "read_journal"]

HEADER_KEY = "websim_batch_journal"
VERSION = 1


def header(kind: Kind) -> dict[str, Any]:
    return {HEADER_KEY: VERSION, "kind": kind}


@dataclass(slots=True)
class JournalState:
    """What an existing journal says: ids whose last line is ok, and those that failed."""

    ok: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    torn: bool = False
    """The last line was cut off; it is removed when the journal is opened for writing."""
    keep: int = 0
    """Bytes of complete lines: the journal is cut to this length before appending."""

    def record(self, call_id: str, ok: bool) -> None:
        if ok:
            self.ok.add(call_id)
            self.failed.discard(call_id)
        else:
            self.failed.add(call_id)
            self.ok.discard(call_id)


def read_journal(path: Path, kind: Kind) -> JournalState:
    """Read ``path`` if it exists; refuse a foreign file; find a torn last line.

    Raises ``ValueError`` (naming the file and the problem) for anything that is not a
    journal of a ``kind`` batch.  Nothing is written here: the torn line is cut off only
    when the journal is opened for appending (after the input was found good).
    """
    state = JournalState()
    if not path.exists():
        return state
    if path.is_dir():
        raise ValueError(f"output {path} is a directory; give a file name such as results.jsonl")
    keep = 0  # bytes of complete, valid lines
    with path.open("rb") as journal:
        for number, raw, end in _raw_lines(journal):
            entry = _parse(raw) if raw.endswith(b"\n") else None
            if entry is None and end == path.stat().st_size and _may_be_torn(raw, number, kind):
                state.torn = True  # the last write was cut off: drop it, redo its call
                break
            if number == 1:
                _check_header(path, entry, kind)
            elif not _is_entry(entry):
                raise ValueError(
                    f"line {number} of {path} is not a journal entry; the file was changed by "
                    "something else (it was left as it is)"
                )
            else:
                assert entry is not None
                state.record(str(entry["id"]), entry["ok"])
            keep = end
    state.keep = keep
    return state


def _raw_lines(journal: Any) -> Iterator[tuple[int, bytes, int]]:
    """``(line number, bytes with the newline, offset just past them)``."""
    end = 0
    for number, raw in enumerate(journal, 1):
        end += len(raw)
        yield number, raw, end


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _may_be_torn(raw: bytes, number: int, kind: Kind) -> bool:
    # Only a cut-off line is forgiven, never a foreign first line: a header cut off has to
    # be the start of this kind's header.
    if number > 1:
        return not raw.endswith(b"\n") or _parse(raw) is None
    return _encode(header(kind)).startswith(raw) and raw != _encode(header(kind))


def _check_header(path: Path, entry: dict[str, Any] | None, kind: Kind) -> None:
    if entry is None or entry.get(HEADER_KEY) is None:
        raise ValueError(
            f"output {path} exists and is not a websim batch journal; give a new file name "
            "(the file was left as it is)"
        )
    if entry.get(HEADER_KEY) != VERSION:
        raise ValueError(
            f"output {path} is a websim batch journal of version {entry.get(HEADER_KEY)!r}, "
            f"this version reads {VERSION}; give a new file name"
        )
    if entry.get("kind") != kind:
        raise ValueError(
            f"output {path} is the journal of a batch of {entry.get('kind')} calls, not of "
            f"{kind} calls; give a new file name (the file was left as it is)"
        )


def _is_entry(entry: dict[str, Any] | None) -> bool:
    return (
        entry is not None and isinstance(entry.get("id"), str) and isinstance(entry.get("ok"), bool)
    )


def _encode(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode("utf-8")


class Journal:
    """The open journal: ``await append(entry)`` returns once the line is on disk."""

    def __init__(self, path: Path, kind: Kind, keep: int = 0) -> None:
        """Open ``path`` for appending, cut to ``keep`` bytes (``JournalState.keep``)."""
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        if os.fstat(self._fd).st_size != keep:
            os.ftruncate(self._fd, keep)  # a line torn by a kill: its call is made again
        if keep == 0:
            self._write(_encode(header(kind)))
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def append(self, entry: dict[str, Any]) -> None:
        """Append one line; return when it is written and fsynced."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((_encode(entry), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a caller cancelled now does not take back a line being written.
        await asyncio.shield(done)

    async def drain(self) -> None:
        """Wait until every line handed to ``append`` is on disk."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, b"".join(data for data, _ in batch))
            except OSError as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
