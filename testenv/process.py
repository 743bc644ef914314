"""Start, watch and stop the control plane's processes, each by its own PID.

Stopping ends exactly the processes this module started: a PID is only
signalled while its command line still names the cluster's directory, so a PID
that the kernel reused for an unrelated program is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 25


class ComponentError(RuntimeError):
    """A component exited or never became ready; the message carries its log tail."""

    def __init__(self, name: str, reason: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.tail = log_tail(log)
        super().__init__(f"{name} {reason}; last lines of {log}:\n{self.tail}")


def log_tail(log: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the child when the parent (a test run) dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Component:
    """One running binary with its log file."""

    name: str
    argv: Sequence[str]
    log: Path
    marker: str
    tied_to_parent: bool = True
    pid: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if self._tie() else None,  # noqa: PLW1509
            )
        self.pid = self._proc.pid

    def _tie(self) -> bool:
        """Whether to ask for SIGTERM when the parent dies.

        Linux sends PR_SET_PDEATHSIG when the *thread* that forked the child
        ends, not the process: a component started from a helper thread (a test
        restarting kube-apiserver in the background) would die with that thread.
        So only children of the main thread are tied.
        """
        return self.tied_to_parent and threading.current_thread() is threading.main_thread()

    def exit_code(self) -> int | None:
        """The exit status if the process has ended, else ``None``."""
        if self._proc is not None:
            return self._proc.poll()
        return None if is_ours(self.pid, self.marker) else -1

    def check(self) -> None:
        """Raise :class:`ComponentError` if the process has died."""
        code = self.exit_code()
        if code is not None:
            raise ComponentError(self.name, f"exited with status {code}", self.log)

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.pid, self.marker, timeout)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)


def is_ours(pid: int, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line contains ``marker``."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and marker.encode() in cmdline


def stop_together(components: list[Component], timeout: float = 10.0) -> None:
    """SIGTERM every component at once, then wait for all (SIGKILL after ``timeout``).

    Why together: each one may take seconds to shut down gracefully on a busy
    machine, and waiting for them one after the other adds those seconds up.
    """
    for component in components:
        if is_ours(component.pid, component.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(component.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for component in components:
        terminate(component.pid, component.marker, max(0.0, deadline - time.monotonic()))
        if component._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component._proc.wait(timeout=1)


def terminate(pid: int, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; only if the PID is still ours."""
    if not is_ours(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_ours(pid, marker):
            return
        time.sleep(0.05)
    if is_ours(pid, marker):
        os.kill(pid, signal.SIGKILL)
        while is_ours(pid, marker):
            time.sleep(0.05)
