"""A policy's status, computed from the audit results of its workloads.

Why pure, with ``now`` passed in: the operator calls this on every audit, and
the status must not churn. The same inputs give the same dict, so the
operator can skip the write when nothing changed; ``lastTransitionTime`` moves
only when the Ready condition flips (``previous`` carries the old one). Tests
pass a fixed clock instead of sleeping.

The mismatch list is bounded (``limit``, at most 50 as in the CRD) because a
status is stored in etcd with the object: a namespace with ten thousand broken
Deployments must not make the policy too large to write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from graceful.core.findings import Finding
from graceful.core.policy import MAX_MISMATCHES, GracefulPolicy

MAX_REASONS = 16
MAX_REASON_LENGTH = 256
MAX_NAME_LENGTH = 253


@dataclass(frozen=True)
class WorkloadResult:
    """The audit of one workload: its kind, name and findings."""

    kind: str
    name: str
    findings: Sequence[Finding] = ()

    @property
    def compliant(self) -> bool:
        """No findings."""
        return not self.findings


def _timestamp(now: datetime) -> str:
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _previous_ready(previous: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not isinstance(previous, Mapping) or not isinstance(previous.get("conditions"), list):
        return None
    for condition in previous["conditions"]:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def summarize(policy: GracefulPolicy, results: Iterable[WorkloadResult], *, now: datetime,
              limit: int = MAX_MISMATCHES,
              previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole ``status`` of ``policy`` for the given audit results."""
    limit = max(0, min(limit, MAX_MISMATCHES))
    ordered = sorted(results, key=order)
    bad = [r for r in ordered if not r.compliant]
    return summarize_counts(policy, matched=len(ordered), mismatched=len(bad),
                            first=bad[:limit], now=now, previous=previous)


def order(result: WorkloadResult) -> tuple[str, str]:
    """The order of the ``mismatches`` list: by kind, then name."""
    return (result.kind, result.name)


def summarize_counts(policy: GracefulPolicy, *, matched: int, mismatched: int,
                     first: Sequence[WorkloadResult], now: datetime,
                     previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The status from counts and the first mismatched results (in :func:`order`).

    What :func:`summarize` computes, for a caller that keeps the counts itself
    (the operator, which updates them one workload at a time instead of
    sorting every workload of the policy on every edit).
    """
    mismatches = [
        {
            "kind": r.kind,
            "name": _clip(r.name, MAX_NAME_LENGTH),
            "reasons": [_clip(f.message, MAX_REASON_LENGTH) for f in r.findings][:MAX_REASONS],
        }
        for r in first[:MAX_MISMATCHES]
    ]
    status = "True" if not mismatched else "False"
    if mismatched:
        reason = "WorkloadsMismatched"
        message = f"{mismatched} of {matched} workloads do not meet the drain budget"
    else:
        reason = "AllCompliant"
        message = f"{matched} of {matched} workloads meet the drain budget"
    old = _previous_ready(previous)
    since = _timestamp(now)
    if old is not None and old.get("status") == status and isinstance(
            old.get("lastTransitionTime"), str):
        since = old["lastTransitionTime"]
    return {
        "observedGeneration": policy.generation,
        "gracePeriodSeconds": policy.spec.default_grace_period(),
        "matched": matched,
        "compliant": matched - mismatched,
        "mismatched": mismatched,
        "mismatches": mismatches,
        "mismatchesOmitted": mismatched - len(mismatches),
        "conditions": [{
            "type": "Ready",
            "status": status,
            "observedGeneration": policy.generation,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }],
    }


def cluster_order(item: tuple[str, WorkloadResult]) -> tuple[str, str, str]:
    """The order of a ClusterGracefulPolicy's ``mismatches``: by namespace, kind, then name."""
    namespace, result = item
    return (namespace, *order(result))


def summarize_cluster_counts(policy: GracefulPolicy, *, matched: int, mismatched: int,
                             first: Sequence[tuple[str, WorkloadResult]], now: datetime,
                             previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ClusterGracefulPolicy's status: :func:`summarize_counts` over every namespace it
    serves, each listed mismatch saying its ``namespace`` (``ClusterMismatch``), because
    two namespaces may each hold a Deployment of the same name.

    ``first``: (namespace, result) of the first mismatched workloads in
    :func:`cluster_order`.
    """
    listed = list(first[:MAX_MISMATCHES])
    status = summarize_counts(policy, matched=matched, mismatched=mismatched,
                              first=[result for _, result in listed], now=now,
                              previous=previous)
    status["mismatches"] = [{"namespace": namespace, **line}
                            for (namespace, _), line in zip(listed, status["mismatches"],
                                                            strict=True)]
    return status


def summarize_cluster(policy: GracefulPolicy, results: Iterable[tuple[str, WorkloadResult]], *,
                      now: datetime, limit: int = MAX_MISMATCHES,
                      previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole ``status`` of a ClusterGracefulPolicy for (namespace, result) pairs."""
    limit = max(0, min(limit, MAX_MISMATCHES))
    ordered = sorted(results, key=cluster_order)
    bad = [item for item in ordered if not item[1].compliant]
    return summarize_cluster_counts(policy, matched=len(ordered), mismatched=len(bad),
                                    first=bad[:limit], now=now, previous=previous)
