"""`python -m xdsi` runs the command-line interface."""

from xdsi.cli import main

raise SystemExit(main())
