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


@dataclass
class TokenBucket:
    """At most ``rate`` takes a second on average, ``burst`` of them at once.

    Why: a first audit of a large cluster has thousands of Events to post
    (5,650 at 10,000 workloads, half mismatched). Posted as fast as the API
    server answers, they took two cores' worth of API server for a minute,
    and every status write of that minute queued behind them. A controller's
    client is rate limited for the same reason (client-go's default is 5
    requests a second, kube-controller-manager's 20). Time is passed in:
    ``take`` says how long the caller must wait, so each caller reserves its
    own slot, and tests use plain numbers instead of sleeping.
    """

    rate: float
    burst: float
    _tokens: float | None = None
    _last: float = 0.0

    def take(self, now: float) -> float:
        """Take one token at ``now``; the seconds to wait before using it."""
        if self._tokens is None:
            self._tokens = self.burst
        else:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
