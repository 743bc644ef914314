"""``python -m testenv``: build (once per machine) and list the binaries."""

from testenv.build import main

raise SystemExit(main())
