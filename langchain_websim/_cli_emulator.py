"""The emulator command: ``websim emulator`` and ``python -m langchain_websim.testing``.

Both names run this one definition (the same options, defaults and messages), so what one
accepts the other accepts.  The emulator itself is imported only when it is served: the
``websim`` parser is built on every run of the command.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from langchain_websim._cli_common import EXIT_OK, EXIT_SERVICE, EXIT_USAGE, CommandParser

if TYPE_CHECKING:
    from langchain_websim.testing import RecordedRequest

__all__ = [
    "DEFAULT_PORT",
    "DESCRIPTION",
    "add_emulator_options",
    "build_parser",
    "main",
    "serve",
]

DEFAULT_PORT = 8765
DESCRIPTION = (
    "Serve a local Websim API emulator, for offline tests and demos. It prints its base URL "
    "on a line of its own once it accepts requests (point WEBSIM_BASE_URL at it), answers "
    "chat with an echo and image generation with real PNG pictures, checks every request "
    "against the Websim wire contract, and serves until Ctrl-C or SIGTERM."
)


def add_emulator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--agent",
        action="store_true",
        help="answer tool-offering chat requests by calling a tool, then summarise its "
        "result, like a cooperative model (default: echo every chat message)",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="record contract violations but answer anyway (default: answer them with 400)",
    )
    parser.add_argument(
        "--any-project-id",
        action="store_true",
        help="accept project ids outside Websim's generated format, for apps that pass "
        "their own (default: refuse them)",
    )
    parser.add_argument(
        "--verbose",
        "-v",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print one line per request received (default: on when standard output is a terminal)",
    )
    limits = parser.add_argument_group(
        "rate limit", "a token bucket per endpoint; requests beyond it get 429"
    )
    limits.add_argument(
        "--rate-limit",
        type=float,
        metavar="R",
        help="requests per second each endpoint admits (default: no limit)",
    )
    limits.add_argument(
        "--burst",
        type=int,
        metavar="B",
        help="requests admitted at once (default: one second's worth, at least 1)",
    )
    limits.add_argument(
        "--retry-after",
        type=float,
        metavar="S",
        help="send 'Retry-After: S' with each 429 (default: no header)",
    )


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; 0 then, 1 if the address cannot be bound, 2 for bad
    options (checked before anything is bound)."""
    from langchain_websim.testing import WebsimEmulator, agent_responder

    try:
        emulator = WebsimEmulator(
            args.host,
            args.port,
            strict=not args.lenient,
            require_project_id_format=not args.any_project_id,
            chat_responder=agent_responder if args.agent else None,
            rate_limit=args.rate_limit,
            burst=args.burst,
            retry_after=args.retry_after,
            on_request=_print_request if _verbose(args) else None,
        )
    except (TypeError, ValueError) as exc:
        print(f"websim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with emulator:
            print(emulator.base_url, flush=True)
            # A timed wait: the kernel may deliver the signal to another thread, and the main
            # thread only runs Python signal handlers when it wakes up between waits.
            while not stop.wait(0.5):
                continue
    except OSError as exc:
        print(f"websim: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK


def _verbose(args: argparse.Namespace) -> bool:
    return bool(args.verbose) if args.verbose is not None else sys.stdout.isatty()


def _print_request(request: RecordedRequest) -> None:
    """``12:00:01 POST /api/v1/... chat -> 200`` and why, when it was not a plain answer."""
    stamp = time.strftime("%H:%M:%S")
    notes = []
    if request.rate_limited:
        notes.append("rate limited")
    if request.violations:
        notes.append(f"{len(request.violations)} contract violations: {request.violations[0]}")
    status = "dropped" if request.status is None else str(request.status)
    tail = f" ({'; '.join(notes)})" if notes else ""
    print(
        f"{stamp} {request.method} {request.path} {request.endpoint} -> {status}{tail}",
        flush=True,
    )


def build_parser(prog: str = "python -m langchain_websim.testing") -> argparse.ArgumentParser:
    """The stand-alone parser; ``websim emulator`` adds the same options to its subcommand."""
    parser = CommandParser(prog=prog, description=DESCRIPTION)
    add_emulator_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))
