"""Pods that still run with the settings of an older pod template.

Why this is separate from the workload's findings: after the webhook fixes a
Deployment, its running Pods keep the old grace period until they are
replaced. Their next shutdown (a node drain, say) will cut the drain short
even though the workload itself is compliant. The operator reports them as
``StalePods`` so the user knows a rollout is due. The check is semantic (does
the Pod meet the budget?), not a diff against the template, so a Pod with a
larger user value is not called stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graceful.core import prestop
from graceful.core.evaluate import Decision
from graceful.core.names import (
    KUBERNETES_DEFAULT_GRACE_SECONDS,
    KUBERNETES_DEFAULT_PROBE_FAILURE_THRESHOLD,
    KUBERNETES_DEFAULT_PROBE_PERIOD,
)
from graceful.core.plan import Plan
from graceful.core.podspec import UnreadableObject, name_of, read_pod_spec


def stale_pods(decision: Decision, pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of ``pods`` whose spec lacks the settings the decision's plan requires."""
    plan = decision.plan
    if plan is None or decision.policy is None:
        return []
    drain = decision.policy.spec.drain
    tuned = decision.policy.spec.readiness is not None
    stale = []
    for pod in pods:
        if not isinstance(pod, Mapping):
            continue
        try:
            if _lacks(pod, plan, drain.pre_stop_sleep_seconds, tuned):
                stale.append(name_of(pod))
        except UnreadableObject:
            continue
    return sorted(stale)


def _lacks(pod: Mapping[str, Any], plan: Plan, sleep: int, tuned: bool) -> bool:
    view = read_pod_spec({**pod, "kind": "Pod"})
    grace = KUBERNETES_DEFAULT_GRACE_SECONDS if view.grace is None else view.grace
    if grace < plan.budget.grace:
        return True
    for container in view.containers:
        wanted = plan.container(container.name)
        if wanted is None:
            continue
        lifecycle = container.raw.get("lifecycle")
        hook = prestop.read(lifecycle.get("preStop") if isinstance(lifecycle, Mapping) else None)
        if hook.shape == "none" and sleep > 0:
            return True
        if hook.seconds is not None and hook.seconds < sleep:
            return True
        probe = container.raw.get("readinessProbe")
        if tuned and isinstance(probe, Mapping):
            period = probe.get("periodSeconds") or KUBERNETES_DEFAULT_PROBE_PERIOD
            threshold = probe.get("failureThreshold") or KUBERNETES_DEFAULT_PROBE_FAILURE_THRESHOLD
            if (isinstance(period, int) and isinstance(threshold, int)
                    and period * threshold > wanted.pre_stop_seconds):
                return True
    return False
