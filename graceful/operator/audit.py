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

Pure: no I/O, time passed in.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
from graceful.core.names import ANNOTATION_POLICY
from graceful.core.policy import MAX_MISMATCHES
from graceful.core.report import order, summarize_counts
from graceful.core.rollout import stale_of
from graceful.operator.events import Verdict, WorkloadKey, reasons_of
from graceful.operator.store import key_of


@dataclass(frozen=True)
class PolicyEntry:
    """A GracefulPolicy as the operator keeps it: parsed once, with its stored status."""

    name: str
    namespace: str
    uid: str
    generation: int
    policy: GracefulPolicy | None
    error: str | None = None
    """Why the spec could not be used (``policy`` is None then)."""
    status: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> tuple[str, str, int]:
        """Changes whenever the spec may have (metadata.generation counts spec edits)."""
        return (self.name, self.uid, self.generation)


def policy_entry(body: Mapping[str, Any]) -> PolicyEntry:
    """Parse a GracefulPolicy from the API; a bad spec is kept with its error."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "")
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
                       status=status if isinstance(status, Mapping) else {})


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
                   invalid: Mapping[str, str] | None = None) -> WorkloadAudit:
    """Evaluate one workload projection with its namespace's policies.

    ``invalid``: the namespace's unusable policies, name to error (see ``evaluate``).
    """
    decision = evaluate(obj, policies, invalid)
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
    """policy name -> the workloads whose verdict counts for it (its status)"""
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
    fingerprints: dict[str, tuple[str, str, int]] = field(default_factory=dict)
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
        current = {p.name: p.fingerprint for p in policies}
        edited = {name for name in current.keys() | self.fingerprints.keys()
                  if current.get(name) != self.fingerprints.get(name)}
        for name in edited:
            todo |= self.members.get(name, set()) | self.named.get(name, set())
        if edited:
            todo |= self.unnamed
        return todo

    def evaluate(self, objects: Mapping[WorkloadKey, Mapping[str, Any] | None],
                 policies: Sequence[PolicyEntry]) -> dict[WorkloadKey, WorkloadAudit | None]:
        """New verdicts for ``objects`` (None: the workload is gone); changes nothing here.

        Safe to run in a thread: it reads only its arguments.
        """
        usable = [p.policy for p in policies if p.policy is not None]
        invalid = {p.name: p.error or "" for p in policies if p.policy is None}
        return {key: None if obj is None else audit_workload(obj, usable, invalid)
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
        self.fingerprints = {p.name: p.fingerprint for p in policies}
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
        """The results that make up ``policy``'s status."""
        return [self.audits[key].result() for key in self.members.get(policy, ())]

    def status(self, entry: PolicyEntry, now: datetime) -> dict[str, Any]:
        """``entry``'s status from the kept counts: no pass over the policy's workloads."""
        assert entry.policy is not None
        bad = self.bad.get(entry.name, {})
        first = [bad[key] for _, key in self.ranked.get(entry.name, [])[:MAX_MISMATCHES]]
        return summarize_counts(entry.policy, matched=len(self.members.get(entry.name, ())),
                                mismatched=len(bad), first=first, now=now,
                                previous=entry.status)

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


def policy_statuses(policies: Iterable[PolicyEntry], state: NamespaceAudit, *,
                    now: datetime) -> dict[str, dict[str, Any]]:
    """The status of each policy of a namespace, by policy name."""
    statuses = {}
    for entry in policies:
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
