"""The shutdown timeline of one container, drawn as text.

Why a picture: the budget is a sum of four numbers that live in three places
(the policy, the pod spec, the app's own flags), and the failure it prevents
is a SIGKILL that lands in the middle of a drain. Seeing the SIGKILL marker
left of the end of the drain is faster than reading the arithmetic.

Why a non-linear scale: a 5 s preStop next to a 3600 s drain would be zero
characters wide on a linear one. Each segment gets at least the width of its
label and the rest is shared in proportion to the durations, so the picture
stays readable and the numbers on it stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Fill characters of the segment kinds.
FILL = {"preStop": "-", "drain": "=", "margin": ".", "idle": " ", "cut": "x", "unknown": "?"}


@dataclass(frozen=True)
class Timings:
    """The numbers of one container's shutdown, in seconds from the preStop start."""

    pre_stop: int
    """S, the preStop sleep (for a hook of unknown duration: the one the budget assumes)."""
    timeout: int | None
    """G; None when nothing says how long the app drains."""
    margin: int
    """M; 0 when no policy applies."""
    grace: int
    """T, ``terminationGracePeriodSeconds`` (Kubernetes' default 30 when unset)."""
    readiness_window: int | None = None
    """``periodSeconds * failureThreshold`` of the readiness probe; None without one."""
    pre_stop_known: bool = True
    """False for a hook of unknown length: nothing after its start can be placed in time."""

    @property
    def sigterm(self) -> int:
        return self.pre_stop

    @property
    def needed(self) -> int | None:
        """S + G + M, or None when G is unknown."""
        return None if self.timeout is None else self.sigterm + self.timeout + self.margin


@dataclass(frozen=True)
class _Segment:
    kind: str
    start: int
    end: int
    label: str


def _segments(t: Timings) -> list[_Segment]:
    if not t.pre_stop_known:
        # No SIGTERM to place: drawing S followed by "unused" time would claim a drain
        # the hook may well eat. One segment says what is known.
        drain = f"{t.timeout}s" if t.timeout is not None else "of unknown length"
        return [_Segment("unknown", 0, max(t.grace, 1),
                         f"own preStop (length unknown), then SIGTERM and drain {drain}")]
    planned: list[_Segment] = []
    s = t.sigterm
    if s > 0:
        planned.append(_Segment("preStop", 0, s, f"preStop {s}s"))
    if t.timeout is not None:
        planned.append(_Segment("drain", s, s + t.timeout, f"drain {t.timeout}s"))
        if t.margin:
            end = s + t.timeout
            planned.append(_Segment("margin", end, end + t.margin, f"margin {t.margin}s"))
    end = planned[-1].end if planned else 0
    if t.timeout is None and t.grace > end:
        planned.append(_Segment("drain", end, t.grace, "app stops (timeout unknown)"))
    elif t.grace > end:
        planned.append(_Segment("idle", end, t.grace, f"unused {t.grace - end}s"))
    # SIGKILL at T cuts every segment that would end after it.
    segments: list[_Segment] = []
    for seg in planned:
        if seg.start == seg.end:
            continue
        if seg.end <= t.grace or seg.start == seg.end:
            segments.append(seg)
        elif seg.start >= t.grace:
            segments.append(_Segment("cut", seg.start, seg.end, f"{seg.label} (killed)"))
        else:
            done = t.grace - seg.start
            segments.append(_Segment(seg.kind, seg.start, t.grace, f"{done}s of {seg.label}"))
            segments.append(_Segment("cut", t.grace, seg.end, f"cut {seg.end - t.grace}s"))
    return segments


def _widths(segments: list[_Segment], width: int) -> list[int]:
    minimum = [max(len(seg.label) + 4, len(f"{seg.start}s") + 2) for seg in segments]
    spare = max(width - sum(minimum), 0)
    total = sum(seg.end - seg.start for seg in segments) or 1
    return [m + spare * (seg.end - seg.start) // total for m, seg in zip(minimum, segments,
                                                                          strict=True)]


def _put(line: list[str], column: int, text: str) -> None:
    while len(line) < column + len(text):
        line.append(" ")
    line[column:column + len(text)] = list(text)


def draw(t: Timings, width: int = 72, indent: str = "  ") -> list[str]:
    """Four lines: times, the bar, the events (delete, SIGTERM, SIGKILL), the readiness window."""
    segments = _segments(t)
    widths = _widths(segments, width)
    columns = [sum(widths[:i]) for i in range(len(segments))]
    end_column = sum(widths)

    def column_of(second: int) -> int:
        for seg, col, w in zip(segments, columns, widths, strict=True):
            if seg.start <= second <= seg.end and seg.end > seg.start:
                return col + round(w * (second - seg.start) / (seg.end - seg.start))
        return end_column if second >= (segments[-1].end if segments else 0) else 0

    times: list[str] = []
    bar: list[str] = []
    for seg, col, w in zip(segments, columns, widths, strict=True):
        _put(times, col, f"{seg.start}s")
        fill = FILL[seg.kind]
        _put(bar, col, "|" + f" {seg.label} ".center(w - 1, fill))
    last = segments[-1].end if segments else t.grace
    _put(times, end_column, f"{last}s")
    _put(bar, end_column, "|")

    events: list[str] = []
    _put(events, 0, "^delete")
    sigterm_col = column_of(t.sigterm)
    if not t.pre_stop_known:
        pass  # SIGTERM comes when the hook returns: no place on the line
    elif sigterm_col > 0:
        _put(events, max(sigterm_col, len(events) + 1), "^SIGTERM")
    else:
        events[0:7] = list("^delete+SIGTERM")
    kill_col = column_of(t.grace)
    _put(events, max(kill_col, len(events) + 1), f"^SIGKILL at {t.grace}s")

    lines = [indent + "".join(times).rstrip(), indent + "".join(bar).rstrip(),
             indent + "".join(events).rstrip()]
    if t.readiness_window is not None:
        ready_end = max(column_of(min(t.readiness_window, last)), 2)
        window = "[" + "~" * max(ready_end - 2, 0) + "]"
        lines.append(indent + f"{window} readiness window {t.readiness_window}s (after SIGTERM"
                     " it only changes 'serving': the endpoints drop the pod at delete)")
    return lines


def verdict(t: Timings) -> str:
    """One line: does SIGKILL come after the drain?"""
    needed = t.needed
    if not t.pre_stop_known:
        return (f"unknown: SIGKILL comes {t.grace}s after the preStop starts, and the hook's"
                " own length decides what is left; declare it (graceful.io/prestop-seconds)")
    if needed is None:
        start = "the preStop starts" if t.sigterm else "SIGTERM"
        return f"the app's graceful timeout is unknown: SIGKILL comes {t.grace}s after {start}"
    if t.grace >= needed:
        return f"ok: SIGKILL at {t.grace}s comes after the drain ends ({needed}s needed)"
    if t.sigterm + (t.timeout or 0) > t.grace:
        return (f"SIGKILL at {t.grace}s cuts the drain: the app needs until {needed}s"
                f" ({needed - t.grace}s more)")
    return f"SIGKILL at {t.grace}s cuts the safety margin ({needed}s needed)"
