"""The audit of one namespace, workload by workload: projections in, verdicts and statuses out.

This is the thin layer between the operator's memory and ``graceful.core``:
it calls ``evaluate`` for each workload with the policies of its namespace
(the same call the webhook makes, so the two never disagree), adds
``StalePods`` for a compliant workload whose controller's status says its
Pods predate the template and nothing will replace them
(``graceful.core.rollout``), and turns the results of each policy into its
status with ``summarize``. No budget arithmetic happens here.

Why incremental: a workload's verdict depends only on its projection and on
the policies it can resolve to. :class:`NamespaceAudit` keeps every verdict
and re-evaluates only the workloads that changed, and on a policy edit only
the workloads of that policy (those naming it, those it matched, and those
without a ``graceful.io/policy`` annotation, which a selector may match). So
an edit costs one evaluation however large the namespace is.

ClusterGracefulPolicies go through the same call: the namespace's policies
and the cluster's are passed together with the namespace's labels, and
verdicts are grouped by the policy's *reference* (``NAME`` or
``cluster/NAME``, as ``graceful.io/policy`` names it), since a GracefulPolicy
and a ClusterGracefulPolicy may share a name. A cluster policy's status is
the sum of its counts in every namespace (:func:`cluster_status`). Whether it
serves a namespace is part of its fingerprint there, so a namespace
relabelled, or a cluster policy edited, re-evaluates only the workloads of
the namespaces where that changes anything.

Pure: no I/O, time passed in.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from graceful.core import (
    Finding,
    FindingCode,
    GracefulPolicy,
    PolicyError,
    WorkloadResult,
    evaluate,
    invalid_policy_message,
)
from graceful.core.names import ANNOTATION_POLICY, CLUSTER_KIND, CLUSTER_POLICY_PREFIX
from graceful.core.policy import MAX_MISMATCHES
from graceful.core.report import order, summarize_cluster_counts, summarize_counts
from graceful.core.rollout import stale_of
from graceful.core.selection import serves
from graceful.operator.events import Verdict, WorkloadKey, reasons_of
from graceful.operator.store import key_of


@dataclass(frozen=True)
class PolicyEntry:
    """A GracefulPolicy or ClusterGracefulPolicy as the operator keeps it: parsed once,
    with its stored status."""

    name: str
    namespace: str
    uid: str
    generation: int
    policy: GracefulPolicy | None
    error: str | None = None
    """Why the spec could not be used (``policy`` is None then)."""
    status: Mapping[str, Any] = field(default_factory=dict)
    cluster: bool = False
    """A ClusterGracefulPolicy (``namespace`` is empty)."""
    serving: bool = True
    """In one namespace's audit (:func:`for_namespace`): whether this cluster policy's
    ``namespaceSelector`` selects the namespace (an invalid one: unknown, so True)."""

    @property
    def reference(self) -> str:
        """How ``graceful.io/policy`` and the verdicts name it: ``NAME`` or ``cluster/NAME``."""
        return f"{CLUSTER_POLICY_PREFIX}{self.name}" if self.cluster else self.name

    @property
    def fingerprint(self) -> tuple[str, str, int, bool]:
        """Changes whenever the verdicts of its workloads may have (metadata.generation counts
        spec edits). A cluster policy that does not serve the namespace decides nothing there
        whatever its spec says, so its edits leave the namespace's fingerprint alone."""
        generation = self.generation if self.serving else -1
        return (self.reference, self.uid, generation, self.serving)


def for_namespace(entry: PolicyEntry, ns_labels: Mapping[str, str] | None) -> PolicyEntry:
    """``entry`` as one namespace's audit sees it (``serving`` set for a cluster policy).

    ``ns_labels`` None: nothing is known of the namespace, so no cluster policy serves it
    (what ``graceful.core.select`` does with None).
    """
    if not entry.cluster or entry.policy is None:
        return entry
    serving = ns_labels is not None and serves(entry.policy, ns_labels)
    return replace(entry, serving=serving)


def policy_entry(body: Mapping[str, Any]) -> PolicyEntry:
    """Parse a GracefulPolicy or ClusterGracefulPolicy from the API; a bad spec is kept
    with its error."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    cluster = body.get("kind") == CLUSTER_KIND
    namespace = "" if cluster else str(meta.get("namespace") or "")
    raw_generation = meta.get("generation")
    generation = raw_generation if isinstance(raw_generation, int) else 0
    status = body.get("status")
    # The status is ours and is not needed to audit; a malformed one must not hide the spec.
    spec_only = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    try:
        policy: GracefulPolicy | None = GracefulPolicy.from_object(spec_only)
        error = None
    except PolicyError as exc:
        policy, error = None, str(exc)
    return PolicyEntry(name=name, namespace=namespace, uid=str(meta.get("uid") or ""),
                       generation=generation, policy=policy, error=error,
                       status=status if isinstance(status, Mapping) else {}, cluster=cluster)


@dataclass(frozen=True)
class WorkloadAudit:
    """The audit of one workload."""

    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    policy_found: bool = False

    def result(self) -> WorkloadResult:
        return self._result

    @cached_property
    def _result(self) -> WorkloadResult:
        # Built once: an unchanged workload's audit is reused by every later flush.
        return WorkloadResult(self.verdict.kind, self.verdict.name, self.findings)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def audit_workload(obj: Mapping[str, Any], policies: Iterable[GracefulPolicy],
                   invalid: Mapping[str, str] | None = None,
                   ns_labels: Mapping[str, str] | None = None) -> WorkloadAudit:
    """Evaluate one workload projection with its namespace's policies and the cluster's.

    ``invalid``: the unusable policies, reference to error (see ``evaluate``);
    ``ns_labels``: the namespace's labels (which cluster policies serve it).
    """
    decision = evaluate(obj, policies, invalid, ns_labels=ns_labels)
    findings = list(decision.findings)
    if decision.compliant:
        stale = stale_of(obj)
        if stale is not None:
            findings.append(Finding(FindingCode.StalePods, stale.message))
    namespace, kind, name = key_of(obj)
    uid = _meta(obj).get("uid")
    verdict = Verdict(namespace=namespace, kind=kind, name=name,
                      uid=uid if isinstance(uid, str) else None,
                      api_version=str(obj.get("apiVersion") or "v1"),
                      opted_in=decision.opted_in, policy=decision.policy_name,
                      reasons=reasons_of(findings))
    return WorkloadAudit(verdict=verdict, findings=tuple(findings),
                         policy_found=decision.policy is not None)


def named_policy(obj: Mapping[str, Any]) -> str | None:
    """The policy a workload names in its annotation (None: a selector may match it)."""
    annotations = _meta(obj).get("annotations")
    name = annotations.get(ANNOTATION_POLICY) if isinstance(annotations, Mapping) else None
    return name if isinstance(name, str) else None


@dataclass
class Changes:
    """What one :meth:`NamespaceAudit.update` did."""

    audits: list[WorkloadAudit] = field(default_factory=list)
    """The workloads evaluated again, with their new verdicts."""
    removed: list[WorkloadKey] = field(default_factory=list)
    """The workloads that are gone."""


@dataclass
class NamespaceAudit:
    """The verdicts of one namespace, kept up to date one workload at a time."""

    audits: dict[WorkloadKey, WorkloadAudit] = field(default_factory=dict)
    members: dict[str, set[WorkloadKey]] = field(default_factory=dict)
    """policy reference -> the workloads whose verdict counts for it (its status); every
    ``str`` key below is a reference too (``NAME`` or ``cluster/NAME``)"""
    bad: dict[str, dict[WorkloadKey, WorkloadResult]] = field(default_factory=dict)
    """policy name -> its mismatched workloads' results (the status lists the first ones)"""
    named: dict[str, set[WorkloadKey]] = field(default_factory=dict)
    """policy name -> the workloads whose annotation names it"""
    ranked: dict[str, list[tuple[tuple[str, str], WorkloadKey]]] = field(default_factory=dict)
    """policy name -> its mismatched workloads in the status's order (kept sorted, so the
    first 50 are a slice, not a sort of every mismatch on every edit)"""
    naming: dict[WorkloadKey, str] = field(default_factory=dict)
    """workload -> the policy its annotation names"""
    unnamed: set[WorkloadKey] = field(default_factory=set)
    """workloads without the annotation: any policy's selector may match them"""
    fingerprints: dict[str, tuple[str, str, int, bool]] = field(default_factory=dict)
    """policy name -> the fingerprint the verdicts were computed with"""
    evaluations: int = 0
    """How many times ``evaluate`` ran (for the metrics, tests and the benchmark)."""

    def due(self, workloads: Mapping[WorkloadKey, Mapping[str, Any]],
            dirty: Iterable[WorkloadKey] | None,
            policies: Sequence[PolicyEntry]) -> set[WorkloadKey]:
        """The workloads to evaluate again: ``dirty`` (None: all) and those of edited policies."""
        if dirty is None:
            return set(workloads) | set(self.audits)
        todo = set(dirty)
        # every policy, the invalid ones too: an edit of one changes what its workloads are told
        current = {p.reference: p.fingerprint for p in policies}
        edited = {name for name in current.keys() | self.fingerprints.keys()
                  if current.get(name) != self.fingerprints.get(name)}
        for name in edited:
            todo |= self.members.get(name, set()) | self.named.get(name, set())
        if edited:
            todo |= self.unnamed
        return todo

    def evaluate(self, objects: Mapping[WorkloadKey, Mapping[str, Any] | None],
                 policies: Sequence[PolicyEntry],
                 ns_labels: Mapping[str, str] | None = None,
                 ) -> dict[WorkloadKey, WorkloadAudit | None]:
        """New verdicts for ``objects`` (None: the workload is gone); changes nothing here.

        ``policies``: the namespace's and the cluster's; ``ns_labels``: the namespace's.
        Safe to run in a thread: it reads only its arguments.
        """
        usable = [p.policy for p in policies if p.policy is not None]
        invalid = {p.reference: p.error or "" for p in policies if p.policy is None}
        return {key: None if obj is None else audit_workload(obj, usable, invalid, ns_labels)
                for key, obj in objects.items()}

    def apply(self, objects: Mapping[WorkloadKey, Mapping[str, Any] | None],
              verdicts: Mapping[WorkloadKey, WorkloadAudit | None],
              policies: Sequence[PolicyEntry]) -> Changes:
        """Take the verdicts of :meth:`evaluate` in."""
        changes = Changes()
        for key, audit in verdicts.items():
            self._forget(key)
            obj = objects.get(key)
            if audit is None or obj is None:
                changes.removed.append(key)
                continue
            self.evaluations += 1
            self.audits[key] = audit
            if audit.policy_found and audit.verdict.policy is not None:
                self.members.setdefault(audit.verdict.policy, set()).add(key)
                if not audit.result().compliant:
                    self.bad.setdefault(audit.verdict.policy, {})[key] = audit.result()
                    bisect.insort(self.ranked.setdefault(audit.verdict.policy, []),
                                  (order(audit.result()), key))
            name = named_policy(obj)
            if name is None:
                self.unnamed.add(key)
            else:
                self.named.setdefault(name, set()).add(key)
                self.naming[key] = name
            changes.audits.append(audit)
        self.fingerprints = {p.reference: p.fingerprint for p in policies}
        return changes

    def _forget(self, key: WorkloadKey) -> None:
        old = self.audits.pop(key, None)
        if old is None:
            return
        policy = old.verdict.policy
        if policy is not None:
            self.members.get(policy, set()).discard(key)
            if self.bad.get(policy, {}).pop(key, None) is not None:
                ranked = self.ranked[policy]
                del ranked[bisect.bisect_left(ranked, (order(old.result()), key))]
        name = self.naming.pop(key, None)
        if name is not None:
            self.named.get(name, set()).discard(key)
        self.unnamed.discard(key)

    def results(self, policy: str) -> list[WorkloadResult]:
        """The results that make up the status of the policy of reference ``policy``."""
        return [self.audits[key].result() for key in self.members.get(policy, ())]

    def status(self, entry: PolicyEntry, now: datetime) -> dict[str, Any]:
        """``entry``'s status from the kept counts: no pass over the policy's workloads."""
        assert entry.policy is not None
        bad = self.bad.get(entry.reference, {})
        first = [bad[key] for _, key in self.ranked.get(entry.reference, [])[:MAX_MISMATCHES]]
        return summarize_counts(entry.policy,
                                matched=len(self.members.get(entry.reference, ())),
                                mismatched=len(bad), first=first, now=now,
                                previous=entry.status)

    def counts(self, reference: str) -> tuple[int, int]:
        """(matched, mismatched) of the policy of ``reference`` in this namespace."""
        return len(self.members.get(reference, ())), len(self.bad.get(reference, {}))

    def first_mismatches(self, reference: str) -> list[tuple[tuple[str, str, str], WorkloadResult]]:
        """The first mismatched results of ``reference`` here, in the cluster status's order
        (namespace, kind, name), with that order as their sort key."""
        bad = self.bad.get(reference, {})
        return [((key[0], *rank), bad[key])
                for rank, key in self.ranked.get(reference, [])[:MAX_MISMATCHES]]

    def __len__(self) -> int:
        return len(self.audits)


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def invalid_status(entry: PolicyEntry, now: datetime) -> dict[str, Any]:
    """The status of a policy whose spec cannot be used (it matches nothing)."""
    previous = entry.status.get("conditions")
    since = _timestamp(now)
    for condition in previous if isinstance(previous, list) else []:
        if (isinstance(condition, Mapping) and condition.get("type") == "Ready"
                and condition.get("reason") == "InvalidPolicy"
                and isinstance(condition.get("lastTransitionTime"), str)):
            since = condition["lastTransitionTime"]
    return {
        "observedGeneration": entry.generation,
        "matched": 0, "compliant": 0, "mismatched": 0,
        "mismatches": [], "mismatchesOmitted": 0,
        "conditions": [{
            "type": "Ready", "status": "False", "observedGeneration": entry.generation,
            "lastTransitionTime": since, "reason": "InvalidPolicy",
            "message": invalid_policy_message(entry.error or ""),
        }],
        # null in the merge patch: the GRACE column of a policy that was valid must not
        # keep showing a grace period nothing computes any more
        "gracePeriodSeconds": None,
    }


def cluster_status(entry: PolicyEntry, audits: Iterable[NamespaceAudit], *,
                   now: datetime) -> dict[str, Any]:
    """A ClusterGracefulPolicy's status: its counts summed over every namespace's audit.

    No pass over workloads: each namespace keeps its counts and its first mismatches in
    order, so this is a sum and a merge of at most 50 per namespace.
    """
    if entry.policy is None:
        return invalid_status(entry, now)
    matched = mismatched = 0
    firsts = []
    for state in audits:
        m, b = state.counts(entry.reference)
        matched, mismatched = matched + m, mismatched + b
        if b:
            firsts.append(state.first_mismatches(entry.reference))
    first = [(rank[0], result) for rank, result in
             itertools.islice(heapq.merge(*firsts, key=lambda item: item[0]), MAX_MISMATCHES)]
    return summarize_cluster_counts(entry.policy, matched=matched, mismatched=mismatched,
                                    first=first, now=now, previous=entry.status)


def policy_statuses(policies: Iterable[PolicyEntry], state: NamespaceAudit, *,
                    now: datetime) -> dict[str, dict[str, Any]]:
    """The status of each GracefulPolicy of a namespace, by policy name (cluster policies
    are left out: their status sums every namespace, :func:`cluster_status`)."""
    statuses = {}
    for entry in policies:
        if entry.cluster:
            continue
        if entry.policy is None:
            statuses[entry.name] = invalid_status(entry, now)
        else:
            statuses[entry.name] = state.status(entry, now)
    return statuses


def status_changes(computed: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``computed`` whose value differs from the stored status (the merge patch).

    Only the keys the operator writes are compared: a merge patch leaves other
    keys alone, so counting them as a difference would write forever. A list
    (``mismatches``, ``conditions``) goes whole, as a merge patch replaces lists.
    """
    return {key: value for key, value in computed.items() if stored.get(key) != value}


def status_differs(computed: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether writing ``computed`` would change the stored status."""
    return bool(status_changes(computed, stored))
