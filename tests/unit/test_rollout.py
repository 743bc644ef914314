"""Stale Pods from the controllers' status (``graceful.core.rollout.stale_of``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from graceful.core.rollout import Stale, old_pods, stale_of


def workload(kind: str, *, generation: int = 2, observed: int = 2,
             spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "w", "generation": generation},
            "spec": spec or {}, "status": {"observedGeneration": observed, **status}}


@pytest.mark.parametrize(("obj", "count"), [
    (workload("Deployment", spec={"paused": True}, replicas=2, updatedReplicas=0), 2),
    (workload("StatefulSet", spec={"updateStrategy": {"type": "OnDelete"}}, replicas=3,
              updatedReplicas=1, currentRevision="a", updateRevision="b"), 2),
    (workload("DaemonSet", spec={"updateStrategy": {"type": "OnDelete"}},
              desiredNumberScheduled=3, updatedNumberScheduled=1), 2),
])
def test_pods_nothing_will_replace_are_stale(obj: dict[str, Any], count: int) -> None:
    found = stale_of(obj)
    assert found is not None and found.count == count and found.why


@pytest.mark.parametrize("obj", [
    workload("Deployment", spec={"replicas": 2}, replicas=3, updatedReplicas=1),  # rolling
    workload("Deployment", spec={"paused": True}, replicas=2, updatedReplicas=2),  # none old
    workload("DaemonSet", desiredNumberScheduled=3, updatedNumberScheduled=1),  # rolling
    workload("Pod"),
])
def test_a_rollout_in_progress_or_no_old_pods_is_not_stale(obj: dict[str, Any]) -> None:
    assert stale_of(obj) is None


def test_the_message_counts_and_says_why() -> None:
    assert Stale(1, "the Deployment is paused").message == (
        "1 pod predates the compliant spec (the Deployment is paused); roll out to apply it")
    assert Stale(3, "x").message.startswith("3 pods predate")


counts = st.one_of(st.integers(-3, 20), st.none(), st.text(max_size=2), st.booleans())


@given(kind=st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "Pod", "Job"]),
       replicas=counts, updated=counts, paused=st.booleans())
def test_any_status_gives_a_consistent_answer(kind: str, replicas: Any, updated: Any,
                                              paused: bool) -> None:
    obj = {"kind": kind, "metadata": {"generation": 1}, "spec": {"paused": paused},
           "status": {"observedGeneration": 1, "replicas": replicas,
                      "updatedReplicas": updated}}
    assert old_pods(obj) >= 0
    found = stale_of(obj)
    assert found is None or (found.count == old_pods(obj) > 0 and found.why)
