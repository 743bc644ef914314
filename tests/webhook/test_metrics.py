"""The webhook's admission metrics read exactly as prometheus_client's own would.

The counter and histogram are a custom collector of plain numbers
(:mod:`graceful.webhook.metrics`); these tests feed the same observations to it
and to a ``prometheus_client`` Counter and Histogram with the same names,
labels and buckets, and compare every sample of the two expositions, creation
timestamps aside.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from graceful.core import WORKLOAD_KINDS
from graceful.webhook.metrics import BUCKETS, DURATION, OPERATIONS, REQUESTS, Metrics

OUTCOMES = ("mutated", "unchanged", "skipped", "bad_request")
KINDS = (*sorted(WORKLOAD_KINDS)[:2], "Kind1", "")
OPS = (*OPERATIONS[:2], "PATCH")

observation = st.tuples(
    st.sampled_from(KINDS), st.sampled_from(OPS), st.sampled_from(OUTCOMES),
    st.one_of(st.sampled_from([*BUCKETS, 0.0, 1e-9, 99.0]),
              st.floats(min_value=0, max_value=10, allow_nan=False)))


def _samples(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(exposition.decode())
            for sample in family.samples if not sample.name.endswith("_created")}


def _reference(observations: list[tuple[str, str, str, float]]) -> bytes:
    registry = CollectorRegistry()
    requests = Counter(REQUESTS, "AdmissionReviews answered by /mutate.",
                       ["kind", "operation", "outcome"], registry=registry)
    duration = Histogram(DURATION, "Time from receiving a /mutate request to its answer,"
                         " body read included.", ["kind", "outcome"], buckets=BUCKETS,
                         registry=registry)
    for asked_kind, asked_operation, outcome, seconds in observations:
        kind = asked_kind if asked_kind in WORKLOAD_KINDS else "other"
        operation = asked_operation if asked_operation in OPERATIONS else "other"
        requests.labels(kind, operation, outcome).inc()
        duration.labels(kind, outcome).observe(seconds)
    return generate_latest(registry)


@given(st.lists(observation, max_size=40))
def test_the_admission_metrics_read_as_prometheus_clients_own(
        observations: list[tuple[str, str, str, float]]) -> None:
    metrics = Metrics()
    for kind, operation, outcome, seconds in observations:
        metrics.observe(kind, operation, outcome, seconds)
    assert _samples(metrics.exposition()) == _samples(_reference(observations))


def test_every_series_has_its_creation_time() -> None:
    metrics = Metrics()
    metrics.observe("Deployment", "CREATE", "mutated", 0.001)
    names = [sample.name for family in text_string_to_metric_families(
        metrics.exposition().decode()) for sample in family.samples]
    assert f"{REQUESTS}_created" in names and f"{DURATION}_created" in names
