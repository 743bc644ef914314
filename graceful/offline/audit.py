"""The audit of manifests: one :class:`Result` per workload, from the shared engine.

Two views of the same manifests:

- *as written* (the default): the object exactly as it would be stored if no
  webhook ran. This is what the operator reports for workloads created before
  the webhook, while it was down (``failurePolicy: Ignore``) or under an
  ``Audit`` policy, so it is the strict check for a pipeline.
- *admitted* (``--admitted``): the object after the webhook's patch, which is
  what an ``Enforce`` policy stores. What is still found there (a ceiling that
  cuts the budget, a missing policy, an unreadable timeout) the webhook cannot fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graceful.core import Decision, Finding, evaluate, is_compliant
from graceful.offline.loader import Inventory


@dataclass(frozen=True)
class Result:
    """The verdict on one workload."""

    source: str
    kind: str
    namespace: str
    name: str
    decision: Decision
    fixed_by_webhook: bool = False
    """Every finding disappears once the webhook's patch is applied."""
    findings: list[Finding] = field(default_factory=list)
    """The findings reported: as written, or after the patch with ``admitted``."""

    @property
    def opted_in(self) -> bool:
        return self.decision.opted_in

    @property
    def compliant(self) -> bool:
        return is_compliant(self.opted_in, self.decision.policy is not None, self.findings)

    @property
    def mismatched(self) -> bool:
        return self.opted_in and not self.compliant

    @property
    def verdict(self) -> str:
        if not self.opted_in:
            return "SKIP"
        return "PASS" if self.compliant else "MISMATCH"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "optedIn": self.opted_in,
            "policy": self.decision.policy_name,
            "mode": self.decision.policy.spec.mode if self.decision.policy else None,
            "verdict": self.verdict,
            "compliant": self.compliant,
            "fixedByWebhook": self.fixed_by_webhook,
            "gracePeriodSeconds": (self.decision.plan.grace_period_seconds
                                   if self.decision.plan else None),
            "findings": [{"code": str(f.code), "message": f.message, "container": f.container}
                         for f in self.findings],
        }


def audit(inventory: Inventory, *, admitted: bool = False) -> list[Result]:
    """Evaluate every workload of ``inventory`` under the policies of its namespace."""
    results = []
    for namespace, doc in inventory.workloads:
        policies = inventory.policies_for(namespace)
        labels = inventory.labels_for(namespace)
        decision = evaluate(doc.obj, policies, ns_labels=labels)
        findings = decision.findings
        after = (evaluate(decision.admitted, policies, ns_labels=labels)
                 if decision.patch and decision.admitted is not None else None)
        fixed = bool(findings) and after is not None and not after.findings
        if admitted and after is not None:
            findings = after.findings
        results.append(Result(source=doc.source, kind=doc.kind, namespace=namespace,
                              name=doc.name, decision=decision, fixed_by_webhook=fixed,
                              findings=list(findings)))
    return results


def summary(results: list[Result]) -> dict[str, int]:
    """Counts for the last line of the report and for ``--output json``."""
    return {
        "workloads": len(results),
        "optedIn": sum(r.opted_in for r in results),
        "compliant": sum(r.compliant for r in results),
        "mismatched": sum(r.mismatched for r in results),
        "notOptedIn": sum(not r.opted_in for r in results),
    }
