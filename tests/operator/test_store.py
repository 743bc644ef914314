"""The operator's memory of workloads, and the gate that opens once the listing is complete."""

from __future__ import annotations

import copy

from graceful.operator.store import ListingGate, WorkloadStore
from tests.operator import objects


def test_a_status_change_counts_only_when_it_changes_what_rollout_concludes() -> None:
    store = WorkloadStore()
    body = objects.compliant_deployment("web")
    body["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}
    assert store.apply("Deployment", body, deleted=False) == ("team-a", "Deployment", "web")
    edited = copy.deepcopy(body)
    edited["metadata"]["generation"] = 2
    edited["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
    assert store.apply("Deployment", edited, deleted=False) is not None  # the template
    observed = copy.deepcopy(edited)
    observed["status"] = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1}
    assert store.apply("Deployment", observed, deleted=False) is None  # rolling: no news
    paused = copy.deepcopy(observed)
    paused["spec"]["paused"] = True
    assert store.apply("Deployment", paused, deleted=False) is not None  # now stale
    assert store.apply("Deployment", paused, deleted=True) is not None
    assert len(store) == 0 and list(store.namespaces()) == []


def test_owned_pods_are_not_kept() -> None:
    store = WorkloadStore()
    assert store.apply("Pod", objects.pod("web-1", "rs"), deleted=False) is None
    assert len(store) == 0


def test_the_gate_opens_once_every_counted_object_came() -> None:
    gate = ListingGate()
    gate.recount("Deployment", 2)
    gate.recount("Pod", 0)
    gate.observe("Deployment", "a", deleted=False, now=1.0)
    assert not gate.complete()
    gate.observe("Deployment", "a", deleted=False, now=1.5)  # the same one again
    assert not gate.complete() and not gate.quiet(2.0, seconds=1.0)
    assert gate.quiet(3.0, seconds=1.0)
    gate.recount("Deployment", 1)  # one was deleted before kopf listed it
    assert gate.complete() and gate.seen == {}
    gate.observe("Deployment", "b", deleted=False, now=4.0)
    assert gate.complete()  # open for good
