"""Run the Websim emulator from the command line.

    python -m langchain_websim.testing --port 8765
    python -m langchain_websim.testing --rate-limit 2 --burst 5 --retry-after 1

Prints the base URL on its own line once requests are accepted, then serves until Ctrl-C or
SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from langchain_websim.testing._agent import agent_responder
from langchain_websim.testing._emulator import WebsimEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m langchain_websim.testing",
        description="Serve a local Websim API emulator (for offline tests and demos).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to bind; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--agent",
        action="store_true",
        help="agent mode: answer tool-offering chat requests by calling a tool, then "
        "summarise its result (see langchain_websim.testing.agent_responder)",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="record contract violations but answer anyway instead of with 400",
    )
    parser.add_argument(
        "--any-project-id",
        action="store_true",
        help="accept project ids outside the generated format (for apps that pass their own)",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        emu = WebsimEmulator(
            args.host,
            args.port,
            strict=not args.lenient,
            require_project_id_format=not args.any_project_id,
            chat_responder=agent_responder if args.agent else None,
            rate_limit=args.rate_limit,
            burst=args.burst,
            retry_after=args.retry_after,
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with emu:
            print(emu.base_url, flush=True)
            # A timed wait: the kernel may deliver the signal to another thread, and the main
            # thread only runs Python signal handlers when it wakes up between waits.
            while not stop.wait(0.5):
                continue
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
