"""The proof's durable journal: one JSON line per event, fsync'ed before going on.

Why fsync and one file per Pod: the point of the proof is what happens when a
container is killed. A line still in a buffer when SIGKILL comes is a line the
ledger never sees, and the accounting would call a processed message lost. So
each line is written with ``os.write`` on an ``O_APPEND`` descriptor and
fsync'ed before the handler goes on; the file (``<pod>.jsonl`` in a hostPath
directory) belongs to one Pod, so no two processes ever append to it.

This file is copied into the Pods (a ConfigMap), next to the apps: it needs
nothing but the standard library.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

DIRECTORY = os.environ.get("PROOF_JOURNAL_DIR", "/journal")
POD = os.environ.get("POD_NAME") or socket.gethostname()

_fd: int | None = None


def record(event: str, **fields: Any) -> None:
    """Append ``{"t": wall clock, "pod": POD, "event": event, **fields}`` durably."""
    global _fd  # noqa: PLW0603 - one descriptor per process
    if _fd is None:
        os.makedirs(DIRECTORY, exist_ok=True)
        _fd = os.open(os.path.join(DIRECTORY, f"{POD}.jsonl"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    line = json.dumps({"t": time.time(), "pod": POD, "event": event, **fields},
                      separators=(",", ":")) + "\n"
    os.write(_fd, line.encode())
    os.fsync(_fd)
