"""``python -m graceful.operator``: the same as ``graceful operator``."""

from __future__ import annotations

import argparse
import sys

from graceful.operator.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="graceful operator",
                                     description="run the audit controller")
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
