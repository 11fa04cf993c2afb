"""The ``websim`` command: try the package from a shell before writing code.

Exit codes: 0 success, 1 the service failed (the typed error's message on stderr, no
traceback), 2 a usage error (bad arguments or input, refused before the emulator starts or a
request is sent).  Every problem is reported on a line starting with ``websim:``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from langchain_websim import __version__, _wire
from langchain_websim._cli_batch import add_batch_command, prepare_batch
from langchain_websim._cli_common import (
    EXIT_OK,
    EXIT_SERVICE,
    EXIT_USAGE,
    CommandParser,
    add_image_flags,
    image_options_from_flags,
    keep_dir,
    note,
    output_dir,
    output_file,
    save_image,
)
from langchain_websim._cli_emulator import DESCRIPTION as EMULATOR_DESCRIPTION
from langchain_websim._cli_emulator import add_emulator_options, serve
from langchain_websim._requests import (
    ImageRequest,
    validate_model,
    validate_prompt,
    validate_wire_messages,
)
from langchain_websim._settings import check_base_url

__all__ = ["EXIT_OK", "EXIT_SERVICE", "EXIT_USAGE", "build_parser", "main"]

CANNED_NOTE = "offline: answers come from the local Websim emulator and are canned, not a model"
DIES_NOTE = "the emulator stops with this command, and its image URLs with it"
DEMO_PROMPT = "Draw a lighthouse on a cliff at dusk"

Job = Callable[[argparse.Namespace, str], int]


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="websim",
        description="Websim AI from the command line: chat, images, an emulator, an agent "
        "demo. Run 'websim COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"langchain-websim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    chat = _command(sub, "chat", "ask the chat model; print the answer", _CHAT_DESCRIPTION)
    chat.add_argument(
        "--model",
        default=_wire.DEFAULT_CHAT_MODEL,
        help="model name; it only routes the call, Websim picks the chat model itself, and "
        "'flux' generates an image instead (default: %(default)s)",
    )
    chat.add_argument("--system", help="a system message sent first (default: none)")
    chat.add_argument("prompt", nargs="+", help="what to ask (words are joined)")

    image = _command(sub, "image", "generate an image; print its URL", _IMAGE_DESCRIPTION)
    _add_image_options(image)
    image.add_argument("prompt", nargs="+", help="what to draw (words are joined)")

    emulator = sub.add_parser(
        "emulator", help="serve the local Websim emulator", description=EMULATOR_DESCRIPTION
    )
    add_emulator_options(emulator)

    add_batch_command(sub, _command)

    demo = _command(
        sub, "demo", "an agent that draws what you ask and describes it", _DEMO_DESCRIPTION
    )
    demo.add_argument(
        "--output-dir",
        metavar="DIR",
        help="save every generated image into DIR, created if missing; a file already there "
        "is never replaced (default: with --emulator, a new temporary directory, made when "
        "the first image comes and named at the end; otherwise not saved)",
    )
    demo.add_argument(
        "prompt",
        nargs="*",
        default=[DEMO_PROMPT],
        help=f"what the agent should draw (words are joined; default: {DEMO_PROMPT!r})",
    )
    return parser


_CHAT_DESCRIPTION = (
    "Send PROMPT (after an optional system message) to the Websim chat model and print the "
    "answer. With --model flux, PROMPT goes to the image model and the image URL is printed."
)
_IMAGE_DESCRIPTION = (
    "Generate one image with Websim's flux model and print its URL; --output saves it. "
    "--seed, --width, --height, --transparent and --image-input are documented by Websim's "
    "app runtime and unconfirmed on its HTTP API: each is sent only when given."
)
_DEMO_DESCRIPTION = (
    "Run an agent (langchain's create_agent with ChatWebsim and WebsimImageTool) that draws "
    "what you ask and describes the result, printing each step. Needs "
    "'pip install langchain-websim[agent]'."
)


def _command(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand that talks to Websim: the target options, then its own."""
    command: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description)
    target = command.add_mutually_exclusive_group()
    target.add_argument(
        "--base-url",
        metavar="URL",
        help=f"service root (default: ${_wire.BASE_URL_ENV}, else {_wire.DEFAULT_BASE_URL})",
    )
    target.add_argument(
        "--emulator",
        action="store_true",
        help="run against an in-process emulator: offline, canned answers; images are saved "
        "before it stops (default: off)",
    )
    command.add_argument("--json", action="store_true", help="print the full result as JSON")
    return command


def _add_image_options(image: argparse.ArgumentParser) -> None:
    add_image_flags(image)
    image.add_argument(
        "--output",
        metavar="FILE",
        help="save the image to FILE (default: with --emulator, a new temporary directory; "
        "otherwise not saved)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse would blame the top-level command; the option is foreign to the subcommand.
        parser.exit(
            EXIT_USAGE,
            f"websim: unrecognized arguments: {' '.join(unknown)} "
            f"(see 'websim {args.command} --help')\n",
        )
    if args.command == "emulator":
        return serve(args)
    if isinstance(getattr(args, "prompt", None), list):
        args.prompt = " ".join(args.prompt)
    _log_retries_to_stderr()

    from langchain_websim.errors import WebsimError

    try:
        # Input is checked before an emulator starts or a request is sent.
        job = _PREPARE[args.command](args)
        with _target(args) as base_url:
            return job(args, base_url)
    except WebsimError as err:
        print(f"websim: {err}", file=sys.stderr)
        return EXIT_SERVICE
    except (ValueError, TypeError) as err:
        print(f"websim: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # the machine's side: a file that cannot be written, a full disk
        print(f"websim: {err}", file=sys.stderr)
        return EXIT_SERVICE
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[str]:
    """The base URL to talk to: an in-process emulator with --emulator, else the service."""
    if not args.emulator:
        # The settings' own resolution: unset means $WEBSIM_BASE_URL or the default host,
        # and an empty --base-url is refused as an empty base_url is everywhere.
        yield check_base_url(args.base_url)
        return
    from langchain_websim.testing import WebsimEmulator, agent_responder

    # For the demo the emulator plays a cooperative tool-using model (agent mode).
    emulator = WebsimEmulator(chat_responder=agent_responder if args.command == "demo" else None)
    with emulator:
        note(CANNED_NOTE)
        yield emulator.base_url


# ---------------------------------------------------------------------- chat


def _prepare_chat(args: argparse.Namespace) -> Job:
    validate_model(args.model, name="--model")
    system = [{"role": "system", "content": args.system}] if args.system else []
    validate_wire_messages([*system, {"role": "user", "content": args.prompt}])
    if _wire.is_image_model(args.model):
        validate_prompt(args.prompt)
    return _chat


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
    saved = _keep(args, base_url, meta["image_url"], None) if "image_url" in meta else None
    if args.json:
        extra = {"file": str(saved)} if saved else {}
        _print_json({"content": answer.content, "response_metadata": meta, **extra})
    else:
        print(meta.get("image_url") or answer.text)
    return EXIT_OK


# ---------------------------------------------------------------------- image


def _prepare_image(args: argparse.Namespace) -> Job:
    args.request = ImageRequest(args.prompt, args.aspect_ratio, **image_options_from_flags(args))
    args.output = output_file(args.output)
    return _image


def _image(args: argparse.Namespace, base_url: str) -> int:
    from langchain_websim._answers import image_artifact
    from langchain_websim._client import WebsimClient

    client = WebsimClient.shared(base_url)
    result = client.run_sync(client.asend(args.request))
    saved = _keep(args, base_url, result.url, args.output)
    if args.json:
        record = image_artifact(result)
        if "image_inputs" in record:  # data URLs can be megabytes: count them instead
            record["image_inputs"] = len(record["image_inputs"])
        record["attempts"] = result.attempts
        _print_json({**record, **({"file": str(saved)} if saved else {})})
    else:
        print(result.url)
    return EXIT_OK


def _keep(args: argparse.Namespace, base_url: str, url: str, output: Path | None) -> Path | None:
    """Save the image when asked to, and always from the emulator, whose URLs die with it."""
    if output is None and not args.emulator:
        return None
    target = save_image(base_url, url, file=output, directory=None if output else keep_dir())
    note(f"{DIES_NOTE}; the image is saved at {target}" if args.emulator else f"saved {target}")
    return target


# ---------------------------------------------------------------------- demo


def _prepare_demo(args: argparse.Namespace) -> Job:
    validate_prompt(args.prompt)
    args.output_dir = output_dir(args.output_dir)
    return _demo


def _demo(args: argparse.Namespace, base_url: str) -> int:
    from langchain_websim._demo import run_demo

    # keep_dir is called only when the first image comes: a run that draws nothing leaves
    # no empty temporary directory behind.
    save_dir = args.output_dir or (keep_dir if args.emulator else None)
    saved = run_demo(
        args.prompt, base_url=base_url, as_json=args.json, out=sys.stdout, save_dir=save_dir
    )
    if args.emulator and saved:
        note(f"{DIES_NOTE}; the images are saved in {saved[0].parent}")
    return EXIT_OK


_PREPARE: dict[str, Callable[[argparse.Namespace], Job]] = {
    "chat": _prepare_chat,
    "image": _prepare_image,
    "demo": _prepare_demo,
    "batch": prepare_batch,
}


def _log_retries_to_stderr() -> None:
    # Retries are worth seeing from a shell, in the command's own voice.
    logger = logging.getLogger("langchain_websim")
    if any(getattr(h, "websim_cli", False) for h in logger.handlers):
        return  # main() called again in the same process (tests, embedding)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("websim: %(message)s"))
    handler.websim_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def _print_json(data: dict[str, Any], out: TextIO | None = None) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2), file=out or sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
