"""``websim batch chat|image``: a bulk job from a file, journaled, resumable, with progress.

The command is a thin shell over ``langchain_websim.batch.run_batch``: it turns flags into
the defaults of every line, prints the summary, and maps the outcome to an exit code (0 all
done, 1 some calls failed, 2 bad input, 130 interrupted -- rerun to continue).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from langchain_websim._cli_common import (
    EXIT_OK,
    EXIT_SERVICE,
    add_image_flags,
    image_options_from_flags,
)

__all__ = ["EXIT_INTERRUPTED", "add_batch_command", "prepare_batch"]

EXIT_INTERRUPTED = 130
"""128 + SIGINT, as a shell reports a command stopped with Ctrl-C."""

Job = Callable[[argparse.Namespace, str], int]
MakeCommand = Callable[[Any, str, str, str], argparse.ArgumentParser]

_DESCRIPTION = (
    "Run one call per line of INPUT, appending each outcome to the journal OUT as it "
    "finishes. Rerun the same command to continue after a crash or Ctrl-C: ids already "
    "answered in OUT are skipped. See https://github.com/langchain-websim/langchain-websim/blob/main/docs/batch.md"
)
_INPUT_HELP = (
    "a JSONL file (one object per line: optional 'id', 'prompt' or 'messages', and "
    "per-line options), or a text file with one prompt per line; '-' reads standard input"
)
_CHAT_DESCRIPTION = (
    f"{_DESCRIPTION} Each line is a chat call; its answer text goes into OUT. Options "
    "given here are the defaults of every line."
)
_IMAGE_DESCRIPTION = (
    f"{_DESCRIPTION} Each line generates an image, saved as DIR/<id>.png; its URL and "
    "path go into OUT. Options given here are the defaults of every line."
)


def add_batch_command(sub: Any, make_command: MakeCommand) -> None:
    """Register ``websim batch`` on the top-level subparsers.

    ``make_command`` adds a subcommand with the target options (``--base-url``,
    ``--emulator``, ``--json``); ``batch image`` has ``websim image``'s option flags.
    """
    batch = sub.add_parser(
        "batch",
        help="bulk chat or image jobs: journaled, resumable, with progress",
        description=_DESCRIPTION,
    )
    kinds = batch.add_subparsers(dest="batch_kind", required=True, metavar="KIND", title="kinds")

    chat = make_command(kinds, "chat", "one chat call per input line", _CHAT_DESCRIPTION)
    chat.add_argument(
        "--model",
        help="model name; it only routes the call, Websim picks the chat model (default: "
        "ChatWebsim's)",
    )
    chat.add_argument("--system", help="a system message sent before every line's messages")
    chat.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="cut answers before TEXT (client-side); repeat for several (default: none)",
    )
    chat.add_argument(
        "--json-mode",
        action="store_const",
        const=True,
        help="ask Websim for JSON answers (default: not asked)",
    )
    _add_run_options(chat)

    image = make_command(kinds, "image", "one image per input line", _IMAGE_DESCRIPTION)
    add_image_flags(image)
    image.add_argument(
        "--images-dir",
        required=True,
        metavar="DIR",
        help="save each image as DIR/<id>.png (created if missing)",
    )
    _add_run_options(image)


def _add_run_options(command: argparse.ArgumentParser) -> None:
    from langchain_websim.batch import DEFAULT_CONCURRENCY, DEFAULT_GRACE

    command.add_argument("input", metavar="INPUT", help=_INPUT_HELP)
    command.add_argument(
        "--output",
        "-o",
        required=True,
        metavar="OUT",
        help="the journal (JSONL): created if missing, continued if it is this kind's journal",
    )
    command.add_argument(
        "--input-format",
        choices=("auto", "jsonl", "text"),
        default="auto",
        help="auto: JSONL when the first line starts with '{' (default: %(default)s)",
    )
    command.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="calls in flight at once; the rate control sets the pace (default: %(default)s)",
    )
    command.add_argument(
        "--retry-failed",
        action="store_true",
        help="also redo the ids whose last line in OUT is a failure (default: skip them)",
    )
    command.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        metavar="S",
        help="after Ctrl-C, seconds calls in flight get to finish (default: %(default)s)",
    )
    command.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar or status lines"
    )


def prepare_batch(args: argparse.Namespace) -> Job:
    """Turn the flags into every line's defaults; checked before anything starts."""
    if args.batch_kind == "chat":
        names = {"model": args.model, "system": args.system, "stop": args.stop}
        args.defaults = {name: value for name, value in names.items() if value is not None}
        if args.json_mode:
            args.defaults["json_mode"] = True
    else:
        given = {"aspect_ratio": args.aspect_ratio, **image_options_from_flags(args)}
        args.defaults = {name: value for name, value in given.items() if value is not None}
    return _run


def _run(args: argparse.Namespace, base_url: str) -> int:
    from langchain_websim._batch_input import BatchInputError
    from langchain_websim.batch import run_batch

    source: Any = sys.stdin if args.input == "-" else args.input
    try:
        summary = run_batch(
            args.batch_kind,
            source,
            args.output,
            images_dir=getattr(args, "images_dir", None),
            options=args.defaults,
            input_format=args.input_format,
            concurrency=args.concurrency,
            retry_failed=args.retry_failed,
            base_url=base_url,
            progress="off" if args.quiet else "auto",
            grace=args.grace,
        )
    except BatchInputError as err:
        # One 'websim:' line per problem, as for every other usage error.
        raise ValueError("\nwebsim: ".join(err.lines())) from None
    if args.json:
        print(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2))
    if summary.interrupted:
        print(f"{summary} — rerun the same command to continue", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    if not args.json:
        print(f"{summary} ({summary.finished_this_run} this run, {summary.elapsed:.1f} s)")
    if summary.failed:
        print(
            f"websim: {summary.failed} calls failed (see their lines in {summary.output}); "
            "--retry-failed tries them again",
            file=sys.stderr,
        )
        return EXIT_SERVICE
    return EXIT_OK
