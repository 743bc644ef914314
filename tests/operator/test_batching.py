"""Dirty-namespace batching: when a namespace is audited, with time as plain numbers."""

from __future__ import annotations

from graceful.operator.batching import DirtyTracker


def test_a_single_mark_is_due_after_the_quiet_period() -> None:
    tracker: DirtyTracker[str] = DirtyTracker(quiet=0.2, max_delay=1.0)
    tracker.mark("a", 10.0)
    assert tracker.pop_due(10.1) == []
    assert tracker.next_due() == 10.2
    assert tracker.pop_due(10.2) == ["a"]
    assert "a" not in tracker and len(tracker) == 0


def test_a_burst_is_one_flush() -> None:
    tracker: DirtyTracker[str] = DirtyTracker(quiet=0.2, max_delay=1.0)
    for step in range(3):
        tracker.mark("a", 10.0 + step * 0.1)
    assert tracker.pop_due(10.25) == []
    assert tracker.pop_due(10.4) == ["a"]
    assert tracker.pop_due(11.0) == []


def test_a_steady_stream_cannot_postpone_past_max_delay() -> None:
    tracker: DirtyTracker[str] = DirtyTracker(quiet=0.2, max_delay=1.0)
    now = 0.0
    flushed_at = None
    while now < 3.0:
        tracker.mark("busy", now)
        if tracker.pop_due(now):
            flushed_at = now
            break
        now = round(now + 0.05, 2)
    assert flushed_at == 1.0


def test_keys_are_due_earliest_first_and_independently() -> None:
    tracker: DirtyTracker[str] = DirtyTracker(quiet=0.2, max_delay=1.0)
    tracker.mark("late", 1.0)
    tracker.mark("early", 0.5)
    assert tracker.pop_due(2.0) == ["early", "late"]


def test_retry_schedules_a_clean_key_and_never_delays_a_dirty_one() -> None:
    tracker: DirtyTracker[str] = DirtyTracker(quiet=0.2, max_delay=1.0)
    tracker.retry("failed", 5.0)
    assert tracker.due_at("failed") == 5.0
    tracker.mark("dirty", 0.0)
    tracker.retry("dirty", 5.0)
    assert tracker.due_at("dirty") == 0.2
    assert tracker.pop_due(1.0) == ["dirty"]
    assert tracker.pop_due(5.0) == ["failed"]


def test_mark_many() -> None:
    tracker: DirtyTracker[str] = DirtyTracker(quiet=0.5, max_delay=1.0)
    tracker.mark_many(["a", "b"], 0.0)
    assert sorted(tracker.pop_due(0.5)) == ["a", "b"]
