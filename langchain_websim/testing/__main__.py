"""Run the Websim emulator from the command line; the same command as ``websim emulator``.

    python -m langchain_websim.testing --port 8765
    python -m langchain_websim.testing --rate-limit 2 --burst 5 --retry-after 1

Prints the base URL on its own line once requests are accepted, then serves until Ctrl-C or
SIGTERM and exits 0.  ``--help`` lists every option with its default.
"""

from __future__ import annotations

import sys

from langchain_websim._cli_emulator import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
