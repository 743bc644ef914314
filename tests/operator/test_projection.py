"""What the indexes keep: small, and enough for graceful.core to decide the same."""

from __future__ import annotations

import json

from graceful.core import GracefulPolicy, evaluate
from graceful.core.rollout import stale_of as rollout
from graceful.operator import projection
from tests.operator import objects


def test_workload_projection_drops_status_managed_fields_and_last_applied() -> None:
    body = objects.deployment()
    kept = projection.workload(body, "Deployment")
    assert kept is not None
    assert kept["status"] == {"replicas": 1}  # what graceful.core.rollout reads, no more
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
    assert projection.workload({"kind": "ReplicaSet"}, "ReplicaSet") is None


def _batch(kind: str, deployment: dict[str, object]) -> dict[str, object]:
    """A Job or CronJob with the Deployment's metadata and pod template."""
    template = deployment["spec"]["template"]  # type: ignore[index]
    spec: dict[str, object] = {"template": template}
    if kind == "CronJob":
        spec = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": spec}}
    return {"apiVersion": "batch/v1", "kind": kind, "metadata": deployment["metadata"],
            "spec": spec, "status": {"active": 1}}


def test_jobs_and_cronjobs_are_audited_from_their_pod_template() -> None:
    """Rule 8 of the drain model: the audit sees batch Pods' budget (G + M) as the webhook does."""
    policies = [GracefulPolicy.from_object(objects.policy())]
    for kind in ("Job", "CronJob"):
        for source in (objects.deployment(), objects.compliant_deployment()):
            body = _batch(kind, source)
            kept = projection.workload(body, kind)
            assert kept is not None and kept["kind"] == kind
            assert kept["status"] == {}  # no rollout: nothing of the status is read
            assert evaluate(kept, policies).findings == evaluate(body, policies).findings
            assert rollout(kept) is None
        assert evaluate(_batch(kind, objects.deployment()), policies).findings, kind


def test_the_projection_keeps_what_rollout_reads() -> None:
    body = objects.compliant_deployment()
    body["metadata"]["generation"] = 3
    body["spec"]["paused"] = True
    body["status"] = {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 0,
                      "readyReplicas": 0, "conditions": [
                          {"type": "Available", "status": "False", "message": "x" * 300},
                          {"type": "Progressing", "status": "False",
                           "reason": "ProgressDeadlineExceeded", "message": "y" * 300}]}
    kept = projection.workload(body, "Deployment")
    assert kept is not None
    assert rollout(kept) == rollout(body)
    assert kept["status"]["conditions"] == [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    sts = objects.compliant_deployment(kind="StatefulSet")
    sts["spec"]["updateStrategy"] = {"type": "OnDelete"}
    sts["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0,
                     "currentRevision": "a", "updateRevision": "b"}
    kept = projection.workload(sts, "StatefulSet")
    assert kept is not None and rollout(kept) == rollout(sts) and rollout(kept) is not None


def test_the_pod_selector_leaves_out_every_controllers_pods() -> None:
    assert projection.BARE_POD_SELECTOR == (
        "!pod-template-hash,!controller-revision-hash,"
        "!batch.kubernetes.io/controller-uid,!controller-uid")
