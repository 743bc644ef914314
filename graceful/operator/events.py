"""Events on audited workloads: when to post one, and how to remember across restarts.

A workload gets a ``Warning`` Event (reason ``GracefulBudgetMismatch``) when it
starts to miss its budget or the reasons change, and a ``Normal`` Event
(reason ``GracefulBudgetCompliant``) when it meets the budget again. Nothing
is posted while the reasons stay the same: an Event per resync would bury the
story ``kubectl get events`` tells.

Why the memory is rebuilt from the cluster, not kept on the workload: the
operator never writes to what it audits (a write would go through admission
again and could start a rollout). When the operator starts, or takes over as
leader, it rebuilds "what was last reported" from two things it owns:

1. its own Events, which carry the label ``app.kubernetes.io/managed-by:
   graceful-operator`` and the annotations ``graceful.io/reasons-digest`` and
   ``graceful.io/reported-at``; the latest one per workload wins;
2. for a workload without such an Event (Events expire, one hour by default),
   the ``mismatches`` list in its policy's status, which holds the same reasons
   the Event had, so the same digest.

A restart therefore posts nothing for a mismatch that did not change. The
digest covers the policy name and the reasons exactly as the status shows them
(``reasons_of``), so both sources agree.

Everything here is pure; ``graceful.operator.reconciler`` does the I/O.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from graceful.core import Finding, FindingCode
from graceful.core.names import MANAGED_BY_LABEL, MANAGER
from graceful.core.report import MAX_REASON_LENGTH, MAX_REASONS

REASON_MISMATCH: Final = "GracefulBudgetMismatch"
REASON_COMPLIANT: Final = "GracefulBudgetCompliant"
COMPONENT: Final = MANAGER
LABEL_SELECTOR: Final = f"{MANAGED_BY_LABEL}={COMPONENT}"
DIGEST_ANNOTATION: Final = "graceful.io/reasons-digest"
REPORTED_AT_ANNOTATION: Final = "graceful.io/reported-at"
#: Kubernetes keeps Event messages short; events.k8s.io/v1 caps the note at 1 kB.
MESSAGE_LIMIT: Final = 1024

#: ``(namespace, kind, name)`` of an audited workload.
WorkloadKey = tuple[str, str, str]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reasons_of(findings: Iterable[Finding]) -> tuple[str, ...]:
    """The reasons as the policy status lists them (``graceful.core.summarize``)."""
    return tuple(_clip(f.message, MAX_REASON_LENGTH) for f in findings)[:MAX_REASONS]


def awaits_policy(findings: Iterable[Finding]) -> bool:
    """Whether the workload names a policy the operator has not seen (yet).

    A policy and the workloads applied with it reach the operator on two watches, in
    either order: a Warning posted at once would say "not found" about a policy that
    arrives a moment later, and a second Warning would follow. Its Event waits.
    """
    return any(f.code == FindingCode.PolicyNotFound for f in findings)


def digest(policy: str | None, reasons: Sequence[str]) -> str:
    """A short, stable fingerprint of a mismatch: the policy and its reasons, in order."""
    return _digest(policy or "", tuple(reasons))


@functools.lru_cache(maxsize=4096)
def _digest(policy: str, reasons: tuple[str, ...]) -> str:
    # Memoized: every flush fingerprints every mismatched workload of the namespace, and
    # thousands of workloads share a few distinct sets of reasons.
    data = json.dumps([policy, list(reasons)], separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Reported:
    """What the cluster last heard about one workload."""

    compliant: bool
    digest: str = ""
    uid: str | None = None
    """The workload's uid, when known (an Event names it; a status line does not)."""


@dataclass(frozen=True)
class Verdict:
    """The audit's word on one workload, with what an Event needs to name it."""

    namespace: str
    kind: str
    name: str
    uid: str | None
    api_version: str
    opted_in: bool
    policy: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def key(self) -> WorkloadKey:
        return (self.namespace, self.kind, self.name)

    @property
    def compliant(self) -> bool:
        return self.opted_in and not self.reasons


@dataclass(frozen=True)
class EventIntent:
    """An Event to post about ``verdict``'s workload."""

    verdict: Verdict
    type: Literal["Warning", "Normal"]
    reason: str
    message: str
    digest: str

    def reported(self) -> Reported:
        """What the cluster knows once this Event is posted."""
        return Reported(compliant=self.type == "Normal", digest=self.digest,
                        uid=self.verdict.uid)


def next_event(previous: Reported | None, verdict: Verdict) -> EventIntent | None:
    """The Event to post now, or None when the last one still tells the truth."""
    if not verdict.opted_in:
        return None
    if previous is not None and previous.uid and verdict.uid and previous.uid != verdict.uid:
        previous = None  # a new object with the same name: its story starts afresh
    policy = verdict.policy or ""
    if verdict.reasons:
        fingerprint = digest(verdict.policy, verdict.reasons)
        if previous is not None and not previous.compliant and previous.digest == fingerprint:
            return None
        message = (f"does not meet the drain budget of GracefulPolicy {policy}: "
                   + "; ".join(verdict.reasons))
        return EventIntent(verdict, "Warning", REASON_MISMATCH,
                           _clip(message, MESSAGE_LIMIT), fingerprint)
    if previous is None or previous.compliant:
        return None
    return EventIntent(verdict, "Normal", REASON_COMPLIANT,
                       _clip(f"meets the drain budget of GracefulPolicy {policy}",
                             MESSAGE_LIMIT), "")


def remember(previous: Reported | None, verdict: Verdict,
             posted: EventIntent | None) -> Reported | None:
    """What to keep for the workload after this audit (None: forget it)."""
    if posted is not None:
        return posted.reported()
    if not verdict.opted_in:
        return None
    return previous


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(intent: EventIntent, *, instance: str, now: datetime,
               name_suffix: str) -> dict[str, Any]:
    """The ``core/v1`` Event to create for ``intent``.

    ``name_suffix`` makes the name unique (Kubernetes' own recorders use a
    hex suffix on the involved object's name the same way).
    """
    v = intent.verdict
    involved: dict[str, Any] = {"apiVersion": v.api_version, "kind": v.kind,
                                "name": v.name, "namespace": v.namespace}
    if v.uid:
        involved["uid"] = v.uid
    stamp = _timestamp(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{v.name[:200]}.{name_suffix}",
            "namespace": v.namespace,
            "labels": {MANAGED_BY_LABEL: COMPONENT},
            "annotations": {
                DIGEST_ANNOTATION: intent.digest,
                REPORTED_AT_ANNOTATION: now.astimezone(UTC).isoformat(timespec="microseconds"),
            },
        },
        "involvedObject": involved,
        "type": intent.type,
        "reason": intent.reason,
        "message": intent.message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _order(event: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = event.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (_str(annotations.get(REPORTED_AT_ANNOTATION)), _str(event.get("lastTimestamp")),
            _str(meta.get("creationTimestamp")), _str(meta.get("name")))


def seed(events: Iterable[Mapping[str, Any]],
         statuses: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[WorkloadKey, Reported]:
    """What was last reported per workload, rebuilt from the cluster.

    ``events`` are this operator's Events (any order); ``statuses`` are
    ``(namespace, policy name, status)`` of the policies as stored.
    """
    latest: dict[WorkloadKey, Mapping[str, Any]] = {}
    for event in events:
        if not isinstance(event, Mapping):
            continue
        if event.get("reason") not in (REASON_MISMATCH, REASON_COMPLIANT):
            continue
        involved = event.get("involvedObject") or {}
        key = (_str(involved.get("namespace")), _str(involved.get("kind")),
               _str(involved.get("name")))
        if not all(key):
            continue
        if key not in latest or _order(event) > _order(latest[key]):
            latest[key] = event
    reported: dict[WorkloadKey, Reported] = {}
    for key, event in latest.items():
        annotations = (event.get("metadata") or {}).get("annotations") or {}
        reported[key] = Reported(
            compliant=event.get("reason") == REASON_COMPLIANT,
            digest=_str(annotations.get(DIGEST_ANNOTATION)),
            uid=_str((event.get("involvedObject") or {}).get("uid")) or None,
        )
    for namespace, policy, status in statuses:
        mismatches = status.get("mismatches") if isinstance(status, Mapping) else None
        for line in mismatches if isinstance(mismatches, list) else []:
            if not isinstance(line, Mapping):
                continue
            key = (namespace, _str(line.get("kind")), _str(line.get("name")))
            reasons = line.get("reasons")
            if not all(key) or key in reported or not isinstance(reasons, list):
                continue
            reported[key] = Reported(compliant=False,
                                     digest=digest(policy, [str(r) for r in reasons]))
    return reported
