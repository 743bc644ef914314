"""The kopf registry: one index, event handlers, and the operator's lifetime.

What kopf does here, and what it must not do:

- ``@kopf.index`` keeps the parsed GracefulPolicies and ClusterGracefulPolicies
  and the Namespaces' labels (few, small). kopf calls non-index handlers only
  after every index is fully listed, so no audit runs without them.
- ``@kopf.on.event`` handlers hand every event of a Deployment, StatefulSet,
  DaemonSet or bare Pod to the auditor, which keeps a small projection
  (``store``), and mark a namespace dirty when a policy changes (every
  namespace for a cluster policy's spec, one namespace for its labels). Workloads
  are not a kopf index because kopf holds every indexed object's whole body
  until all of them are indexed (see ``store``).
- Pods are watched only where they are the workload: the Pod watch carries
  a label selector that leaves out every Pod a built-in controller owns
  (``projection.BARE_POD_SELECTOR``, set in ``main.kopf_settings``).
  ReplicaSets are not watched: stale Pods come from the controllers' status.
- No ``on.create``/``on.update``/daemon/timer handlers on watched resources:
  those make kopf store progress annotations or finalizers on the objects,
  and the operator never writes to the workloads it audits.
- ``@kopf.on.startup`` counts what kopf is about to list (the listing gate),
  then starts the auditor, the Lease elector and (unless disabled) the keeper
  of the webhook's certificates, a background task rather than a kopf timer
  because it polls two named objects nobody needs to watch; ``cleanup`` stops
  them and releases the Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from kubernetes import client as k8s_client

from graceful.certificates.keeper import CertificateKeeper
from graceful.core import CLUSTER_PLURAL, GROUP, PLURAL, VERSION
from graceful.operator.audit import policy_entry
from graceful.operator.kube import KubeApi, connection_info
from graceful.operator.lease import LeaseElector
from graceful.operator.projection import BARE_POD_SELECTOR
from graceful.operator.reconciler import Auditor

logger = logging.getLogger(__name__)

#: The audited kinds: (group, version, plural) -> kind.
WORKLOAD_RESOURCES = {
    ("apps", "v1", "deployments"): "Deployment",
    ("apps", "v1", "statefulsets"): "StatefulSet",
    ("apps", "v1", "daemonsets"): "DaemonSet",
    ("batch", "v1", "jobs"): "Job",
    ("batch", "v1", "cronjobs"): "CronJob",
    ("", "v1", "pods"): "Pod",
}


def _triple(resource: kopf.Resource) -> tuple[str, str, str]:
    return (resource.group, resource.version, resource.plural)


def is_workload(resource: kopf.Resource) -> bool:
    return _triple(resource) in WORKLOAD_RESOURCES


def index_policy(body: kopf.Body, **_: Any) -> dict[str, Any]:
    namespace = body.get("metadata", {}).get("namespace")
    return {namespace: policy_entry(body)} if namespace else {}


def index_cluster_policy(body: kopf.Body, **_: Any) -> dict[str, Any]:
    name = body.get("metadata", {}).get("name")
    return {name: policy_entry(body)} if name else {}


def labels_of(body: kopf.Body) -> dict[str, str]:
    raw = body.get("metadata", {}).get("labels") or {}
    return {str(k): str(v) for k, v in raw.items()}


def index_namespace(body: kopf.Body, **_: Any) -> dict[str, Any]:
    name = body.get("metadata", {}).get("name")
    return {name: labels_of(body)} if name else {}


def list_path(group: str, version: str, plural: str, namespace: str | None) -> str:
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


def counter(api: KubeApi, namespaces: tuple[str, ...]) -> Callable[[str], Awaitable[int]]:
    """Counts the objects of a kind kopf lists (in every watched namespace)."""
    by_kind = {kind: triple for triple, kind in WORKLOAD_RESOURCES.items()}

    async def count(kind: str) -> int:
        group, version, plural = by_kind[kind]
        selector = BARE_POD_SELECTOR if kind == "Pod" else None
        total = 0
        for namespace in namespaces or (None,):
            total += await api.count(list_path(group, version, plural, namespace),
                                     label_selector=selector)
        return total

    return count


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

    @kopf.index(GROUP, VERSION, CLUSTER_PLURAL, id="cluster_policies", registry=registry)
    async def cluster_policies(body: kopf.Body, **kwargs: Any) -> dict[str, Any]:
        return index_cluster_policy(body, **kwargs)

    @kopf.index("", "v1", "namespaces", id="namespaces", registry=registry)
    async def namespaces(body: kopf.Body, **kwargs: Any) -> dict[str, Any]:
        return index_namespace(body, **kwargs)

    @kopf.on.event(GROUP, VERSION, CLUSTER_PLURAL, id="cluster-policy-changed",
                   registry=registry)
    async def cluster_policy_changed(name: str | None, body: kopf.Body, type: str | None,
                                     **_: Any) -> None:
        auditor.cluster_policy_changed(name or "", None if type == "DELETED" else body)

    @kopf.on.event("", "v1", "namespaces", id="namespace-changed", registry=registry)
    async def namespace_changed(name: str | None, body: kopf.Body, type: str | None,
                                **_: Any) -> None:
        auditor.namespace_changed(name or "", None if type == "DELETED" else labels_of(body))

    @kopf.on.event(GROUP, VERSION, PLURAL, id="policy-changed", registry=registry)
    async def policy_changed(namespace: str | None, **_: Any) -> None:
        auditor.policy_changed(namespace)

    @kopf.on.event(is_workload, id="workload", registry=registry)
    async def workload(body: kopf.Body, resource: kopf.Resource, type: str | None,
                       **_: Any) -> None:
        auditor.observe(WORKLOAD_RESOURCES[_triple(resource)], type, body)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        auditor.attach(kwargs["policies"], kwargs["cluster_policies"], kwargs["namespaces"])
        await auditor.count_expected(WORKLOAD_RESOURCES.values())
        tasks.append(asyncio.create_task(auditor.run(), name="graceful auditor"))
        tasks.append(asyncio.create_task(auditor.post_events(), name="graceful events"))
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
