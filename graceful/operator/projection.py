"""What the operator keeps in memory of each watched object, and under which key.

Why projections: the audit reads only a workload's identity, labels,
annotations and pod template, and a Pod's grace period, hooks and probes. A
Deployment as the API returns it also carries ``managedFields``, ``status``
and often ``kubectl.kubernetes.io/last-applied-configuration`` (a second copy
of the whole object), which together are most of its size. Keeping only the
projection is what keeps the operator small with thousands of workloads.

How Pods are attached to their workload (for ``StalePods``): by ownership, not
by labels. A StatefulSet's or DaemonSet's Pods name it in their controller
``ownerReference``; a Deployment's Pods name a ReplicaSet, and the ReplicaSet
names the Deployment. So there are three small indexes: Pods by the uid of
their controller, ReplicaSets by the uid of their Deployment, and workloads by
namespace. The ``pod-template-hash`` label would save the ReplicaSet index but
ties the lookup to the Deployment controller's naming, and label selectors
can overlap; ownership is what the garbage collector itself uses.

Every function here is pure: an API object in, a small dict out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from graceful.core import is_bare_pod
from graceful.core.stale import SHUTDOWN_FIELDS

#: Kinds whose pod template the audit evaluates, with the apiVersion they are served at.
WORKLOAD_API_VERSIONS: Final = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Pod": "v1",
}
#: Kinds whose Pods the operator indexes (a Deployment's Pods are owned by ReplicaSets).
POD_CONTROLLERS: Final = ("ReplicaSet", "StatefulSet", "DaemonSet")
#: Annotations that are large and never read by the audit.
DROPPED_ANNOTATIONS: Final = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
#: Pod phases after which a Pod never runs again.
TERMINAL_PHASES: Final = frozenset({"Succeeded", "Failed"})


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any, dropped: frozenset[str] = frozenset()) -> dict[str, str]:
    return {k: v for k, v in _mapping(value).items()
            if isinstance(k, str) and isinstance(v, str) and k not in dropped}


def controller_of(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``ownerReference`` with ``controller: true``, if any."""
    refs = _mapping(body.get("metadata")).get("ownerReferences")
    if not isinstance(refs, Sequence):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return ref
    return None


def workload(body: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The projection of a Deployment, StatefulSet, DaemonSet or bare Pod; None otherwise.

    It is a valid (smaller) object of the same kind: ``graceful.core.evaluate``
    reads it exactly as it would read the original.
    """
    api_version = WORKLOAD_API_VERSIONS.get(kind)
    if api_version is None:
        return None
    meta = _mapping(body.get("metadata"))
    spec = _mapping(body.get("spec"))
    if kind == "Pod":
        if not is_bare_pod(body):  # the one definition, shared with the webhook
            return None
        kept_spec: Mapping[str, Any] = spec
    else:
        kept_spec = {"template": spec.get("template")}
    metadata: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "labels": _strings(meta.get("labels")),
        "annotations": _strings(meta.get("annotations"), DROPPED_ANNOTATIONS),
    }
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": kept_spec}


def _container(value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    item = _mapping(value)
    return {k: item[k] for k in keys if k in item}


def running_pod(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(uid of its controller, projection)`` for a Pod that can still run; else None.

    The projection holds what ``graceful.core.stale_pods`` reads: the name,
    the grace period, and per container its name and its shutdown fields
    (``lifecycle`` and probes; init containers also ``restartPolicy``, to tell
    sidecars apart). Pods being deleted or finished are left out: they will
    not be stopped again.
    """
    owner = controller_of(body)
    if owner is None or owner.get("kind") not in POD_CONTROLLERS:
        return None
    owner_uid = owner.get("uid")
    meta = _mapping(body.get("metadata"))
    if not isinstance(owner_uid, str) or meta.get("deletionTimestamp"):
        return None
    if _mapping(body.get("status")).get("phase") in TERMINAL_PHASES:
        return None
    spec = _mapping(body.get("spec"))
    containers = spec.get("containers")
    inits = spec.get("initContainers")
    kept: dict[str, Any] = {
        "containers": [_container(c, ("name", *SHUTDOWN_FIELDS))
                       for c in (containers if isinstance(containers, list) else [])],
    }
    if "terminationGracePeriodSeconds" in spec:
        kept["terminationGracePeriodSeconds"] = spec["terminationGracePeriodSeconds"]
    if isinstance(inits, list) and inits:
        kept["initContainers"] = [_container(c, ("name", "restartPolicy", *SHUTDOWN_FIELDS))
                                  for c in inits]
    projection = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": meta.get("name")}, "spec": kept}
    return owner_uid, projection


def replicaset_owner(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(uid of its Deployment, its own uid)`` for a ReplicaSet a Deployment controls."""
    owner = controller_of(body)
    uid = _mapping(body.get("metadata")).get("uid")
    if owner is None or owner.get("kind") != "Deployment" or not isinstance(uid, str):
        return None
    owner_uid = owner.get("uid")
    return (owner_uid, uid) if isinstance(owner_uid, str) else None
