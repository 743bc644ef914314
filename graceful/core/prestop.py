"""Recognising a preStop hook, and the one we add.

Why only recognised shapes are touched: a preStop hook is the user's code
(flush a buffer, deregister from Consul, call ``nginx -s quit``). We cannot know
how long it takes, so we never replace it; we keep it and say so in a warning.
The only hooks we read are plain sleeps, the shapes this project itself adds
or that people write for the same purpose: the native ``sleep`` action,
``exec: [sleep, N]`` and ``exec: [sh, -c, "sleep N"]``. Those can be raised to S
(a longer sleep never hurts the drain) without changing what they do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from graceful.core.duration import DurationError, parse_seconds
from graceful.core.patch import Pointer

Shape = Literal["none", "sleep", "argv", "shell", "unknown"]

_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_SLEEP_BINARIES = ("sleep", "/bin/sleep", "/usr/bin/sleep")
_SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash")
_SHELL_SLEEP = re.compile(r"\s*sleep\s+([0-9a-z]{1,16})\s*")


@dataclass(frozen=True)
class PreStop:
    """An existing preStop hook as far as we can read it."""

    shape: Shape
    seconds: int | None = None

    def value_for(self, seconds: int) -> tuple[Pointer, Any]:
        """Where, relative to the hook, to write ``seconds`` for this shape, and what."""
        if self.shape == "sleep":
            return Pointer(("sleep", "seconds")), seconds
        if self.shape == "argv":
            return Pointer(("exec", "command", 1)), str(seconds)
        if self.shape == "shell":
            return Pointer(("exec", "command", 2)), f"sleep {seconds}"
        raise ValueError(f"cannot set the duration of a {self.shape} preStop hook")


def _seconds(value: Any) -> int | None:
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return parse_seconds(value)
        except DurationError:
            return None
    return None


def read(hook: Any) -> PreStop:
    """Classify an existing ``lifecycle.preStop`` value (None: there is none)."""
    if hook is None:
        return PreStop("none")
    if not isinstance(hook, Mapping):
        return PreStop("unknown")
    handlers = [key for key in _HANDLERS if hook.get(key) is not None]
    if handlers == ["sleep"] and isinstance(hook["sleep"], Mapping):
        seconds = hook["sleep"].get("seconds")
        if type(seconds) is int and seconds >= 0:
            return PreStop("sleep", seconds)
    if handlers == ["exec"] and isinstance(hook["exec"], Mapping):
        command = hook["exec"].get("command")
        if isinstance(command, list) and all(isinstance(part, str) for part in command):
            if len(command) == 2 and command[0] in _SLEEP_BINARIES:
                seconds = _seconds(command[1])
                if seconds is not None:
                    return PreStop("argv", seconds)
            if len(command) == 3 and command[0] in _SHELLS and command[1] == "-c":
                match = _SHELL_SLEEP.fullmatch(command[2])
                seconds = _seconds(match.group(1)) if match else None
                if seconds is not None:
                    return PreStop("shell", seconds)
    return PreStop("unknown")


def hook_for(action: Literal["Sleep", "Exec"], seconds: int) -> dict[str, Any]:
    """The preStop hook we add: the native sleep action, or ``exec: [sleep, S]``."""
    if action == "Sleep":
        return {"sleep": {"seconds": seconds}}
    return {"exec": {"command": ["sleep", str(seconds)]}}
