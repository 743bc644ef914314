"""The operator's own Prometheus metrics, served on ``/metrics`` (``--metrics-port``).

Why: "is the audit keeping up?" should be answerable without reading logs,
and tests and the benchmark need something to wait for that is not a sleep.
The counters say how many audits ran and how long they took, how many
workloads were evaluated (one per edit, however large the namespace), what
was written (status writes, Events) and how often kopf had to list a kind
again (a watch restart), and how many passes the certificate keeper completed.
The gauges say the verdicts and findings of every audited
workload, moved one workload at a time as verdicts change.

One registry per :class:`Metrics`, not prometheus_client's global one, so
tests build as many operators as they like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


@dataclass
class Metrics:
    """Everything the operator counts."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.audits = Counter("graceful_operator_audits", "Audits of a namespace run",
                              registry=r)
        self.audit_seconds = Histogram(
            "graceful_operator_audit_duration_seconds", "Duration of one namespace's audit",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.evaluations = Counter("graceful_operator_evaluations",
                                   "Workloads evaluated (re-evaluated only when they change)",
                                   registry=r)
        self.workloads = Gauge("graceful_operator_workloads", "Audited workloads per verdict",
                               ["verdict"], registry=r)
        self.findings = Gauge("graceful_operator_findings", "Findings per code", ["code"],
                              registry=r)
        self.events = Counter("graceful_operator_events_posted", "Events posted", ["type"],
                              registry=r)
        self.status_writes = Counter("graceful_operator_status_writes",
                                     "Policy status writes", registry=r)
        self.watch_restarts = Counter(
            "graceful_operator_watch_restarts",
            "Times kopf listed a kind again after the first listing (a watch restart)",
            ["kind"], registry=r)
        self.policy_report_writes = Counter(
            "graceful_operator_policy_report_writes",
            "PolicyReports applied or deleted", ["operation"], registry=r)
        self.certificate_checks = Counter(
            "graceful_operator_certificate_checks",
            "Passes of the webhook certificate keeper completed while leading", registry=r)

    def replaced(self, old: Any | None, new: Any | None) -> None:
        """One workload's verdict changed (``WorkloadAudit`` or None): move the gauges."""
        for audit, step in ((old, -1), (new, 1)):
            if audit is None:
                continue
            verdict = audit.verdict
            name = ("not-opted-in" if not verdict.opted_in
                    else "compliant" if verdict.compliant else "mismatched")
            self.workloads.labels(name).inc(step)
            for finding in audit.findings:
                self.findings.labels(str(finding.code)).inc(step)

    def text(self) -> bytes:
        return generate_latest(self.registry)
