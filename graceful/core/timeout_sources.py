"""Where the app's graceful timeout G comes from.

Why look beyond the policy: the only number that matters is the one the app
really waits for. A FastStream worker with ``graceful_timeout=3600`` needs an
hour no matter what the policy's default says, and a gunicorn started with
``--graceful-timeout 120`` will drain for two minutes. So G is read, in order:

1. the ``graceful.io/graceful-timeout`` annotation (the user says it);
2. a flag the container already passes, checked against each tool's own
   ``--help``/source: uvicorn ``--timeout-graceful-shutdown INTEGER`` (also
   ``UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN``, uvicorn reads ``UVICORN_*`` env);
   gunicorn ``--graceful-timeout INT`` (also inside ``GUNICORN_CMD_ARGS``; the
   command line wins over it, as in gunicorn); hypercorn ``--graceful-timeout``
   (``type=int``);
3. the policy's ``gracefulTimeoutSeconds``.

A value that cannot be read is a finding that quotes it (clipped), and the
next source is used: a typo must not silently become a 30 s budget, and it must
never crash the webhook.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from graceful.core.duration import MAX_SECONDS, DurationError, parse_seconds
from graceful.core.findings import Finding, FindingCode, clip
from graceful.core.names import ANNOTATION_TIMEOUT

Source = Literal["annotation", "flag", "env", "policy"]

#: Flags whose value is the app's graceful timeout in whole seconds.
TIMEOUT_FLAGS = ("--timeout-graceful-shutdown", "--graceful-timeout")
#: Environment variables a tool reads as extra command-line arguments.
ARGS_ENV = ("GUNICORN_CMD_ARGS",)
#: Environment variables holding the timeout itself.
VALUE_ENV = ("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN",)
#: Command lines longer than this are not searched (bounded work per admission).
MAX_TOKENS = 512
_INTEGER = re.compile(r"[0-9]{1,7}")


@dataclass(frozen=True)
class Timeout:
    """G for one container and where it was found."""

    seconds: int
    source: Source
    detail: str = ""
    """The flag or variable that gave it, for messages."""


def from_annotation(annotations: Mapping[str, str]) -> tuple[Timeout | None, list[Finding]]:
    """G from the annotation, or a finding quoting the unreadable value."""
    raw = annotations.get(ANNOTATION_TIMEOUT)
    if raw is None:
        return None, []
    try:
        seconds = parse_seconds(raw)
    except DurationError as exc:
        return None, [Finding(FindingCode.UnreadableTimeout,
                              f"unreadable {ANNOTATION_TIMEOUT} {clip(raw)!r}: {exc}")]
    return Timeout(seconds, "annotation", ANNOTATION_TIMEOUT), []


def _flag_seconds(value: str) -> int | None:
    """The whole seconds a tool's ``type=int`` flag accepts, within a week."""
    if not _INTEGER.fullmatch(value):
        return None
    seconds = int(value)
    return seconds if seconds <= MAX_SECONDS else None


def _tokens(argv: Sequence[Any]) -> list[str]:
    """Command and args as words; strings with spaces (``sh -c "..."``) are split too."""
    words: list[str] = []
    for item in argv[:MAX_TOKENS]:
        if not isinstance(item, str):
            continue
        if any(ch.isspace() for ch in item):
            try:
                words.extend(shlex.split(item[:4096]))
            except ValueError:
                words.extend(item[:4096].split())
        else:
            words.append(item)
    return words[:MAX_TOKENS]


def _scan(words: Sequence[str]) -> tuple[str, str] | None:
    """The last timeout flag in ``words`` and its raw value (last wins, as in argparse)."""
    found: tuple[str, str] | None = None
    for index, word in enumerate(words):
        for flag in TIMEOUT_FLAGS:
            if word == flag:
                found = (flag, words[index + 1] if index + 1 < len(words) else "")
            elif word.startswith(flag + "="):
                found = (flag, word[len(flag) + 1:])
    return found


def from_container(container: Mapping[str, Any]) -> tuple[Timeout | None, list[Finding]]:
    """G from the container's command line or environment, with findings for bad values."""
    name = str(container.get("name", ""))
    candidates: list[tuple[Source, str, str]] = []
    env = container.get("env")
    if isinstance(env, list):
        for var in env[:MAX_TOKENS]:
            if not isinstance(var, Mapping) or not isinstance(var.get("value"), str):
                continue
            if var.get("name") in VALUE_ENV:
                candidates.append(("env", str(var["name"]), var["value"]))
            elif var.get("name") in ARGS_ENV:
                hit = _scan(_tokens([var["value"]]))
                if hit:
                    candidates.append(("env", f"{var['name']} {hit[0]}", hit[1]))
    argv: list[Any] = []
    for key in ("command", "args"):
        value = container.get(key)
        if isinstance(value, list):
            argv.extend(value)
    hit = _scan(_tokens(argv))
    if hit:
        candidates.append(("flag", hit[0], hit[1]))
    for source, detail, raw in reversed(candidates):  # the command line wins, then env
        seconds = _flag_seconds(raw)
        if seconds is not None:
            return Timeout(seconds, source, detail), []
        finding = Finding(FindingCode.UnreadableTimeout,
                          f"container {clip(name)}: unreadable {clip(detail)} {clip(raw)!r}",
                          container=name)
        return None, [finding]
    return None, []


def resolve(annotation: Timeout | None, container: Mapping[str, Any] | None,
            default: int) -> tuple[Timeout, list[Finding]]:
    """G for one container: the annotation, else its flags, else the policy default."""
    if annotation is not None:
        return annotation, []
    findings: list[Finding] = []
    if container is not None:
        found, findings = from_container(container)
        if found is not None:
            return found, findings
    return Timeout(default, "policy", "gracefulTimeoutSeconds"), findings
