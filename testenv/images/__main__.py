"""``python -m testenv.images [--load SOCKET]``: build every image of the node and list them.

Prints each image's name, archive, size and how long it took (a few
milliseconds when it came from the cache), then loads them into the
containerd at SOCKET if one is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from testenv.images import (
    Image,
    ImageError,
    busybox_image,
    load,
    pause_image,
    product_image,
    python_base_image,
)

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _progress(message: str) -> None:
    print(f">>> {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv.images", description=__doc__)
    parser.add_argument("--load", type=Path, metavar="SOCKET",
                        help="also import the images into the containerd at SOCKET (k8s.io)")
    args = parser.parse_args(argv)
    builders: list[Callable[[], Image]] = [
        lambda: python_base_image(_progress),
        lambda: busybox_image(_progress),
        lambda: pause_image(_progress),
        lambda: product_image(_REPO_ROOT, _progress),
    ]
    images = []
    try:
        for builder in builders:
            started = time.monotonic()
            image = builder()
            took = time.monotonic() - started
            images.append(image)
            print(f"{image.name:40} {image.size / 2**20:7.1f} MiB {took:7.1f}s  {image.archive}",
                  flush=True)
        if args.load is not None:
            started = time.monotonic()
            load(images, address=args.load)
            print(f"loaded into {args.load} in {time.monotonic() - started:.1f}s")
    except ImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
