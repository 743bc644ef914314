"""The live objects, gathered into the offline tools' :class:`Inventory`.

Once gathered, a live workload is judged by exactly the functions that judge a
manifest (``graceful.offline.audit.audit``, ``graceful.core.evaluate``,
``graceful.core.stale_pods``): this module only reads.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Final

from graceful.core import (
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    GracefulPolicy,
    PolicyError,
)
from graceful.core.podspec import is_bare_pod
from graceful.live.client import Client, NotFound
from graceful.live.target import RESOURCES, Resource, Target
from graceful.offline.loader import Document, Inventory

POLICIES: Final = Resource(KIND, GROUP, VERSION, PLURAL)
CLUSTER_POLICIES: Final = Resource(CLUSTER_KIND, GROUP, VERSION, CLUSTER_PLURAL)
NAMESPACES: Final = Resource("Namespace", "", "v1", "namespaces")
#: Where a live object comes from, in the audit's report (a file's path, offline).
SOURCE: Final = "live"
#: Phases of Pods that have stopped: they carry no budget any more.
_DONE: Final = ("Succeeded", "Failed")


def _warn(message: str) -> None:
    print(f"graceful: warning: {message}", file=sys.stderr)


def _policies(client: Client, resource: Resource,
              namespace: str | None) -> list[GracefulPolicy]:
    """The valid policies of ``resource``; invalid ones are skipped with a warning, as the
    webhook's cache skips them; a CRD that is not installed means none."""
    try:
        items = client.list(resource, namespace)
    except NotFound:
        _warn(f"the {resource.qualified} CRD is not installed: no {resource.kind} applies")
        return []
    found = []
    for item in items:
        try:
            found.append(GracefulPolicy.from_object(item))
        except PolicyError as exc:
            meta = item.get("metadata") or {}
            _warn(f"skipped {resource.kind} {meta.get('namespace', '')}/{meta.get('name')}:"
                  f" {' '.join(str(exc).split())}")
    return found


def _labels(client: Client, namespace: str | None) -> dict[str, dict[str, str]]:
    """Namespace labels, for cluster policies' namespaceSelector."""
    if namespace is None:
        items = client.list(NAMESPACES, None)
    else:
        items = [client.read(NAMESPACES, None, namespace)]
    labels = {}
    for item in items:
        meta = item.get("metadata") or {}
        raw = meta.get("labels")
        labels[str(meta.get("name"))] = ({str(k): str(v) for k, v in raw.items()}
                                         if isinstance(raw, Mapping) else {})
    return labels


def inventory(client: Client, namespace: str | None,
              workloads: list[dict[str, Any]]) -> Inventory:
    """``workloads`` with the policies (and, when a cluster policy exists, the namespace
    labels) they are judged under; ``namespace`` None means all namespaces."""
    policies: dict[str, list[GracefulPolicy]] = {}
    for policy in _policies(client, POLICIES, namespace):
        policies.setdefault(policy.namespace or "", []).append(policy)
    cluster = sorted(_policies(client, CLUSTER_POLICIES, None), key=lambda p: p.name)
    # Namespace labels are read only when a cluster policy may select by them: one
    # permission fewer for the common case.
    labels = _labels(client, namespace) if cluster else {}
    documents = [(str((w.get("metadata") or {}).get("namespace") or namespace or ""),
                  Document(SOURCE, w)) for w in workloads]
    return Inventory(documents, policies, cluster, labels)


def workloads(client: Client, namespace: str | None) -> list[dict[str, Any]]:
    """Every workload in ``namespace`` (all when None) the operator would audit: each kind
    of :data:`RESOURCES`, and of Pods only the bare ones (the rest are their controller's)."""
    found = []
    for resource in RESOURCES.values():
        for obj in client.list(resource, namespace):
            if resource.kind != "Pod" or is_bare_pod(obj):
                found.append(obj)
    return found


def workload(client: Client, target: Target, namespace: str) -> dict[str, Any]:
    obj = client.read(target.resource, namespace, target.name)
    return {"apiVersion": target.resource.api_version, "kind": target.resource.kind, **obj}


def selector_string(selector: object) -> str | None:
    """A ``LabelSelector`` as the ``labelSelector`` query parameter; None if it selects nothing
    we can express (absent, or an unknown operator)."""
    if not isinstance(selector, Mapping):
        return None
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            return None
    return ",".join(terms) or None


def running_pods(client: Client, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Pods of a live workload that have not stopped, by name."""
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    pod_resource = RESOURCES["Pod"]
    kind = obj.get("kind")
    if kind == "Pod":
        pods = [dict(obj)]
    elif kind == "CronJob":
        uid = meta.get("uid")
        jobs = [j for j in client.list(RESOURCES["Job"], namespace)
                if any(ref.get("uid") == uid
                       for ref in (j.get("metadata") or {}).get("ownerReferences") or [])]
        uids = [str((j.get("metadata") or {}).get("uid")) for j in jobs]
        pods = client.list(pod_resource, namespace,
                           f"batch.kubernetes.io/controller-uid in ({','.join(uids)})"
                           ) if uids else []
    else:
        selector = selector_string((obj.get("spec") or {}).get("selector"))
        pods = client.list(pod_resource, namespace, selector) if selector else []
    alive = [p for p in pods if (p.get("status") or {}).get("phase") not in _DONE]
    return sorted(alive, key=lambda p: str((p.get("metadata") or {}).get("name")))
