"""``python -m langchain_websim`` is the ``websim`` command."""

from langchain_websim.cli import main

raise SystemExit(main())
