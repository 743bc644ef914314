"""Small API objects for the operator's unit tests, shaped as the API returns them."""

from __future__ import annotations

from typing import Any


def policy(name: str = "workers", namespace: str = "team-a", *, timeout: int = 30,
           mode: str = "Audit", generation: int = 1, uid: str | None = None,
           status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "graceful.io/v1alpha1",
        "kind": "GracefulPolicy",
        "metadata": {"name": name, "namespace": namespace, "generation": generation,
                     "uid": uid or f"uid-policy-{name}",
                     "managedFields": [{"manager": "kubectl"}]},
        "spec": {"mode": mode, "gracefulTimeoutSeconds": timeout, **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def container(name: str = "app", *, pre_stop: int | None = None,
              readiness: tuple[int, int] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "image": "busybox",
                            "resources": {"requests": {"cpu": "10m"}}}
    if pre_stop is not None:
        item["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop}}}
    if readiness is not None:
        item["readinessProbe"] = {"httpGet": {"path": "/", "port": 80},
                                  "periodSeconds": readiness[0],
                                  "failureThreshold": readiness[1]}
    return item


def deployment(name: str = "legacy", namespace: str = "team-a", *,
               policy: str | None = "workers", grace: int | None = None,
               pre_stop: int | None = None, uid: str | None = None, kind: str = "Deployment",
               annotations: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    notes = dict(annotations or {})
    if policy is not None:
        notes["graceful.io/policy"] = policy
    notes["kubectl.kubernetes.io/last-applied-configuration"] = "{" + "x" * 2000 + "}"
    pod_spec: dict[str, Any] = {"containers": [container(pre_stop=pre_stop)]}
    if grace is not None:
        pod_spec["terminationGracePeriodSeconds"] = grace
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}",
                     "generation": 1, "resourceVersion": "100",
                     "labels": labels or {"app": name}, "annotations": notes,
                     "managedFields": [{"manager": "kubectl", "fieldsV1": {}}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}},
        "status": {"replicas": 1, "readyReplicas": 0},
    }


def compliant_deployment(name: str = "good", namespace: str = "team-a",
                         **kwargs: Any) -> dict[str, Any]:
    """Compliant with :func:`policy`'s defaults: S=5, G=30, M=5, so T=40."""
    return deployment(name, namespace, grace=40, pre_stop=5, **kwargs)


def pod(name: str, owner_uid: str, *, owner_kind: str = "ReplicaSet", grace: int = 30,
        pre_stop: int | None = None, phase: str = "Pending",
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name, "namespace": "team-a", "uid": f"uid-{name}",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": "owner",
                             "uid": owner_uid, "controller": True}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"terminationGracePeriodSeconds": grace, "nodeName": "n1",
                 "containers": [container(pre_stop=pre_stop)]},
        "status": {"phase": phase},
    }


def replicaset(name: str, uid: str, deployment_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "team-a", "uid": uid,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "d", "uid": deployment_uid,
                                          "controller": True}]},
        "spec": {"replicas": 1},
    }


def cluster_policy(name: str = "standard", *, selects: dict[str, str] | None = None,
                   timeout: int = 30, generation: int = 1, uid: str | None = None,
                   status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A ClusterGracefulPolicy serving the namespaces labelled ``selects``
    (default ``budget=standard``); same budget defaults as :func:`policy`."""
    obj: dict[str, Any] = {
        "apiVersion": "graceful.io/v1alpha1",
        "kind": "ClusterGracefulPolicy",
        "metadata": {"name": name, "generation": generation,
                     "uid": uid or f"uid-cluster-policy-{name}"},
        "spec": {"mode": "Audit", "gracefulTimeoutSeconds": timeout,
                 "namespaceSelector": {"matchLabels": selects or {"budget": "standard"}},
                 **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": f"uid-ns-{name}",
                         "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}}
