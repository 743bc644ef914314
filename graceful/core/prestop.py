"""Recognising a preStop hook, and the one we add.

Why only recognised shapes are touched: a preStop hook is the user's code
(flush a buffer, deregister from Consul, call ``nginx -s quit``). We cannot know
how long it takes, so we never replace it; we keep it and say so in a warning.
A hook we cannot read is not counted as S: its length is declared with the
``graceful.io/prestop-seconds`` annotation (:func:`declared`) or reported.
``tcpSocket`` is accepted by the API server but never run by the kubelet, so
it is reported as invalid. The only hooks we read are plain sleeps, the
shapes this project itself adds or that people write for the same purpose:
the native ``sleep`` action,
``exec: [sleep, N]`` and ``exec: [sh, -c, "sleep N"]``. Those can be raised to S
(a longer sleep never hurts the drain) without changing what they do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from graceful.core.duration import DurationError, parse_seconds
from graceful.core.findings import Finding, FindingCode, clip
from graceful.core.names import ANNOTATION_PRESTOP_SECONDS
from graceful.core.patch import Pointer

Shape = Literal["none", "sleep", "argv", "shell", "unknown", "invalid"]

_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_SLEEP_BINARIES = ("sleep", "/bin/sleep", "/usr/bin/sleep")
_SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash")
_SHELL_SLEEP = re.compile(r"\s*sleep\s+([0-9a-z]{1,16})\s*")
#: Longest ``graceful.io/prestop-seconds`` value looked at, and most containers named in it.
MAX_DECLARED_LENGTH = 512
MAX_DECLARED_CONTAINERS = 32
_CONTAINER = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


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


_NONE = PreStop("none")


def read(hook: Any) -> PreStop:
    """Classify an existing ``lifecycle.preStop`` value (None: there is none)."""
    if hook is None:
        return _NONE
    if not isinstance(hook, Mapping):
        return PreStop("unknown")
    handlers = [key for key in _HANDLERS if hook.get(key) is not None]
    if handlers == ["tcpSocket"]:
        # Kept by the API for compatibility, never run: the kubelet fails the hook at
        # once ("invalid handler") and goes on to SIGTERM.
        return PreStop("invalid")
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


@dataclass(frozen=True)
class Declared:
    """Hook lengths the user declared with ``graceful.io/prestop-seconds``."""

    every: int | None = None
    """``"20"``: the length of every hook the engine cannot read."""
    by_container: tuple[tuple[str, int], ...] = ()
    """``"app=20,nginx=5"``: per container (a name listed wins over ``every``)."""

    def for_container(self, name: str) -> int | None:
        """The declared length of ``name``'s hook, or None."""
        return next((s for n, s in self.by_container if n == name), self.every)


def declared(annotations: Mapping[str, str]) -> tuple[Declared, list[Finding]]:
    """The declared hook lengths, or an ``UnreadableTimeout`` finding quoting the value.

    Nothing is guessed from a value that cannot be read: every hook is then of
    unknown length, which is reported container by container.
    """
    raw = annotations.get(ANNOTATION_PRESTOP_SECONDS)
    if raw is None:
        return Declared(), []
    try:
        return _parse_declared(raw), []
    except DurationError as exc:
        return Declared(), [Finding(FindingCode.UnreadableTimeout,
                                    f"unreadable {ANNOTATION_PRESTOP_SECONDS} {clip(raw)!r}:"
                                    f" {exc}")]


def _parse_declared(raw: str) -> Declared:
    if len(raw) > MAX_DECLARED_LENGTH:
        raise DurationError("too long")
    if "=" not in raw:
        return Declared(every=parse_seconds(raw))
    pairs: list[tuple[str, int]] = []
    for item in raw.split(","):
        name, sep, value = item.partition("=")
        name = name.strip(" \t")
        if not sep or not _CONTAINER.fullmatch(name):
            raise DurationError("expected container=seconds, separated by commas")
        if any(n == name for n, _ in pairs):
            raise DurationError(f"container {name} named twice")
        pairs.append((name, parse_seconds(value)))
        if len(pairs) > MAX_DECLARED_CONTAINERS:
            raise DurationError(f"more than {MAX_DECLARED_CONTAINERS} containers")
    return Declared(by_container=tuple(pairs))
