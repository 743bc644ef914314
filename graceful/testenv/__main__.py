"""``python -m graceful.testenv``: build (once per machine) and list the binaries."""

from graceful.testenv.build import main

raise SystemExit(main())
