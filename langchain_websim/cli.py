"""The ``websim`` command: try the package from a shell before writing code.

Exit codes: 0 success, 1 the service failed (the typed error's message on stderr, no
traceback), 2 a usage error (bad arguments or input rejected before any request).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from langchain_websim import _wire
from langchain_websim._settings import normalize_base_url

EXIT_OK, EXIT_SERVICE, EXIT_USAGE = 0, 1, 2
CANNED_NOTE = "(offline: answers come from the local Websim emulator and are canned, not a model)"


def build_parser() -> argparse.ArgumentParser:
    # Connection options are accepted before or after the subcommand; SUPPRESS keeps a
    # subcommand's unset option from overwriting the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        help=f"service root (default: ${_wire.BASE_URL_ENV} or {_wire.DEFAULT_BASE_URL})",
    )
    common.add_argument(
        "--emulator",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run against an in-process emulator (offline; canned answers)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the full result as JSON",
    )

    parser = argparse.ArgumentParser(
        prog="websim",
        description="Websim AI from the command line: chat, images, an emulator, an agent demo.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = sub.add_parser("chat", parents=[common], help="ask the chat model; print the answer")
    chat.add_argument("--model", default=_wire.DEFAULT_CHAT_MODEL, help="model name (routing)")
    chat.add_argument("--system", default=None, help="a system message sent first")
    chat.add_argument("prompt", nargs="+", help="what to ask (words are joined)")

    image = sub.add_parser("image", parents=[common], help="generate an image; print its URL")
    image.add_argument(
        "--aspect-ratio",
        default=_wire.DEFAULT_ASPECT_RATIO,
        help=f"W:H, e.g. {', '.join(_wire.KNOWN_ASPECT_RATIOS)}",
    )
    image.add_argument("prompt", nargs="+", help="what to draw (words are joined)")

    emu = sub.add_parser("emulator", parents=[common], help="serve the local Websim emulator")
    emu.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    emu.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emu.add_argument(
        "--agent", action="store_true", help="answer tool-offering requests by calling a tool"
    )
    _add_rate_limit_options(emu)

    demo = sub.add_parser(
        "demo", parents=[common], help="an agent that draws what you ask and describes it"
    )
    demo.add_argument(
        "prompt",
        nargs="*",
        default=["Draw a lighthouse on a cliff at dusk"],
        help="what the agent should draw (words are joined)",
    )
    return parser


def _add_rate_limit_options(emu: argparse.ArgumentParser) -> None:
    emu.add_argument("--rate-limit", type=float, metavar="R", help="requests/s per endpoint")
    emu.add_argument("--burst", type=int, metavar="B", help="requests admitted at once")
    emu.add_argument("--retry-after", type=float, metavar="S", help="Retry-After on each 429")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.base_url = getattr(args, "base_url", None)
    args.emulator = getattr(args, "emulator", False)
    args.json = getattr(args, "json", False)
    if isinstance(getattr(args, "prompt", None), list):
        args.prompt = " ".join(args.prompt)
    _log_retries_to_stderr()

    from langchain_websim.errors import WebsimError

    try:
        if args.command == "emulator":
            return _serve_emulator(args)
        with _target(args) as base_url:
            if args.command == "chat":
                return _chat(args, base_url)
            if args.command == "image":
                return _image(args, base_url)
            return _demo(args, base_url)
    except WebsimError as err:
        print(f"websim: {err}", file=sys.stderr)
        return EXIT_SERVICE
    except (ValueError, TypeError) as err:
        print(f"websim: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[str]:
    """The base URL to talk to: an in-process emulator with --emulator, else the service."""
    if not args.emulator:
        yield normalize_base_url(
            args.base_url or os.environ.get(_wire.BASE_URL_ENV) or _wire.DEFAULT_BASE_URL
        )
        return
    from langchain_websim.testing import WebsimEmulator, agent_responder

    # For the demo the emulator plays a cooperative tool-using model (agent mode).
    emulator = WebsimEmulator(chat_responder=agent_responder if args.command == "demo" else None)
    with emulator:
        print(CANNED_NOTE, file=sys.stderr)
        yield emulator.base_url


def _chat(args: argparse.Namespace, base_url: str) -> int:
    from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

    from langchain_websim.chat_models import ChatWebsim

    model = ChatWebsim(model=args.model, base_url=base_url)
    messages: list[BaseMessage] = []
    if args.system:
        messages.append(SystemMessage(args.system))
    messages.append(HumanMessage(args.prompt))
    answer = model.invoke(messages)
    meta = dict(answer.response_metadata)
    if args.json:
        _print_json({"content": answer.content, "response_metadata": meta})
    else:
        print(meta.get("image_url") or answer.text)
    return EXIT_OK


def _image(args: argparse.Namespace, base_url: str) -> int:
    from langchain_websim._client import WebsimClient

    client = WebsimClient.shared(base_url)
    result = client.generate_image(args.prompt, aspect_ratio=args.aspect_ratio)
    if args.json:
        _print_json(
            {
                "url": result.url,
                "prompt": result.prompt,
                "aspect_ratio": result.aspect_ratio,
                "model": _wire.DEFAULT_IMAGE_MODEL,
                "project_id": result.project_id,
                "attempts": result.attempts,
            }
        )
    else:
        print(result.url)
    return EXIT_OK


def _serve_emulator(args: argparse.Namespace) -> int:
    from langchain_websim.testing.__main__ import main as emulator_main

    argv = ["--port", str(args.port), "--host", args.host]
    for option in ("rate_limit", "burst", "retry_after"):
        value = getattr(args, option)
        if value is not None:
            # "--opt=value": a value such as -inf must not read as an option of its own.
            argv.append(f"--{option.replace('_', '-')}={value!r}")
    return emulator_main([*argv, "--agent"] if args.agent else argv)


def _demo(args: argparse.Namespace, base_url: str) -> int:
    from langchain_websim._demo import run_demo

    return run_demo(args.prompt, base_url=base_url, as_json=args.json, out=sys.stdout)


def _log_retries_to_stderr() -> None:
    # Retries are worth seeing from a shell, in the command's own voice.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("websim: %(message)s"))
    logger = logging.getLogger("langchain_websim")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def _print_json(data: dict[str, Any], out: TextIO | None = None) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2), file=out or sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
