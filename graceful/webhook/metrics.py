"""Prometheus metrics of the webhook, in a registry of their own.

Why a registry per app instead of the global one: tests build many apps in one
process, and ``prometheus_client`` refuses to register a metric name twice.
Why bounded labels: ``kind`` and ``operation`` come from the request, so
anything outside the known values is counted as ``other`` -- a hostile client
must not be able to grow the number of series.

Why the admission counter and histogram are a custom collector (the way
``prometheus_client`` documents for values kept elsewhere) instead of its
``Counter`` and ``Histogram``: those take a lock for every increment, so that
any thread may update them, and cost a microsecond per request, as much as
everything else the webhook adds to a request besides the engine. Here the
numbers are plain integers and floats, updated and read only by the event
loop that serves both ``/mutate`` and ``/metrics``, and turned into metric
families when Prometheus scrapes.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from graceful.core import WORKLOAD_KINDS
from graceful.webhook.cache import PolicySource

OPERATIONS: Final = ("CREATE", "UPDATE", "DELETE", "CONNECT")
#: Admission takes well under a millisecond; the API server gives up after timeoutSeconds.
BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
REQUESTS: Final = "graceful_webhook_admission_requests"
DURATION: Final = "graceful_webhook_admission_duration_seconds"
#: The ``le`` label of each bucket, formatted as prometheus_client formats its own.
_LE: Final = (*(floatToGoString(bound)  # type: ignore[no-untyped-call]
                for bound in BUCKETS), "+Inf")


class _Count:
    """One series of the request counter."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


class _Latency:
    """One series of the latency histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        # bucket ``le=b`` holds what is <= b: the first bound not below ``seconds``
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0
        out = []
        for le, count in zip(_LE, self.counts, strict=True):
            running += count
            out.append((le, float(running)))
        return out


class _Admissions(Collector):
    """Requests by kind, operation and outcome; latency by kind and outcome."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], _Count] = {}
        self.latencies: dict[tuple[str, str], _Latency] = {}

    def series(self, kind: str, operation: str, outcome: str) -> tuple[_Count, _Latency]:
        count = self.counts.get((kind, operation, outcome))
        if count is None:
            count = self.counts[kind, operation, outcome] = _Count()
        latency = self.latencies.get((kind, outcome))
        if latency is None:
            latency = self.latencies[kind, outcome] = _Latency()
        return count, latency

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(REQUESTS, "", labels=("kind", "operation", "outcome"))
        yield HistogramMetricFamily(DURATION, "", labels=("kind", "outcome"))

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(REQUESTS, "AdmissionReviews answered by /mutate.",
                                       labels=("kind", "operation", "outcome"))
        for labels, count in list(self.counts.items()):
            requests.add_metric(labels, float(count.value), created=count.created)
        yield requests
        duration = HistogramMetricFamily(
            DURATION, "Time from receiving a /mutate request to its answer, body read included.",
            labels=("kind", "outcome"))
        for (kind, outcome), latency in list(self.latencies.items()):
            duration.add_metric([kind, outcome], latency.cumulative(), latency.total)
            duration.add_sample(f"{DURATION}_created", {"kind": kind, "outcome": outcome},
                                latency.created)
        yield duration


class Metrics:
    """The webhook's metrics: admissions counted and timed, and the policy cache's state."""

    def __init__(self, policies: PolicySource | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._admissions = _Admissions()
        self.registry.register(self._admissions)
        # What the request said, to the series it counts in: unknown kinds and operations
        # are not kept as keys (they all count as "other"), so the map stays bounded.
        self._series: dict[tuple[str, str, str], tuple[_Count, _Latency]] = {}
        if policies is not None:
            source = policies
            ready = Gauge("graceful_webhook_policy_cache_ready",
                          "1 once the GracefulPolicy cache has synced.", registry=self.registry)
            ready.set_function(lambda: 1.0 if source.ready else 0.0)
            count = getattr(source, "__len__", None)
            if callable(count):
                size = Gauge("graceful_webhook_policies", "GracefulPolicies in the cache.",
                             registry=self.registry)
                size.set_function(lambda: float(count()))

    def observe(self, kind: str, operation: str, outcome: str, seconds: float) -> None:
        """Count one answered request (from the event loop's thread)."""
        key = (kind, operation, outcome)
        series = self._series.get(key)
        if series is None:
            known = kind in WORKLOAD_KINDS and operation in OPERATIONS
            series = self._admissions.series(kind if kind in WORKLOAD_KINDS else "other",
                                             operation if operation in OPERATIONS else "other",
                                             outcome)
            if known:  # a bounded set of keys
                self._series[key] = series
        count, latency = series
        count.value += 1
        latency.observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
