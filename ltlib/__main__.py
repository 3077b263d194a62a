"""``python -m ltlib``: the command-line entry point (see ``ltlib.cli``)."""

from .cli import main

raise SystemExit(main())
