"""Reading a timeout the user wrote by hand: ``3600``, ``90s``, ``15m``, ``1h30m``.

Why a strict parser of our own: the value arrives in an annotation, i.e. from
anyone who can edit a Deployment, and it ends up as a pod's grace period. Go's
``time.ParseDuration`` accepts fractions, negative values and ``µs``; Python's
``int()`` accepts ``"٣٦٠٠"`` (Arabic-Indic digits) and ``"1_000"``. Neither is
something a human meant as a shutdown budget, so we accept exactly whole ASCII
seconds, or hours, minutes and seconds in that order, up to a week, and report
anything else as unreadable instead of guessing.
"""

from __future__ import annotations

import re
from typing import Final

#: The longest timeout accepted anywhere: a week. Beyond that it is a typo.
MAX_SECONDS: Final = 7 * 24 * 3600
#: Longest input looked at; anything longer is rejected without a regex run.
MAX_INPUT_LENGTH: Final = 32

_SECONDS = re.compile(r"[0-9]+")
_DURATION = re.compile(r"(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?")


class DurationError(ValueError):
    """The text is not a timeout we accept; the message says why."""


def parse_seconds(text: object) -> int:
    """Whole seconds from ``"3600"``, ``"90s"``, ``"15m"``, ``"1h"`` or ``"1h30m15s"``.

    Raises :class:`DurationError` for anything else, including negative,
    fractional, non-ASCII and longer-than-a-week values, and for a value that
    is not a string at all (annotations and YAML can hold any type; typed as
    ``object`` so that the check below is the only one, compiled or not).
    """
    if not isinstance(text, str):
        raise DurationError("not a string")
    value = text.strip(" \t")
    if not value or len(value) > MAX_INPUT_LENGTH:
        raise DurationError("empty or too long")
    if _SECONDS.fullmatch(value):
        seconds = int(value)
    else:
        match = _DURATION.fullmatch(value)
        if match is None or not any(match.groupdict().values()):
            raise DurationError("expected whole seconds or a duration like 90s, 15m, 1h30m")
        hours, minutes, secs = (int(match.group(g) or 0) for g in ("h", "m", "s"))
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds > MAX_SECONDS:
        raise DurationError(f"longer than {MAX_SECONDS}s (7 days)")
    return seconds
