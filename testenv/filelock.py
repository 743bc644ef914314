"""One exclusive lock file shared by the processes that build into the cache.

Two test sessions (CI and a person, or two worktrees) must not build the same
binary or image at once: an ``flock`` on a file in the cache serialises them
and is released by the kernel when a builder dies, so no stale lock is left.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder) for the block.

    flock is per open file, so a nested take of the same path in one process
    deadlocks: take it around one build, never while waiting for another.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
