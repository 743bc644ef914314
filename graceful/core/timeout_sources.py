"""Where the app's graceful timeout G comes from.

Why look beyond the policy: the only number that matters is the one the app
really waits for. A FastStream worker with ``graceful_timeout=3600`` needs an
hour no matter what the policy's default says, and a gunicorn started with
``--graceful-timeout 120`` will drain for two minutes. So G is read, in order:

1. the ``graceful.io/graceful-timeout`` annotation (the user says it);
2. a flag the container already passes *to the program it belongs to*, or a
   variable that program reads (:data:`PROGRAMS`, :data:`VALUE_ENV`), each
   checked against the tool's own ``--help``/source;
3. the policy's ``gracefulTimeoutSeconds``.

Why per program: the same spelling means different things to different
programs. ``--graceful-timeout=30s`` is a valid Go duration to a Go server
and garbage to gunicorn, so the command line is cut into the commands it runs
(``sh -c "a && b"``), wrappers are skipped (``exec``, ``env``, ``tini``,
``python -m``, ``bundle exec``...), and only the flags of a known program are
read from its own words. Without ``command`` the image's entrypoint is
unknown: ``args`` that start with a program name are read as a command line,
otherwise the known flags are read but a value that cannot be read is left
alone (it may be another program's).

A value that cannot be read is a finding that quotes it (clipped), and the
next source is used (an unreadable command-line value falls back to a readable
variable): a typo must not silently become a 30 s budget, and it must never
crash the webhook.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from graceful.core.duration import MAX_SECONDS, DurationError, parse_seconds
from graceful.core.findings import Finding, FindingCode, clip
from graceful.core.names import ANNOTATION_TIMEOUT

Source = Literal["annotation", "flag", "env", "policy"]
#: How a tool writes its timeout: whole seconds (``type=int``), milliseconds
#: (dramatiq), seconds with a fraction (taskiq, ``type=float``), or a Spring
#: Boot ``Duration`` (``30s``, ``500ms``, ``PT30S``; a bare number is milliseconds).
Unit = Literal["seconds", "millis", "float", "spring"]


@dataclass(frozen=True)
class Program:
    """A tool whose own shutdown timeout can be read from its command line."""

    flags: tuple[str, ...]
    unit: Unit = "seconds"
    short: tuple[str, ...] = ()
    """Single-dash flags that also take the value glued on (``-t25``)."""
    distinctive: bool = True
    """The flags name no other tool's option, so they are read even when the program is
    unknown (``args`` to an entrypoint we cannot see); ``--timeout`` is not."""


_SPRING = ("--spring.lifecycle.timeout-per-shutdown-phase",
           "-Dspring.lifecycle.timeout-per-shutdown-phase")
#: Each program (the basename of its executable or ``python -m`` module) and its flags.
PROGRAMS: Final[Mapping[str, Program]] = {
    "uvicorn": Program(("--timeout-graceful-shutdown",)),
    "gunicorn": Program(("--graceful-timeout",)),
    "hypercorn": Program(("--graceful-timeout",)),
    "granian": Program(("--workers-kill-timeout",)),
    "dramatiq": Program(("--worker-shutdown-timeout",), "millis"),
    "taskiq": Program(("--wait-tasks-timeout",), "float"),
    "sidekiq": Program(("--timeout", "-t"), short=("-t",), distinctive=False),
    "java": Program(_SPRING, "spring"),
}
#: Environment variables holding the timeout itself, read by the program they name.
VALUE_ENV: Final[Mapping[str, Unit]] = {
    "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "seconds",
    "GRANIAN_WORKERS_KILL_TIMEOUT": "seconds",
    "SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE": "spring",
}
#: Environment variables a program reads as extra command-line arguments.
ARGS_ENV: Final[Mapping[str, str]] = {"GUNICORN_CMD_ARGS": "gunicorn"}
#: Words that start another program; the next program word is the one that runs.
WRAPPERS: Final = frozenset({"exec", "env", "tini", "tini-static", "dumb-init", "nice",
                             "nohup", "time", "setsid", "su-exec", "gosu", "chpst"})
#: ``X run``/``X exec``: run the program that follows.
RUNNERS: Final = frozenset({"poetry", "uv", "pipenv", "pdm", "hatch", "rye", "bundle"})
SHELLS: Final = frozenset({"sh", "bash", "ash", "dash", "zsh"})
#: Command lines longer than this are not searched (bounded work per admission).
MAX_TOKENS = 512
_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "(", ")"})
_INTEGER = re.compile(r"[0-9]{1,7}")
_FLOAT = re.compile(r"([0-9]{1,7})(?:\.([0-9]{1,6}))?")
_SPRING_SIMPLE = re.compile(r"([0-9]{1,10})(ns|us|ms|s|m|h|d)?")
_SPRING_ISO = re.compile(
    r"PT(?:([0-9]{1,7})H)?(?:([0-9]{1,7})M)?(?:([0-9]{1,7})(?:\.[0-9]{1,9})?S)?", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
_PYTHON = re.compile(r"python[0-9.]*|pypy[0-9.]*")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


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


def seconds_of(value: str, unit: Unit) -> int | None:
    """Whole seconds (rounded up) for ``value`` written in ``unit``; None if unreadable."""
    seconds: int | float  # int for whole units, float for fractions (mypyc keeps the two apart)
    if unit == "seconds":
        if not _INTEGER.fullmatch(value):
            return None
        seconds = int(value)
    elif unit == "millis":
        if not re.fullmatch(r"[0-9]{1,10}", value):
            return None
        seconds = int(value) / 1000
    elif unit == "float":
        if not _FLOAT.fullmatch(value):
            return None
        seconds = float(value)
    else:
        simple = _SPRING_SIMPLE.fullmatch(value)
        iso = _SPRING_ISO.fullmatch(value) if value.upper() != "PT" else None
        if simple:
            seconds = int(simple.group(1)) * _UNIT_SECONDS[simple.group(2) or "ms"]
        elif iso:
            hours, minutes, secs = (int(g or 0) for g in iso.groups())
            seconds = hours * 3600 + minutes * 60 + secs
            if "." in value:
                seconds += 1
        else:
            return None
    whole = math.ceil(seconds)
    return whole if whole <= MAX_SECONDS else None


def _tokens(argv: Sequence[Any]) -> list[str]:
    """Command and args as words; strings with spaces (``sh -c "..."``) are split too,
    with shell operators (``&&``, ``;``, ``|``) as words of their own."""
    words: list[str] = []
    for item in argv[:MAX_TOKENS]:
        if not isinstance(item, str):
            continue
        if any(ch.isspace() or ch in ";&|" for ch in item):
            text = item[:4096]
            try:
                lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
                lexer.whitespace_split = True
                words.extend(lexer)
            except ValueError:
                words.extend(text.split())
        else:
            words.append(item)
    return words[:MAX_TOKENS]


def _commands(words: Sequence[str]) -> list[list[str]]:
    """The words split into the commands a shell would run one after another."""
    commands: list[list[str]] = [[]]
    for word in words:
        if word in _OPERATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def _program(words: Sequence[str]) -> tuple[str, list[str]] | None:
    """The program a command runs and the words after it, past wrappers and launchers."""
    index = 0
    while index < len(words):
        word = words[index]
        base = word.rsplit("/", 1)[-1]
        if _ASSIGNMENT.fullmatch(word):
            index += 1  # VAR=value before the program
        elif base in WRAPPERS or word == "--":
            index += 1
            while index < len(words) and words[index].startswith("-"):
                index += 1
        elif base in SHELLS:
            index += 1
            while index < len(words) and words[index].startswith("-"):
                index += 1  # -c, -e, -ex: the script's words follow, already split
        elif base in RUNNERS and index + 1 < len(words) and words[index + 1] in ("run", "exec"):
            index += 2
        elif _PYTHON.fullmatch(base):
            index += 1
            while index < len(words) and words[index].startswith("-"):
                if words[index] == "-m" and index + 1 < len(words):
                    return words[index + 1], list(words[index + 2:])
                index += 2 if words[index] in ("-X", "-W") else 1
            if index < len(words):
                script = words[index].rsplit("/", 1)[-1].removesuffix(".py")
                return script, list(words[index + 1:])
            return None
        else:
            return base, list(words[index + 1:])
    return None


def _scan(words: Sequence[str], program: Program) -> tuple[str, str] | None:
    """The last of ``program``'s flags in ``words`` and its raw value (last wins)."""
    found: tuple[str, str] | None = None
    for index, word in enumerate(words):
        for flag in program.flags:
            if word == flag:
                found = (flag, words[index + 1] if index + 1 < len(words) else "")
            elif word.startswith(flag + "="):
                found = (flag, word[len(flag) + 1:])
        for flag in program.short:
            if word.startswith(flag) and len(word) > len(flag) and word[len(flag)] != "=":
                found = (flag, word[len(flag):])
    return found


@dataclass(frozen=True)
class _Candidate:
    source: Source
    detail: str
    raw: str
    unit: Unit
    strict: bool = True
    """False when the program is unknown: an unreadable value is not ours to judge."""


def _command_line(container: Mapping[str, Any]) -> list[_Candidate]:
    command = container.get("command")
    args = container.get("args")
    argv: list[Any] = []
    for value in (command, args):
        if isinstance(value, list):
            argv.extend(value)
    words = _tokens(argv)
    entrypoint_known = isinstance(command, list) and bool(command)
    if not entrypoint_known and words and words[0].startswith("-"):
        # args to an entrypoint we cannot see: every known flag, judged leniently
        hits = [(name, hit) for name, program in PROGRAMS.items()
                if program.distinctive and (hit := _scan(words, program)) is not None]
        return [_Candidate("flag", flag, raw, PROGRAMS[name].unit, strict=False)
                for name, (flag, raw) in hits]
    found: list[_Candidate] = []
    for words_of_one in _commands(words):
        ran = _program(words_of_one)
        if ran is None or ran[0] not in PROGRAMS:
            continue
        program = PROGRAMS[ran[0]]
        hit = _scan(ran[1], program)
        if hit is not None:
            found.append(_Candidate("flag", f"{ran[0]} {hit[0]}", hit[1], program.unit))
    return found


def _environment(container: Mapping[str, Any]) -> list[_Candidate]:
    env = container.get("env")
    found: list[_Candidate] = []
    if not isinstance(env, list):
        return found
    for var in env[:MAX_TOKENS]:
        if not isinstance(var, Mapping) or not isinstance(var.get("value"), str):
            continue
        name = var.get("name")
        if name in VALUE_ENV:
            found.append(_Candidate("env", str(name), var["value"], VALUE_ENV[str(name)]))
        elif name in ARGS_ENV:
            program = PROGRAMS[ARGS_ENV[str(name)]]
            hit = _scan(_tokens([var["value"]]), program)
            if hit:
                found.append(_Candidate("env", f"{name} {hit[0]}", hit[1], program.unit))
    return found


def from_container(container: Mapping[str, Any]) -> tuple[Timeout | None, list[Finding]]:
    """G from the container's command line or environment, with findings for bad values.

    The command line wins over the environment (as in gunicorn with
    ``GUNICORN_CMD_ARGS``); a value that cannot be read is reported and the
    next candidate is tried.
    """
    name = str(container.get("name", ""))
    findings: list[Finding] = []
    candidates = [*reversed(_command_line(container)), *reversed(_environment(container))]
    for candidate in candidates:
        seconds = seconds_of(candidate.raw, candidate.unit)
        if seconds is not None:
            return Timeout(seconds, candidate.source, candidate.detail), findings
        if candidate.strict:
            findings.append(Finding(
                FindingCode.UnreadableTimeout,
                f"container {clip(name)}: unreadable {clip(candidate.detail)}"
                f" {clip(candidate.raw)!r}", container=name))
    return None, findings


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
