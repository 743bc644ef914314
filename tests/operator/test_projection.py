"""What the indexes keep: small, and enough for graceful.core to decide the same."""

from __future__ import annotations

import json

from graceful.core import GracefulPolicy, evaluate, stale_pods
from graceful.operator import projection
from tests.operator import objects


def test_workload_projection_drops_status_managed_fields_and_last_applied() -> None:
    body = objects.deployment()
    kept = projection.workload(body, "Deployment")
    assert kept is not None
    assert "status" not in kept
    assert "managedFields" not in kept["metadata"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in kept["metadata"][
        "annotations"]
    assert kept["metadata"]["annotations"]["graceful.io/policy"] == "workers"
    assert len(json.dumps(kept)) < len(json.dumps(body)) / 3


def test_the_projection_evaluates_exactly_like_the_object() -> None:
    policies = [GracefulPolicy.from_object(objects.policy())]
    for body in (objects.deployment(), objects.compliant_deployment(),
                 objects.deployment(annotations={"graceful.io/graceful-timeout": "nope"})):
        kept = projection.workload(body, "Deployment")
        assert kept is not None
        assert evaluate(kept, policies).findings == evaluate(body, policies).findings


def test_bare_pods_are_workloads_owned_pods_are_not() -> None:
    bare = objects.pod("solo", "x")
    del bare["metadata"]["ownerReferences"]
    kept = projection.workload(bare, "Pod")
    assert kept is not None and kept["spec"] == bare["spec"]
    assert projection.workload(objects.pod("owned", "rs-1"), "Pod") is None
    assert projection.workload({"kind": "Job"}, "Job") is None


def test_running_pod_is_indexed_by_its_controller() -> None:
    found = projection.running_pod(objects.pod("web-1", "rs-1", pre_stop=5))
    assert found is not None
    owner, kept = found
    assert owner == "rs-1"
    assert kept["metadata"] == {"name": "web-1"}
    assert kept["spec"]["terminationGracePeriodSeconds"] == 30
    assert kept["spec"]["containers"] == [
        {"name": "app", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}]


def test_finished_deleted_ownerless_or_foreign_pods_are_not_indexed() -> None:
    assert projection.running_pod(objects.pod("a", "rs", phase="Succeeded")) is None
    assert projection.running_pod(objects.pod("b", "rs", deleting=True)) is None
    assert projection.running_pod(objects.pod("c", "job", owner_kind="Job")) is None
    orphan = objects.pod("d", "rs")
    orphan["metadata"]["ownerReferences"][0]["controller"] = False
    assert projection.running_pod(orphan) is None


def test_stale_pods_reads_the_pod_projection_like_the_pod() -> None:
    policies = [GracefulPolicy.from_object(objects.policy())]
    decision = evaluate(objects.compliant_deployment(), policies)
    pods = [objects.pod("old", "rs", grace=30), objects.pod("new", "rs", grace=40, pre_stop=5)]
    kept = [found[1] for found in map(projection.running_pod, pods) if found]
    assert stale_pods(decision, kept) == stale_pods(decision, pods) == ["old"]


def test_replicaset_owner() -> None:
    assert projection.replicaset_owner(objects.replicaset("rs", "rs-uid", "dep-uid")) == (
        "dep-uid", "rs-uid")
    orphan = objects.replicaset("rs", "rs-uid", "dep-uid")
    orphan["metadata"]["ownerReferences"] = []
    assert projection.replicaset_owner(orphan) is None
