"""Dirty-namespace batching: when a namespace is audited, with time as plain numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graceful.operator.batching import DirtyTracker, TokenBucket


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


def test_the_bucket_lets_a_burst_through_then_spaces_takes_at_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    waits = [bucket.take(0.0) for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])  # each caller reserves the next slot


def test_the_bucket_refills_with_time_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(0.1) == 0.0  # one token came back in 0.1 s
    assert bucket.take(0.1) == pytest.approx(0.1)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]  # never more than burst
    assert bucket.take(100.0) == pytest.approx(0.1)


@given(st.lists(st.floats(0.0, 5.0), min_size=1, max_size=200))
def test_takes_never_exceed_burst_plus_rate_times_time(gaps: list[float]) -> None:
    bucket = TokenBucket(rate=5.0, burst=4)
    now, starts = 0.0, []
    for gap in gaps:
        now += gap
        starts.append(now + bucket.take(now))
    starts.sort()
    for i, start in enumerate(starts):
        # in any window [0, start], at most burst + rate * start takes may have begun
        assert i + 1 <= 4 + 5.0 * start + 1e-6
