"""PolicyReports: the audit's verdicts written where policy tools look for them.

What the results say is decided in ``graceful.core.policy_report``; this
module keeps them per namespace and writes them. The auditor calls
:meth:`PolicyReports.sync` after a namespace's statuses, with what that audit
changed, so reports are written by the leader only and batched like the
status: one audit, at most one write per report it touched.

- **Only when wanted and possible.** Off with ``--no-policy-reports``; and
  nothing is written while the cluster does not serve
  ``wgpolicyk8s.io/v1alpha2`` (the CRD comes with Kyverno or Policy Reporter,
  not with us). Availability is checked again at every resync, so installing
  the CRD later is noticed within a minute.
- **Server-side apply** writes a report whole (create or replace, no
  resourceVersion to race on) under our field manager.
- **What is stored is known.** At the start of a leadership term and at every
  resync, our reports are listed once (label ``app.kubernetes.io/managed-by=
  graceful-operator``): a write happens only when a report differs from it, a
  report nothing produces any more (its workloads or namespace gone, a layout
  change) is deleted, and the results' timestamps survive a restart.
- **An edit costs one report.** A namespace's results live in shards
  (``layout``/``shard_of``); an audit rewrites the shards whose results
  changed, not the namespace.
- **RBAC refused** (403): said once in the log, then no writes until the next
  resync, so a missing permission never holds the statuses back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from graceful.core.policy_report import (
    REPORT_API_VERSION,
    REPORT_PLURAL,
    REPORT_SELECTOR,
    SOURCE,
    Subject,
    layout,
    report,
    report_name,
    result,
    shard_of,
    subject_key,
)
from graceful.operator.audit import WorkloadAudit
from graceful.operator.events import WorkloadKey
from graceful.operator.kube import Api, ApiError
from graceful.operator.metrics import Metrics

logger = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = SOURCE

Key = tuple[str, str]
"""(kind, name) of a workload in its namespace."""


def group_path() -> str:
    return f"/apis/{REPORT_API_VERSION}"


def report_path(namespace: str, name: str | None = None) -> str:
    base = f"{group_path()}/namespaces/{namespace}/{REPORT_PLURAL}"
    return base if name is None else f"{base}/{name}"


def _stored_part(body: Mapping[str, Any]) -> dict[str, Any]:
    """What we compare of a report: the fields we write, nothing the server adds."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    return {"labels": dict(labels), "results": list(body.get("results") or []),
            "summary": dict(body.get("summary") or {})}


@dataclass
class _Namespace:
    """One namespace's results, grouped by the report they belong to."""

    shards: int = 1
    groups: list[dict[Key, dict[str, Any]]] = field(default_factory=lambda: [{}])
    touched: set[int] | None = None
    """Shards to compare with what is stored (None: every report of the namespace)."""

    def __len__(self) -> int:
        return sum(len(group) for group in self.groups)

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.groups[shard_of(*key, self.shards)].get(key)

    def put(self, key: Key, body: dict[str, Any] | None) -> None:
        index = shard_of(*key, self.shards)
        group = self.groups[index]
        if body is None:
            if group.pop(key, None) is None:
                return
        else:
            if group.get(key) == body:
                return
            group[key] = body
        if self.touched is not None:
            self.touched.add(index)

    def relayout(self) -> None:
        shards = layout(len(self), self.shards)
        if shards == self.shards:
            return
        everything = [item for group in self.groups for item in group.items()]
        self.shards = shards
        self.groups = [{} for _ in range(shards)]
        for key, body in everything:
            self.groups[shard_of(*key, shards)][key] = body
        self.touched = None

    def reports(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The reports to compare now, by name."""
        indexes = range(self.shards) if self.touched is None else sorted(self.touched)
        return {report_name(i, self.shards): report(namespace, report_name(i, self.shards),
                                                    self.groups[i].values())
                for i in indexes}


@dataclass
class PolicyReports:
    """The results of every namespace, what is stored, and the writes between the two."""

    api: Api
    enabled: bool = True
    namespaces: tuple[str, ...] = ()
    """The audited namespaces (empty: all): where our reports are listed."""
    metrics: Metrics = field(default_factory=Metrics)
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    available: bool | None = None
    """Whether the cluster serves PolicyReports (None: not asked since the last resync)."""
    stored: dict[str, dict[str, dict[str, Any]]] | None = None
    """namespace -> report name -> its compared part, as listed and written since
    (None: to be listed)"""
    results: dict[str, _Namespace] = field(default_factory=dict)
    refused: bool = False
    _previous: dict[str, dict[Key, Mapping[str, Any]]] = field(default_factory=dict)
    """The listed results by workload, per namespace (their timestamps are kept)."""

    def resync(self) -> None:
        """List again and compare every report (every minute, and for a new term)."""
        self.available = None
        self.stored = None
        self.refused = False
        for state in self.results.values():
            state.touched = None

    async def sync(self, namespace: str, audits: Iterable[WorkloadAudit],
                   removed: Iterable[WorkloadKey]) -> bool:
        """Take one audit's changes in and write the reports they touched.

        The results are kept even while nothing can be written (no CRD, RBAC
        refused), so that the first resync that can write has all of them.
        False: a write failed (the namespace is audited again later, and the
        touched reports compared again then).
        """
        if not self.enabled:
            return True
        try:
            writable = not self.refused and await self._ready()
        except ApiError as exc:
            return self._failed(namespace, exc)
        state = self.results.setdefault(namespace, _Namespace())
        previous = self._previous.get(namespace, {})
        now = self.wall()
        for audit in audits:
            v = audit.verdict
            key = (v.kind, v.name)
            if not v.opted_in:
                state.put(key, None)
                continue
            before = state.get(key) or previous.get(key)
            state.put(key, result(Subject(v.namespace, v.kind, v.name, v.api_version, v.uid),
                                  v.policy or "-", audit.findings, now=now, previous=before))
        for _ns, kind, name in removed:
            state.put((kind, name), None)
        state.relayout()
        if not writable:
            return True
        try:
            await self._write(namespace, state)
        except ApiError as exc:
            return self._failed(namespace, exc)
        assert self.stored is not None
        if not len(state) and not self.stored.get(namespace):
            del self.results[namespace]
        return True

    def _failed(self, namespace: str, exc: ApiError) -> bool:
        if exc.status == 403:
            self.refused = True
            logger.error("PolicyReports in %s: %s; not written until the next resync"
                         " (the operator's role needs policyreports in wgpolicyk8s.io)",
                         namespace, exc)
            return True
        logger.warning("PolicyReports in %s: %s", namespace, exc)
        return False

    async def _ready(self) -> bool:
        if self.available is None:
            self.available = await self._served()
            if not self.available:
                logger.info("the cluster does not serve %s: no PolicyReports are written"
                            " (checked again at the next resync)", REPORT_API_VERSION)
        if not self.available:
            return False
        if self.stored is None:
            self.stored = await self._list()
            self._previous = {ns: _results_by_key(reports)
                              for ns, reports in self.stored.items()}
        return True

    async def _served(self) -> bool:
        try:
            answer = await self.api.request("GET", group_path())
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        resources = answer.get("resources") if isinstance(answer, Mapping) else None
        return any(isinstance(r, Mapping) and r.get("name") == REPORT_PLURAL
                   for r in resources or ())

    async def _list(self) -> dict[str, dict[str, dict[str, Any]]]:
        paths = ([report_path(ns) for ns in self.namespaces] if self.namespaces
                 else [f"{group_path()}/{REPORT_PLURAL}"])
        stored: dict[str, dict[str, dict[str, Any]]] = {}
        for path in paths:
            for item in await self.api.list_all(path, label_selector=REPORT_SELECTOR):
                meta = item.get("metadata") or {}
                stored.setdefault(str(meta.get("namespace")), {})[str(meta.get("name"))] = (
                    _stored_part(item))
        return stored

    async def _write(self, namespace: str, state: _Namespace) -> None:
        assert self.stored is not None
        stored = self.stored.setdefault(namespace, {})
        everything = state.touched is None or not len(state)
        desired = state.reports(namespace) if len(state) else {}
        for name, body in desired.items():
            if stored.get(name) == _stored_part(body):
                continue
            try:
                await self.api.request("PATCH", report_path(namespace, name), body=body,
                                       params={"fieldManager": FIELD_MANAGER, "force": "true"},
                                       content_type=APPLY_PATCH)
            except ApiError as exc:
                if _namespace_going(exc):
                    continue  # its workloads go with it; nothing is left to report there
                raise
            stored[name] = _stored_part(body)
            self.metrics.policy_report_writes.labels("apply").inc()
        if everything:
            for name in sorted(set(stored) - set(desired)):
                try:
                    await self.api.request("DELETE", report_path(namespace, name))
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                del stored[name]
                self.metrics.policy_report_writes.labels("delete").inc()
        state.touched = set()
        if not stored:
            del self.stored[namespace]


def _namespace_going(exc: ApiError) -> bool:
    """The namespace is gone (404) or being deleted (the API server refuses new objects in
    a terminating namespace with a 403 that is no RBAC refusal)."""
    return exc.status == 404 or (exc.status == 403 and "being terminated" in exc.message)


def _results_by_key(reports: Mapping[str, Mapping[str, Any]]) -> dict[Key, Mapping[str, Any]]:
    """The stored results of a namespace by workload (to keep their timestamps)."""
    found: dict[Key, Mapping[str, Any]] = {}
    for body in reports.values():
        for item in body.get("results") or ():
            key = subject_key(item) if isinstance(item, Mapping) else None
            if key is not None:
                found[key] = item
    return found
