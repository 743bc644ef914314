"""When to recompute: dirty keys, a short quiet period and a hard deadline.

Why batch: one ``kubectl apply`` of 1,000 Deployments is thousands of watch
events (each Deployment, its ReplicaSet, its Pods, their status updates).
Writing a policy's status once per event would be thousands of writes of the
same object, each one a new resourceVersion, an etcd write and a watch event
for everyone watching policies. Instead an event only marks its namespace
dirty; the namespace is audited once things go quiet for ``quiet`` seconds,
and never later than ``max_delay`` after the first mark, so a steady stream of
events cannot postpone the status forever. With the defaults (0.2 s and 1 s)
a change reaches the status in about a second, well inside the 5 s promise.

The tracker is pure: time is passed in, so tests use plain numbers and never
sleep.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class DirtyTracker(Generic[K]):
    """Keys waiting to be processed and the time each one is due."""

    quiet: float = 0.2
    """Seconds without a new mark before a key is due."""
    max_delay: float = 1.0
    """Seconds after the first mark by which a key is due, however busy it is."""
    _first: dict[K, float] = field(default_factory=dict)
    _due: dict[K, float] = field(default_factory=dict)

    def mark(self, key: K, now: float) -> None:
        """``key`` changed at ``now``."""
        first = self._first.setdefault(key, now)
        self._due[key] = min(first + self.max_delay, now + self.quiet)

    def mark_many(self, keys: Iterable[K], now: float) -> None:
        """Every key in ``keys`` changed at ``now``."""
        for key in keys:
            self.mark(key, now)

    def retry(self, key: K, at: float) -> None:
        """Process ``key`` again at ``at`` (after a failure), unless it is due sooner."""
        current = self._due.get(key)
        if current is None or at < current:
            self._due[key] = at
            self._first.setdefault(key, at)

    def due_at(self, key: K) -> float | None:
        """When ``key`` is due, or None when it is clean."""
        return self._due.get(key)

    def next_due(self) -> float | None:
        """The earliest due time, or None when nothing is dirty."""
        return min(self._due.values(), default=None)

    def pop_due(self, now: float) -> list[K]:
        """The keys due at ``now``, earliest first; they are clean afterwards."""
        ready = sorted((due, index, key) for index, (key, due) in enumerate(self._due.items())
                       if due <= now)
        for _, _, key in ready:
            del self._due[key]
            del self._first[key]
        return [key for _, _, key in ready]

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due
