"""The single writer: audits changed workloads and writes status, Events and PolicyReports.

kopf calls :meth:`Auditor.observe` for every watch event of a workload (and
:meth:`Auditor.policy_changed` for a policy); the event updates the
projection in the store (``store``) and, if the audit reads anything that
changed, marks that workload dirty. One asyncio task (:meth:`Auditor.run`)
waits until a namespace is due (see ``batching``), evaluates its dirty
workloads again (``audit.NamespaceAudit``: an edit costs one evaluation, a
policy edit one per workload of that policy), posts the Events that changed
(``events``) of the workloads the new status lists, patches each policy's
status with the keys that changed, only when something did, then posts the
other Events. Because it is the only writer, status writes are batched per
policy by construction, and two flushes never race.

ClusterGracefulPolicies: each namespace's audit evaluates its workloads with
the namespace's policies and the cluster's (``audit.for_namespace``), and a
cluster policy's status, the sum over every namespace, is written after the
namespaces' audits, batched under its own tracker key (:data:`CLUSTER`). A
cluster policy edit, or a namespace's labels changing, marks only what it
concerns: every namespace for a spec edit (each re-evaluates only the workloads
of that policy, or none where it serves nothing), the one namespace for a label
change. Their statuses are left out of ``events.seed``: they are written after
the namespaces' Events are queued, not after they are posted, so a restart
re-posts at worst an Event rather than missing one. An operator restricted to
some namespaces (``--namespace``) counts the workloads of those only: a cluster
policy's status is what the one elected operator audits.

Only the Lease holder writes. A follower keeps its store warm and does no
auditing at all; when it becomes leader it first rebuilds "what was reported"
from the cluster (``events.seed``), then audits every namespace. Nothing is
audited before the first listing is complete (``store.ListingGate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graceful.core import CLUSTER_PLURAL, GROUP, PLURAL, VERSION, namespace_labels
from graceful.operator.audit import (
    Changes,
    NamespaceAudit,
    PolicyEntry,
    WorkloadAudit,
    cluster_status,
    for_namespace,
    policy_entry,
    policy_statuses,
    status_changes,
)
from graceful.operator.batching import DirtyTracker, TokenBucket
from graceful.operator.events import (
    LABEL_SELECTOR,
    EventIntent,
    Reported,
    WorkloadKey,
    awaits_policy,
    event_body,
    next_event,
    remember,
    seed,
)
from graceful.operator.kube import MERGE_PATCH, Api, ApiError
from graceful.operator.metrics import Metrics
from graceful.operator.policy_reports import PolicyReports
from graceful.operator.settings import OperatorSettings
from graceful.operator.store import ListingGate, WorkloadStore

logger = logging.getLogger(__name__)

#: A status we wrote is trusted over a lagging watch for this long.
WRITE_TRUST_SECONDS = 10.0


#: A full audit evaluates this many workloads at a time, then lets the loop run (kopf's
#: watches, the Lease renewals), instead of holding it for seconds at 10,000 workloads.
CHUNK = 200

#: The tracker's key for writing the ClusterGracefulPolicies' statuses (no namespace is
#: named ""), so that they are batched and retried like a namespace's.
CLUSTER = ""


Counter = Callable[[str], Awaitable[int]]
"""How many objects of a kind the API server has now (``handlers.counter``)."""


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
    policies: Mapping[str, Iterable[PolicyEntry]] | None = None
    """kopf's index of GracefulPolicies: namespace -> its policies (attached at start-up)."""
    cluster_policies: Mapping[str, Iterable[PolicyEntry]] | None = None
    """kopf's index of ClusterGracefulPolicies: name -> the policy."""
    namespaces: Mapping[str, Iterable[Mapping[str, str]]] | None = None
    """kopf's index of Namespaces: name -> its labels (None: no cluster policy applies)."""
    counter: Counter | None = None
    """Counts the objects of a kind; None: the listing gate is open from the start."""
    metrics: Metrics = field(default_factory=Metrics)
    reports: PolicyReports | None = None
    """Writes the PolicyReports (None: none are written)."""
    store: WorkloadStore = field(default_factory=WorkloadStore)
    gate: ListingGate = field(default_factory=ListingGate)
    tracker: DirtyTracker[str] = field(init=False)
    audits: dict[str, NamespaceAudit] = field(default_factory=dict)
    dirty: dict[str, set[WorkloadKey] | None] = field(default_factory=dict)
    """namespace -> workloads to evaluate again (None: all of them)"""
    reported: dict[WorkloadKey, Reported] = field(default_factory=dict)
    seeded: bool = False
    written: dict[tuple[str, str], _Written] = field(default_factory=dict)
    status_writes: int = 0
    events_posted: int = 0
    passes: int = 0
    """Audits of a namespace done (tests wait for it to move instead of sleeping)."""

    def __post_init__(self) -> None:
        self.tracker = DirtyTracker(quiet=self.settings.quiet, max_delay=self.settings.max_delay)
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._relisting: dict[str, float] = {}
        self._first_done: set[str] = set()
        self._queued: dict[WorkloadKey, EventIntent] = {}
        self._not_before: dict[WorkloadKey, float] = {}
        """queued Events that wait for a policy that may still arrive (``awaits_policy``)"""
        self._in_flight: set[WorkloadKey] = set()
        self._replan: set[WorkloadKey] = set()
        self._events_wake = asyncio.Event()
        self._events_gate = asyncio.Semaphore(self.settings.event_concurrency)
        self._events_pace = TokenBucket(rate=self.settings.event_rate,
                                        burst=self.settings.event_concurrency)
        self._cluster_seen: dict[str, tuple[str, str, int, bool]] = {}
        self._labels_seen: dict[str, dict[str, str]] = {}

    # -- fed by kopf ---------------------------------------------------------------------------

    def attach(self, policies: Mapping[str, Iterable[PolicyEntry]],
               cluster_policies: Mapping[str, Iterable[PolicyEntry]] | None = None,
               namespaces: Mapping[str, Iterable[Mapping[str, str]]] | None = None) -> None:
        self.policies = policies
        if cluster_policies is not None:
            self.cluster_policies = cluster_policies
        if namespaces is not None:
            self.namespaces = namespaces

    async def count_expected(self, kinds: Iterable[str]) -> None:
        """Count what kopf is about to list (called before kopf starts its watches)."""
        if self.counter is None:
            return
        for kind in kinds:
            self.gate.recount(kind, await self.counter(kind))

    def indexes_ready(self) -> None:
        """kopf calls non-index handlers only once the policy index is fully listed."""
        if not self._ready.is_set():
            self._ready.set()

    def observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One watch event of a Deployment, StatefulSet, DaemonSet or bare Pod."""
        self.indexes_ready()
        deleted = event_type == "DELETED"
        meta = body.get("metadata") or {}
        now = self.clock()
        if self.gate.opened and event_type is None:
            self._relisted(kind, now)
        self.gate.observe(kind, meta.get("uid"), deleted, now)
        key = self.store.apply(kind, body, deleted)
        if key is None:
            return
        keys = self.dirty.setdefault(key[0], set())
        if keys is not None:
            keys.add(key)
        self.mark(key[0])

    def _relisted(self, kind: str, now: float) -> None:
        # kopf lists a kind again only when its watch had to restart (410 Gone, say): the
        # first re-listed object of a burst counts the restart.
        last = self._relisting.get(kind)
        if last is None or now - last > 5.0:
            self.metrics.watch_restarts.labels(kind).inc()
        self._relisting[kind] = now

    def policy_changed(self, namespace: str | None) -> None:
        self.indexes_ready()
        self.mark(namespace)

    def cluster_policy_changed(self, name: str, body: Mapping[str, Any] | None) -> None:
        """A ClusterGracefulPolicy event (``body`` None: deleted).

        A spec edit (or a creation or deletion) marks every namespace: each evaluates
        again only the workloads of that policy. A status change (our own writes) only
        makes the cluster statuses due, to be compared again.
        """
        self.indexes_ready()
        fingerprint = None if body is None else policy_entry(body).fingerprint
        if fingerprint != self._cluster_seen.get(name):
            if fingerprint is None:
                self._cluster_seen.pop(name, None)
            else:
                self._cluster_seen[name] = fingerprint
            for namespace in self.known_namespaces():
                self.dirty.setdefault(namespace, set())
                self.mark(namespace)
        self.mark_cluster()

    def namespace_changed(self, name: str, labels: Mapping[str, str] | None) -> None:
        """A Namespace event (``labels`` None: deleted): only a change of labels can change
        which cluster policies serve it, and only its own workloads."""
        self.indexes_ready()
        current = None if labels is None else dict(labels)
        if current == self._labels_seen.get(name):
            return
        if current is None:
            self._labels_seen.pop(name, None)
        else:
            self._labels_seen[name] = current
        self.dirty.setdefault(name, set())
        self.mark(name)

    def mark_cluster(self) -> None:
        """The cluster policies' statuses are due (after the namespaces' audits)."""
        self.tracker.mark(CLUSTER, self.clock())
        self._wake.set()

    def mark(self, namespace: str | None) -> None:
        if namespace:
            self.tracker.mark(namespace, self.clock())
            self._wake.set()

    def known_namespaces(self) -> set[str]:
        names = {key[0] for key in self.reported}
        names.update(self.store.namespaces())
        names.update(self.audits)
        if self.policies is not None:
            names.update(self.policies)
        return names

    def mark_all(self, *, evaluate: bool) -> None:
        """Every namespace is due; ``evaluate``: every workload is evaluated again, too."""
        for namespace in self.known_namespaces():
            if evaluate:
                self.dirty[namespace] = None
            else:
                self.dirty.setdefault(namespace, set())
        self.tracker.mark_many(sorted(self.known_namespaces()), self.clock())
        self.mark_cluster()

    def leadership_changed(self, leading: bool) -> None:
        """Called by the elector; a new term starts from what the cluster says."""
        self.seeded = False
        self.reported.clear()
        self.written.clear()
        self._first_done.clear()
        self._queued.clear()
        self._not_before.clear()
        if self.reports is not None:
            self.reports.resync()
        if leading:
            self.mark_all(evaluate=True)

    # -- the loop ------------------------------------------------------------------------------

    async def wait_listed(self, poll: float = 1.0) -> None:
        """Until the policy index and every workload kind are fully listed."""
        await self._ready.wait()
        while not self.gate.complete():
            if self.counter is not None and self.gate.quiet(self.clock(), 2 * poll):
                for kind in list(self.gate.expected):
                    self.gate.recount(kind, await self.counter(kind))
                if self.gate.complete():
                    break
            await asyncio.sleep(poll)
        logger.info("indexes populated; auditing %d workloads", len(self.store))

    async def run(self) -> None:
        await self.wait_listed()
        next_resync = self.clock() + self.settings.resync_seconds
        self.mark_all(evaluate=True)
        while True:
            now = self.clock()
            if now >= next_resync:
                self.resync()
                next_resync = now + self.settings.resync_seconds
            for namespace in self.tracker.pop_due(now):
                try:
                    if namespace == CLUSTER:
                        await self.flush_cluster()
                    else:
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
        """Compare every status and Event with the verdicts again (no re-evaluation: a verdict
        changes only with its workload or policy, and those are watched)."""
        self.written.clear()
        if self.reports is not None:
            self.reports.resync()
        self.mark_all(evaluate=False)

    # -- one namespace -------------------------------------------------------------------------

    async def flush(self, namespace: str) -> FlushReport:
        report = FlushReport(namespace)
        if self.policies is None:
            report.skipped = "no indexes yet"
            return report
        if not self.is_leader():
            report.skipped = "not the leader"
            return report
        if not self.seeded:
            await self.seed()
        started = time.perf_counter()
        own = list(self.policies.get(namespace, ()))
        labels = self.namespace_labels(namespace)
        policies = own + [for_namespace(entry, labels) for entry in self.cluster_entries()]
        state = self.audits.setdefault(namespace, NamespaceAudit())
        dirty = self.dirty.pop(namespace, set())
        workloads = self.store.namespace(namespace)
        todo = state.due(workloads, dirty, policies)
        objects = {key: workloads.get(key) for key in todo}
        verdicts: dict[WorkloadKey, WorkloadAudit | None] = {}
        keys = list(objects)
        for start in range(0, len(keys), CHUNK):
            if start:
                await asyncio.sleep(0)
            verdicts.update(state.evaluate({k: objects[k] for k in keys[start:start + CHUNK]},
                                           policies, labels))
        old = {key: state.audits.get(key) for key in verdicts}
        changes = state.apply(objects, verdicts, policies)
        for key, audit in verdicts.items():
            self.metrics.replaced(old[key], audit)
        self.metrics.evaluations.inc(len(changes.audits))
        report.audited = len(changes.audits)
        if changes.audits or changes.removed:
            self.mark_cluster()  # a cluster policy's counts may have moved
        # A workload still waiting for its policy keeps its first due time: its edits (a tool
        # rewriting its labels) must not postpone the Warning forever.
        later = self.clock() + self.settings.missing_policy_grace
        waiting = {a.verdict.key: self._not_before.get(a.verdict.key, later)
                   for a in changes.audits if awaits_policy(a.findings)}
        intents = self._plan_events(changes)
        statuses = policy_statuses(policies, state, now=self.wall())
        # The status goes out as soon as the Events of the workloads it lists have: a restart
        # takes a workload in a status's ``mismatches`` as reported (``events.seed``), so
        # those Events must be posted first; the others (thousands after a first audit, at
        # ~150 a second) follow the status instead of delaying it.
        listed = {(namespace, str(m.get("kind")), str(m.get("name")))
                  for status in statuses.values() for m in status.get("mismatches", ())}
        await self._post_all([i for i in intents if i.verdict.key in listed], report)
        for entry in own:
            written = await self._write_status(entry, statuses[entry.name])
            if written is None:
                report.failed = True
            elif written:
                report.statuses += 1
        # The others go to the background poster: the next edit's audit must not wait behind
        # thousands of Events (at ~150 a second) of a first audit or a policy edit.
        self._queue_events([i for i in intents if i.verdict.key not in listed],
                           waiting=waiting)
        # The PolicyReports follow the status (tools read them, nothing restarts from them).
        if self.reports is not None and not await self.reports.sync(
                namespace, changes.audits, changes.removed):
            report.failed = True
        if not state.audits and not workloads and not own:
            del self.audits[namespace]  # an empty (or deleted) namespace leaves nothing behind
        if report.failed:
            self.tracker.retry(namespace, self.clock() + self.settings.retry_seconds)
        self.passes += 1
        self.metrics.audits.inc()
        self.metrics.audit_seconds.observe(time.perf_counter() - started)
        if namespace not in self._first_done:
            # Tests and operators wait for this line, not for a sleep to pass.
            self._first_done.add(namespace)
            logger.info("first audit of namespace %s done: %d workloads, %d events,"
                        " %d status writes", namespace, report.audited, report.events,
                        report.statuses)
        elif report.events or report.statuses:
            logger.info("namespace %s: evaluated %d workloads, %d events, %d status writes",
                        namespace, report.audited, report.events, report.statuses)
        return report

    def cluster_entries(self) -> list[PolicyEntry]:
        """The ClusterGracefulPolicies, by name."""
        index = self.cluster_policies or {}
        return [entry for name in sorted(index) for entry in index.get(name, ())]

    def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        """The namespace's labels as the index has them (None: not known, e.g. deleted)."""
        if self.namespaces is None:
            return None
        for labels in self.namespaces.get(namespace, ()):
            return namespace_labels(namespace, labels)
        return None

    async def flush_cluster(self) -> FlushReport:
        """Write each ClusterGracefulPolicy's status from the namespaces' kept counts."""
        report = FlushReport(CLUSTER)
        if self.policies is None or self.cluster_policies is None:
            report.skipped = "no indexes yet"
            return report
        if not self.is_leader():
            report.skipped = "not the leader"
            return report
        if any(namespace in self.tracker for namespace in self.known_namespaces()
               if namespace not in self._first_done):
            # A namespace not audited yet this term would be counted as empty: after it.
            report.skipped = "namespaces not audited yet"
            self.mark_cluster()
            return report
        now = self.wall()
        for entry in self.cluster_entries():
            written = await self._write_status(entry, cluster_status(
                entry, list(self.audits.values()), now=now))
            if written is None:
                report.failed = True
            elif written:
                report.statuses += 1
        if report.failed:
            self.tracker.retry(CLUSTER, self.clock() + self.settings.retry_seconds)
        return report

    def _queue_events(self, intents: list[EventIntent], *,
                      waiting: Mapping[WorkloadKey, float] | None = None) -> None:
        """Queue ``intents`` for the background poster; those of ``waiting`` (a policy not
        seen yet: workload -> clock time) not before their time."""
        for intent in intents:
            key = intent.verdict.key
            self._queued[key] = intent  # a newer intent replaces a queued one
            if waiting and key in waiting:
                self._not_before[key] = waiting[key]
            else:
                self._not_before.pop(key, None)
        if self._queued:
            self._events_wake.set()

    def _next_due(self) -> float | None:
        """Seconds until the first waiting Event is due (None: none waits)."""
        if not self._not_before:
            return None
        return max(0.0, min(self._not_before.values()) - self.clock())

    async def post_events(self) -> None:
        """The background poster: queued Events, ``event_concurrency`` at a time, forever."""
        while True:
            delay = self._next_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._events_wake.wait(), delay)
            self._events_wake.clear()
            await self.drain_events()

    async def drain_events(self) -> int:
        """Post every queued Event that is due; how many were posted."""
        posted = 0
        while True:
            now = self.clock()
            # the first 256 due, not every queued one (a first audit queues thousands)
            due = list(itertools.islice(
                (key for key in self._queued
                 if key not in self._not_before or self._not_before[key] <= now), 256))
            if not due:
                return posted
            batch = [self._queued.pop(key) for key in due]
            for key in due:
                self._not_before.pop(key, None)
            self._in_flight.update(i.verdict.key for i in batch)
            report = FlushReport(batch[0].verdict.namespace)
            try:
                await self._post_all(batch, report, paced=True)
            finally:
                self._in_flight.difference_update(i.verdict.key for i in batch)
            posted += report.events
        return posted

    async def _post_all(self, intents: list[EventIntent], report: FlushReport, *,
                        paced: bool = False) -> None:
        posted = await asyncio.gather(*(self._post(intent, paced=paced) for intent in intents))
        for intent, ok in zip(intents, posted, strict=True):
            if ok:
                self.reported[intent.verdict.key] = intent.reported()
                report.events += 1
                self.metrics.events.labels(intent.type).inc()
                if intent.verdict.key in self._replan:
                    self._replan.discard(intent.verdict.key)
                    keys = self.dirty.setdefault(intent.verdict.namespace, set())
                    if keys is not None:
                        keys.add(intent.verdict.key)
                    self.mark(intent.verdict.namespace)
            else:
                report.failed = True
                # Planned again at the retry: the workload did not change, so mark it.
                keys = self.dirty.setdefault(intent.verdict.namespace, set())
                if keys is not None:
                    keys.add(intent.verdict.key)
                self.tracker.retry(intent.verdict.namespace,
                                   self.clock() + self.settings.retry_seconds)
                self._wake.set()

    def _plan_events(self, changes: Changes) -> list[EventIntent]:
        intents = []
        for audit in changes.audits:
            key = audit.verdict.key
            self._queued.pop(key, None)  # planned again from the newest verdict
            self._not_before.pop(key, None)
            if key in self._in_flight:
                # Its Event is being posted: plan again once ``reported`` says what it was.
                self._replan.add(key)
                continue
            previous = self.reported.get(key)
            intent = next_event(previous, audit.verdict)
            if intent is not None:
                intents.append(intent)
                continue
            kept = remember(previous, audit.verdict, None)
            if kept is None:
                self.reported.pop(key, None)
        for key in changes.removed:
            self.reported.pop(key, None)  # the workload is gone; so is its story
        return intents

    async def _post(self, intent: EventIntent, *, paced: bool = False) -> bool:
        if paced:
            wait = self._events_pace.take(time.monotonic())  # real time: it really sleeps
            if wait > 0:
                await asyncio.sleep(wait)
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
        last = self.written.get(key)
        if last is not None and (last.uid != entry.uid
                                 or self.clock() - last.at >= WRITE_TRUST_SECONDS):
            last = None
        changed = status_changes(status, entry.status)
        if last is not None:
            if last.status == status:
                return False  # our own write, not yet seen by the watch
            # The index may not show our last write yet: what differs from it goes, too.
            changed.update(status_changes(status, last.status))
        if not changed:
            self.written.pop(key, None)
            return False
        if not self.is_leader():
            return False
        path = (f"/apis/{GROUP}/{VERSION}/{CLUSTER_PLURAL}/{entry.name}/status" if entry.cluster
                else f"/apis/{GROUP}/{VERSION}/namespaces/{entry.namespace}/{PLURAL}/"
                     f"{entry.name}/status")
        body = {"metadata": {"uid": entry.uid}, "status": changed}
        started = self.clock()
        try:
            await self.api.request("PATCH", path, body=body, content_type=MERGE_PATCH)
        except ApiError as exc:
            if exc.status == 404:
                return False  # deleted meanwhile
            logger.warning("status of %s failed: %s", _label(entry), exc)
            return None
        self.written[key] = _Written(status, entry.uid, started)
        self.status_writes += 1
        self.metrics.status_writes.inc()
        logger.info("status of %s: matched=%s compliant=%s mismatched=%s",
                    _label(entry), status.get("matched"),
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
        if self.policies is not None:
            for namespace in list(self.policies):
                for entry in self.policies.get(namespace, ()):
                    statuses.append((entry.namespace, entry.name, entry.status))
        self.reported = seed(events, statuses)
        self.seeded = True
        logger.info("rebuilt the reported state of %d workloads from %d events",
                    len(self.reported), len(events))


def _label(entry: PolicyEntry) -> str:
    return entry.reference if entry.cluster else f"{entry.namespace}/{entry.name}"
