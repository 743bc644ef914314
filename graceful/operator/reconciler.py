"""The single writer: audits dirty namespaces and writes status and Events.

kopf feeds the indexes and calls :meth:`Auditor.mark` for every watch event;
nothing else happens per event. One asyncio task (:meth:`Auditor.run`) waits
until a namespace is due (see ``batching``), audits it from the indexes
(``audit``), posts the Events that changed (``events``) of the workloads the
new status lists, patches each policy's status once, only when it differs from
the stored one, then posts the other Events. Because it is
the only writer, status writes are batched per policy by construction, and
two flushes never race.

Only the Lease holder writes. A follower keeps its indexes warm and does no
auditing at all; when it becomes leader it first rebuilds "what was reported"
from the cluster (``events.seed``), then audits every namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graceful.core import GROUP, PLURAL, VERSION
from graceful.operator.audit import (
    AuditCache,
    PolicyEntry,
    WorkloadAudit,
    key_of,
    policy_statuses,
    status_differs,
)
from graceful.operator.batching import DirtyTracker
from graceful.operator.events import (
    LABEL_SELECTOR,
    EventIntent,
    Reported,
    WorkloadKey,
    event_body,
    next_event,
    remember,
    seed,
)
from graceful.operator.kube import MERGE_PATCH, Api, ApiError
from graceful.operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

#: A status we wrote is trusted over a lagging watch for this long.
WRITE_TRUST_SECONDS = 10.0


@dataclass
class Views:
    """Read-only views of the kopf indexes (plain dicts of lists in tests)."""

    policies: Mapping[str, Iterable[PolicyEntry]]
    """namespace -> its GracefulPolicies"""
    workloads: Mapping[str, Iterable[Mapping[str, Any]]]
    """namespace -> projections of its Deployments, StatefulSets, DaemonSets, bare Pods"""
    pods: Mapping[str, Iterable[Mapping[str, Any]]]
    """uid of a ReplicaSet, StatefulSet or DaemonSet -> projections of its running Pods"""
    replicasets: Mapping[str, Iterable[str]]
    """uid of a Deployment -> uids of its ReplicaSets"""

    def pods_of(self, obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The running Pods of a workload, by name."""
        kind = obj.get("kind")
        uid = (obj.get("metadata") or {}).get("uid")
        if not isinstance(uid, str):
            return []
        # ``in`` before ``[]``: kopf's Index answers ``in`` from its dict, while ``.get`` of a
        # missing key costs a KeyError, and most lookups miss (a Deployment scaled to 0).
        if kind == "Deployment":
            owners: list[str] = list(self.replicasets[uid]) if uid in self.replicasets else []
        elif kind in ("StatefulSet", "DaemonSet"):
            owners = [uid]
        else:
            return []
        pods = [pod for owner in owners if owner in self.pods for pod in self.pods[owner]]
        if len(pods) < 2:
            return pods
        return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name")))


@dataclass(frozen=True)
class _Written:
    status: Mapping[str, Any]
    uid: str
    at: float


@dataclass
class FlushReport:
    """What one flush of a namespace did (for logs and tests)."""

    namespace: str
    audited: int = 0
    events: int = 0
    statuses: int = 0
    failed: bool = False
    skipped: str | None = None


@dataclass
class Auditor:
    """Owns the dirty set, the verdict cache, the reported-Events memory and the writes."""

    settings: OperatorSettings
    api: Api
    is_leader: Callable[[], bool] = lambda: True
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    views: Views | None = None
    tracker: DirtyTracker[str] = field(init=False)
    cache: AuditCache = field(default_factory=AuditCache)
    reported: dict[WorkloadKey, Reported] = field(default_factory=dict)
    seeded: bool = False
    written: dict[tuple[str, str], _Written] = field(default_factory=dict)
    status_writes: int = 0
    events_posted: int = 0

    def __post_init__(self) -> None:
        self.tracker = DirtyTracker(quiet=self.settings.quiet, max_delay=self.settings.max_delay)
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._events_gate = asyncio.Semaphore(self.settings.event_concurrency)

    # -- fed by kopf ---------------------------------------------------------------------------

    def attach(self, views: Views) -> None:
        self.views = views

    def indexes_ready(self) -> None:
        """kopf only calls non-index handlers once every index is fully listed."""
        if not self._ready.is_set():
            logger.info("indexes populated; auditing")
            self._ready.set()

    def mark(self, namespace: str | None) -> None:
        if namespace:
            self.tracker.mark(namespace, self.clock())
            self._wake.set()

    def known_namespaces(self) -> set[str]:
        names = {key[0] for key in self.reported}
        if self.views is not None:
            names.update(self.views.policies)
            names.update(self.views.workloads)
        return names

    def mark_all(self) -> None:
        self.tracker.mark_many(sorted(self.known_namespaces()), self.clock())
        self._wake.set()

    def leadership_changed(self, leading: bool) -> None:
        """Called by the elector; a new term starts from what the cluster says."""
        self.seeded = False
        self.reported.clear()
        self.written.clear()
        if leading:
            self.mark_all()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        await self._ready.wait()
        next_resync = self.clock() + self.settings.resync_seconds
        self.mark_all()
        while True:
            now = self.clock()
            if now >= next_resync:
                self.resync()
                next_resync = now + self.settings.resync_seconds
            for namespace in self.tracker.pop_due(now):
                try:
                    await self.flush(namespace)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("audit of namespace %s failed", namespace)
                    self.tracker.retry(namespace, self.clock() + self.settings.retry_seconds)
            due = self.tracker.next_due()
            deadline = next_resync if due is None else min(due, next_resync)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - self.clock()))

    def resync(self) -> None:
        """Forget the caches and audit everything again."""
        self.cache = AuditCache()
        self.written.clear()
        self.mark_all()

    # -- one namespace -------------------------------------------------------------------------

    async def flush(self, namespace: str) -> FlushReport:
        report = FlushReport(namespace)
        if self.views is None:
            report.skipped = "no indexes yet"
            return report
        if not self.is_leader():
            report.skipped = "not the leader"
            return report
        if not self.seeded:
            await self.seed()
        policies = list(self.views.policies.get(namespace, ()))
        workloads = list(self.views.workloads.get(namespace, ()))
        pods = {key_of(obj): self.views.pods_of(obj) for obj in workloads}
        audits = await asyncio.to_thread(self.cache.audit_namespace, namespace, workloads,
                                         policies, pods)
        report.audited = len(audits)
        intents = self._plan_events(namespace, audits)
        statuses = policy_statuses(policies, audits, now=self.wall())
        # The status goes out as soon as the Events of the workloads it lists have: a restart
        # takes a workload in a status's ``mismatches`` as reported (``events.seed``), so
        # those Events must be posted first; the others (thousands after a first audit, at
        # ~150 a second) follow the status instead of delaying it.
        listed = {(namespace, str(m.get("kind")), str(m.get("name")))
                  for status in statuses.values() for m in status.get("mismatches", ())}
        await self._post_all([i for i in intents if i.verdict.key in listed], report)
        for entry in policies:
            written = await self._write_status(entry, statuses[entry.name])
            if written is None:
                report.failed = True
            elif written:
                report.statuses += 1
        await self._post_all([i for i in intents if i.verdict.key not in listed], report)
        if report.failed:
            self.tracker.retry(namespace, self.clock() + self.settings.retry_seconds)
        if report.events or report.statuses:
            logger.info("namespace %s: audited %d workloads, %d events, %d status writes",
                        namespace, report.audited, report.events, report.statuses)
        return report

    async def _post_all(self, intents: list[EventIntent], report: FlushReport) -> None:
        posted = await asyncio.gather(*(self._post(intent) for intent in intents))
        for intent, ok in zip(intents, posted, strict=True):
            if ok:
                self.reported[intent.verdict.key] = intent.reported()
                report.events += 1
            else:
                report.failed = True

    def _plan_events(self, namespace: str, audits: list[WorkloadAudit]) -> list[EventIntent]:
        intents = []
        present = set()
        for audit in audits:
            key = audit.verdict.key
            present.add(key)
            previous = self.reported.get(key)
            intent = next_event(previous, audit.verdict)
            if intent is not None:
                intents.append(intent)
                continue
            kept = remember(previous, audit.verdict, None)
            if kept is None:
                self.reported.pop(key, None)
        for key in [k for k in self.reported if k[0] == namespace and k not in present]:
            del self.reported[key]  # the workload is gone; so is its story
        return intents

    async def _post(self, intent: EventIntent) -> bool:
        async with self._events_gate:
            if not self.is_leader():
                return False
            v = intent.verdict
            body = event_body(intent, instance=self.settings.identity, now=self.wall(),
                              name_suffix=uuid.uuid4().hex[:16])
            try:
                await self.api.request("POST", f"/api/v1/namespaces/{v.namespace}/events",
                                       body=body)
            except ApiError as exc:
                if exc.status == 422:  # will never be accepted; do not retry forever
                    logger.error("event on %s %s/%s rejected: %s", v.kind, v.namespace,
                                 v.name, exc)
                    return True
                logger.warning("event on %s %s/%s failed: %s", v.kind, v.namespace, v.name, exc)
                return False
            self.events_posted += 1
            logger.info("%s %s on %s %s/%s: %s", intent.type, intent.reason, v.kind,
                        v.namespace, v.name, intent.message)
            return True

    async def _write_status(self, entry: PolicyEntry, status: dict[str, Any]) -> bool | None:
        """True: written; False: nothing to write; None: failed."""
        key = (entry.namespace, entry.name)
        if not status_differs(status, entry.status):
            self.written.pop(key, None)
            return False
        last = self.written.get(key)
        if (last is not None and last.uid == entry.uid and last.status == status
                and self.clock() - last.at < WRITE_TRUST_SECONDS):
            return False  # our own write, not yet seen by the watch
        if not self.is_leader():
            return False
        path = (f"/apis/{GROUP}/{VERSION}/namespaces/{entry.namespace}/{PLURAL}/"
                f"{entry.name}/status")
        body = {"metadata": {"uid": entry.uid}, "status": status}
        started = self.clock()
        try:
            await self.api.request("PATCH", path, body=body, content_type=MERGE_PATCH)
        except ApiError as exc:
            if exc.status == 404:
                return False  # deleted meanwhile
            logger.warning("status of %s/%s failed: %s", entry.namespace, entry.name, exc)
            return None
        self.written[key] = _Written(status, entry.uid, started)
        self.status_writes += 1
        logger.info("status of %s/%s: matched=%s compliant=%s mismatched=%s",
                    entry.namespace, entry.name, status.get("matched"),
                    status.get("compliant"), status.get("mismatched"))
        return True

    async def seed(self) -> None:
        """Rebuild what was reported from our Events and the stored policy statuses."""
        if self.settings.namespaces:
            events: list[dict[str, Any]] = []
            for namespace in self.settings.namespaces:
                events.extend(await self.api.list_all(f"/api/v1/namespaces/{namespace}/events",
                                                      label_selector=LABEL_SELECTOR))
        else:
            events = await self.api.list_all("/api/v1/events", label_selector=LABEL_SELECTOR)
        statuses = []
        if self.views is not None:
            for namespace in list(self.views.policies):
                for entry in self.views.policies.get(namespace, ()):
                    statuses.append((entry.namespace, entry.name, entry.status))
        self.reported = seed(events, statuses)
        self.seeded = True
        logger.info("rebuilt the reported state of %d workloads from %d events",
                    len(self.reported), len(events))
