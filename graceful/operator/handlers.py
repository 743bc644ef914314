"""The kopf registry: four indexes, one event handler, and the operator's lifetime.

What kopf does here, and what it must not do:

- ``@kopf.index`` handlers keep small projections (``projection``) of
  GracefulPolicies, workloads, running Pods and ReplicaSets. Indexing writes
  nothing to the cluster.
- One ``@kopf.on.event`` handler marks the object's namespace dirty. kopf
  calls non-index handlers only after every index has been fully listed, so
  its first call also tells the auditor that the indexes are complete: an
  audit from half-listed indexes would report "matched 0" after a restart.
- No ``on.create``/``on.update``/daemon/timer handlers on watched resources:
  those make kopf store progress annotations or finalizers on the objects,
  and the operator never writes to the workloads it audits.
- ``@kopf.on.startup`` starts the auditor, the Lease elector and (unless
  disabled) the keeper of the webhook's certificates, a background task rather
  than a kopf timer because it polls two named objects nobody needs to watch;
  ``cleanup`` stops them and releases the Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from kubernetes import client as k8s_client

from graceful.core import GROUP, PLURAL, VERSION
from graceful.operator import projection
from graceful.operator.audit import policy_entry
from graceful.operator.certificate_sync import CertificateKeeper
from graceful.operator.kube import KubeApi, connection_info
from graceful.operator.lease import LeaseElector
from graceful.operator.reconciler import Auditor, Views

logger = logging.getLogger(__name__)

WORKLOAD_RESOURCES = frozenset({
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "daemonsets"),
    ("", "v1", "pods"),
})
WATCHED_RESOURCES = WORKLOAD_RESOURCES | {
    ("apps", "v1", "replicasets"),
    (GROUP, VERSION, PLURAL),
}


def _triple(resource: kopf.Resource) -> tuple[str, str, str]:
    return (resource.group, resource.version, resource.plural)


def is_workload(resource: kopf.Resource) -> bool:
    return _triple(resource) in WORKLOAD_RESOURCES


def is_watched(resource: kopf.Resource) -> bool:
    return _triple(resource) in WATCHED_RESOURCES


def index_policy(body: kopf.Body, **_: Any) -> dict[str, Any]:
    namespace = body.get("metadata", {}).get("namespace")
    return {namespace: policy_entry(body)} if namespace else {}


def index_workload(body: kopf.Body, resource: kopf.Resource, **_: Any) -> dict[str, Any]:
    kept = projection.workload(body, resource.kind or "")
    namespace = body.get("metadata", {}).get("namespace")
    return {namespace: kept} if kept is not None and namespace else {}


def index_pod(body: kopf.Body, **_: Any) -> dict[str, Any]:
    found = projection.running_pod(body)
    return {} if found is None else {found[0]: found[1]}


def index_replicaset(body: kopf.Body, **_: Any) -> dict[str, Any]:
    found = projection.replicaset_owner(body)
    return {} if found is None else {found[0]: found[1]}


def build_registry(auditor: Auditor, elector: LeaseElector, api: KubeApi,
                   cfg: k8s_client.Configuration, *,
                   keeper: CertificateKeeper | None = None) -> kopf.OperatorRegistry:
    """A fresh registry wired to ``auditor`` (no module-level state)."""
    registry = kopf.OperatorRegistry()
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(cfg)

    # Every handler is ``async def`` although none awaits: kopf runs a plain ``def`` handler
    # in its thread pool, a thread hand-off per handler per event (at 20,000 objects, a
    # third of the operator's start-up CPU went to those hand-offs).
    @kopf.index(GROUP, VERSION, PLURAL, id="policies", registry=registry)
    async def policies(body: kopf.Body, **kwargs: Any) -> dict[str, Any]:
        return index_policy(body, **kwargs)

    @kopf.index(is_workload, id="workloads", registry=registry)
    async def workloads(body: kopf.Body, resource: kopf.Resource,
                        **kwargs: Any) -> dict[str, Any]:
        return index_workload(body, resource, **kwargs)

    @kopf.index("", "v1", "pods", id="pods", registry=registry)
    async def pods(body: kopf.Body, **kwargs: Any) -> dict[str, Any]:
        return index_pod(body, **kwargs)

    @kopf.index("apps", "v1", "replicasets", id="replicasets", registry=registry)
    async def replicasets(body: kopf.Body, **kwargs: Any) -> dict[str, Any]:
        return index_replicaset(body, **kwargs)

    @kopf.on.event(is_watched, id="mark-dirty", registry=registry)
    async def mark_dirty(namespace: str | None, **_: Any) -> None:
        auditor.indexes_ready()
        auditor.mark(namespace)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        auditor.attach(Views(policies=kwargs["policies"], workloads=kwargs["workloads"],
                             pods=kwargs["pods"], replicasets=kwargs["replicasets"]))
        tasks.append(asyncio.create_task(auditor.run(), name="graceful auditor"))
        tasks.append(asyncio.create_task(elector.run(), name="graceful lease"))
        if keeper is not None:
            tasks.append(asyncio.create_task(keeper.run(), name="graceful certificates"))

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await elector.release()
        await api.close()

    return registry
