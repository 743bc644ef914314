"""The timeline picture: events in order, SIGKILL where it lands, exact numbers."""

from __future__ import annotations

from graceful.offline.timeline import Timings, draw, verdict


def _column(line: str, text: str) -> int:
    assert text in line, (text, line)
    return line.index(text)


def test_a_budget_that_fits() -> None:
    times, bar, events, ready = draw(Timings(5, 3600, 10, 3615, readiness_window=3), width=70)
    assert times.split() == ["0s", "5s", "3605s", "3615s"]
    assert "preStop 5s" in bar and "drain 3600s" in bar and "margin 10s" in bar
    assert "cut" not in bar
    # events sit under their times
    assert _column(events, "^SIGTERM") == _column(times, "5s")
    assert _column(events, "^SIGKILL at 3615s") == _column(times, "3615s")
    assert _column(bar, "preStop") < _column(bar, "drain") < _column(bar, "margin")
    assert ready.strip().startswith("[~") and "readiness window 3s (after SIGTERM" in ready
    assert verdict(Timings(5, 3600, 10, 3615)) == (
        "ok: SIGKILL at 3615s comes after the drain ends (3615s needed)")


def test_sigkill_cuts_the_drain() -> None:
    t = Timings(0, 3600, 10, 30)
    times, bar, events = draw(t, width=70)
    assert times.split() == ["0s", "30s", "3600s", "3610s"]
    assert "30s of drain 3600s" in bar and "cut 3570s" in bar and "(killed)" in bar
    assert events.startswith("  ^delete+SIGTERM")
    assert _column(events, "^SIGKILL at 30s") == _column(times, "30s")
    assert verdict(t) == "SIGKILL at 30s cuts the drain: the app needs until 3610s (3580s more)"


def test_sigkill_cuts_only_the_margin() -> None:
    t = Timings(5, 20, 10, 30)
    assert "cut 5s" in draw(t)[1]
    assert verdict(t) == "SIGKILL at 30s cuts the safety margin (35s needed)"


def test_a_larger_grace_period_shows_the_unused_time() -> None:
    bar = draw(Timings(5, 60, 10, 600))[1]
    assert "unused 525s" in bar


def test_unknown_timeout() -> None:
    t = Timings(0, None, 0, 30)
    assert "app stops (timeout unknown)" in draw(t)[1]
    assert verdict(t).startswith("the app's graceful timeout is unknown")


def test_a_readiness_window_longer_than_the_prestop() -> None:
    ready = draw(Timings(5, 60, 10, 75, readiness_window=30))[3]
    assert "readiness window 30s (after SIGTERM it only changes 'serving'" in ready


def test_width_is_respected_for_reasonable_inputs() -> None:
    for width in (40, 72, 100):
        for line in draw(Timings(5, 3600, 10, 3615, 3), width=width, indent="")[:2]:
            assert len(line) <= width + 8
        # tiny segments never vanish
        assert "preStop 5s" in draw(Timings(5, 604800, 10, 604815), width=width)[1]


def test_without_a_prestop_no_sleep_is_named() -> None:
    """Not opted in, no hook: nothing may be said about 'the preStop sleep' it does not have."""
    ready = draw(Timings(0, 60, 0, 30, readiness_window=30))[3]
    assert "the preStop sleep" not in ready
    assert "readiness window 30s (after SIGTERM it only changes 'serving'" in ready
    unknown = verdict(Timings(0, None, 0, 30))
    assert unknown.endswith("SIGKILL comes 30s after SIGTERM"), unknown
    assert verdict(Timings(5, None, 0, 30)).endswith("30s after the preStop starts")
