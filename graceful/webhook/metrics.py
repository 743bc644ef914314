"""Prometheus metrics of the webhook, in a registry of their own.

Why a registry per app instead of the global one: tests build many apps in one
process, and ``prometheus_client`` refuses to register a metric name twice.
Why bounded labels: ``kind`` and ``operation`` come from the request, so
anything outside the known values is counted as ``other`` -- a hostile client
must not be able to grow the number of series. Bounded labels also let each
series' counter and histogram be looked up once and kept (``_series``): the
client library's ``labels()`` checks and locks on every call.
"""

from __future__ import annotations

from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from graceful.core import WORKLOAD_KINDS
from graceful.webhook.cache import PolicySource

OPERATIONS: Final = ("CREATE", "UPDATE", "DELETE", "CONNECT")
#: Admission takes well under a millisecond; the API server gives up after timeoutSeconds.
BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class Metrics:
    """Requests by kind, operation and outcome; latency by kind and outcome."""

    def __init__(self, policies: PolicySource | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.requests = Counter(
            "graceful_webhook_admission_requests", "AdmissionReviews answered by /mutate.",
            ["kind", "operation", "outcome"], registry=self.registry)
        self.duration = Histogram(
            "graceful_webhook_admission_duration_seconds",
            "Time from receiving a /mutate request to its answer, body read included.",
            ["kind", "outcome"], buckets=BUCKETS, registry=self.registry)
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
        """Count one answered request."""
        key = (kind, operation, outcome)
        series = self._series.get(key)
        if series is None:
            kind = kind if kind in WORKLOAD_KINDS else "other"
            operation = operation if operation in OPERATIONS else "other"
            series = (self.requests.labels(kind, operation, outcome),
                      self.duration.labels(kind, outcome))
            if key[0] in WORKLOAD_KINDS and key[1] in OPERATIONS:  # a bounded set of keys
                self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
