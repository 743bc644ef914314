"""The audit of one namespace: projections in, verdicts and policy statuses out.

This is the thin layer between the indexes and ``graceful.core``: it calls
``evaluate`` for each workload with the policies of its namespace (the same
call the webhook makes, so the two never disagree), adds ``StalePods`` for a
compliant workload whose Pods still run an older spec (``stale_pods``), and
turns the results of each policy into its status with ``summarize``. No
budget arithmetic happens here.

Why a cache: a namespace is re-audited whenever anything in it changes (a
Pod's status, say), but a workload's verdict only depends on its projection,
the namespace's policies and its Pods. The cache re-evaluates a workload only
when one of the three changed, so a busy namespace costs a dictionary
comparison per workload, not an evaluation.

Pure: no I/O, time passed in.
"""

from __future__ import annotations

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
    stale_pods,
    summarize,
)
from graceful.operator.events import Verdict, WorkloadKey, reasons_of

#: Stale Pods named in a finding; the rest are counted.
STALE_NAMES_SHOWN = 3


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


def key_of(obj: Mapping[str, Any]) -> WorkloadKey:
    meta = _meta(obj)
    return (str(meta.get("namespace") or ""), str(obj.get("kind") or ""),
            str(meta.get("name") or ""))


def stale_finding(names: Sequence[str]) -> Finding:
    """The ``StalePods`` finding for the Pods ``stale_pods`` named."""
    shown = ", ".join(names[:STALE_NAMES_SHOWN])
    more = f" and {len(names) - STALE_NAMES_SHOWN} more" if len(names) > STALE_NAMES_SHOWN else ""
    noun = "pod predates" if len(names) == 1 else "pods predate"
    return Finding(FindingCode.StalePods,
                   f"{len(names)} {noun} the compliant spec ({shown}{more}); roll out to apply it")


def audit_workload(obj: Mapping[str, Any], policies: Iterable[GracefulPolicy],
                   pods: Iterable[Mapping[str, Any]],
                   invalid: Mapping[str, str] | None = None) -> WorkloadAudit:
    """Evaluate one workload projection with its namespace's policies and its Pods.

    ``invalid``: the namespace's unusable policies, name to error (see ``evaluate``).
    """
    decision = evaluate(obj, policies, invalid)
    findings = list(decision.findings)
    if decision.compliant:
        stale = stale_pods(decision, pods)
        if stale:
            findings.append(stale_finding(stale))
    namespace, kind, name = key_of(obj)
    uid = _meta(obj).get("uid")
    verdict = Verdict(namespace=namespace, kind=kind, name=name,
                      uid=uid if isinstance(uid, str) else None,
                      api_version=str(obj.get("apiVersion") or "v1"),
                      opted_in=decision.opted_in, policy=decision.policy_name,
                      reasons=reasons_of(findings))
    return WorkloadAudit(verdict=verdict, findings=tuple(findings),
                         policy_found=decision.policy is not None)


@dataclass
class _Cached:
    obj: Mapping[str, Any]
    policies: tuple[tuple[str, str, int], ...]
    pods: list[Mapping[str, Any]]
    audit: WorkloadAudit


@dataclass
class AuditCache:
    """Verdicts of unchanged workloads, so a busy namespace is cheap to re-audit."""

    _entries: dict[WorkloadKey, _Cached] = field(default_factory=dict)
    evaluations: int = 0
    """How many times ``evaluate`` ran (for tests and the benchmark)."""

    def audit_namespace(self, namespace: str, workloads: Iterable[Mapping[str, Any]],
                        policies: Sequence[PolicyEntry],
                        pods: Mapping[WorkloadKey, list[Mapping[str, Any]]]
                        ) -> list[WorkloadAudit]:
        """Audit every workload of ``namespace``; forget the ones that are gone."""
        usable = [p.policy for p in policies if p.policy is not None]
        invalid = {p.name: p.error or "" for p in policies if p.policy is None}
        # every policy, the invalid ones too: an edit of one changes what its workloads are told
        fingerprint = tuple(p.fingerprint for p in policies)
        audits = []
        seen = set()
        for obj in workloads:
            key = key_of(obj)
            seen.add(key)
            owned = pods.get(key, [])
            cached = self._entries.get(key)
            if (cached is not None and cached.policies == fingerprint
                    and cached.obj == obj and cached.pods == owned):
                audits.append(cached.audit)
                continue
            audit = audit_workload(obj, usable, owned, invalid)
            self.evaluations += 1
            self._entries[key] = _Cached(obj, fingerprint, owned, audit)
            audits.append(audit)
        for key in [k for k in self._entries if k[0] == namespace and k not in seen]:
            del self._entries[key]
        return audits

    def forget_namespace(self, namespace: str) -> None:
        for key in [k for k in self._entries if k[0] == namespace]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


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


def policy_statuses(policies: Iterable[PolicyEntry], audits: Iterable[WorkloadAudit], *,
                    now: datetime) -> dict[str, dict[str, Any]]:
    """The status of each policy of a namespace, by policy name."""
    by_policy: dict[str, list[WorkloadResult]] = {}
    for audit in audits:
        if audit.policy_found and audit.verdict.policy is not None:
            by_policy.setdefault(audit.verdict.policy, []).append(audit.result())
    statuses = {}
    for entry in policies:
        if entry.policy is None:
            statuses[entry.name] = invalid_status(entry, now)
        else:
            statuses[entry.name] = summarize(entry.policy, by_policy.get(entry.name, []),
                                             now=now, previous=entry.status)
    return statuses


def status_differs(computed: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether writing ``computed`` would change the stored status.

    Only the keys the operator writes are compared: a merge patch leaves other
    keys alone, so counting them as a difference would write forever.
    """
    return any(stored.get(key) != value for key, value in computed.items())
