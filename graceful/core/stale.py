"""Pods that still run with the settings of an older pod template.

Why this is separate from the workload's findings: after the webhook fixes a
Deployment, its running Pods keep the old grace period until they are
replaced. Their next shutdown (a node drain, say) will cut the drain short
even though the workload itself is compliant. The operator reports them as
``StalePods`` so the user knows a rollout is due (and, with
:mod:`graceful.core.rollout`, only when nothing is already replacing them).

Why each Pod goes through :func:`evaluate` instead of a check of its own: the
grace period, preStop, probe and sidecar rules live in one place, and a check
written again here would drift from them (it did: other defaults, other
rules). A Pod is judged as the admitted template with the Pod's own shutdown
fields laid over it, so the app's timeout is read from the same command line,
environment and annotations as the workload's, and the Pod is stale exactly
when the engine finds something wrong with it. The check is semantic, not a
diff: a Pod with a larger user value is not stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from graceful.core.evaluate import Decision, evaluate
from graceful.core.names import ANNOTATION_POLICY
from graceful.core.podspec import UnreadableObject, annotations_of, name_of, read_pod_spec

#: The container fields that carry shutdown settings; the rest comes from the template.
SHUTDOWN_FIELDS: Final = ("lifecycle", "readinessProbe", "livenessProbe", "startupProbe")


def stale_pods(decision: Decision, pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of ``pods`` that the engine finds fault with under the decision's policy."""
    policy = decision.policy
    admitted = decision.admitted
    if decision.plan is None or policy is None or admitted is None:
        return []
    try:
        template = read_pod_spec(admitted).raw
        annotations = {**annotations_of(admitted), ANNOTATION_POLICY: policy.name}
    except UnreadableObject:
        return []
    stale = []
    for pod in pods:
        if not isinstance(pod, Mapping):
            continue
        try:
            spec = _overlay(template, read_pod_spec({**pod, "kind": "Pod"}).raw)
        except UnreadableObject:
            continue
        judged = evaluate({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": name_of(pod), "annotations": annotations},
                           "spec": spec}, [policy])
        if judged.findings:
            stale.append(name_of(pod))
    return sorted(stale)


def _overlay(template: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, Any]:
    """The template's pod spec with the running Pod's shutdown settings in place of its own."""
    spec = dict(template)
    spec.pop("terminationGracePeriodSeconds", None)
    if "terminationGracePeriodSeconds" in pod:
        spec["terminationGracePeriodSeconds"] = pod["terminationGracePeriodSeconds"]
    for section in ("containers", "initContainers"):
        mine = template.get(section)
        theirs = pod.get(section)
        if not isinstance(mine, list):
            continue
        running = {c.get("name"): c for c in theirs if isinstance(c, Mapping)} if isinstance(
            theirs, list) else {}
        merged = []
        for container in mine:
            if not isinstance(container, Mapping) or container.get("name") not in running:
                merged.append(container)
                continue
            found = running[container.get("name")]
            kept = {k: v for k, v in container.items() if k not in SHUTDOWN_FIELDS}
            kept.update({k: found[k] for k in SHUTDOWN_FIELDS if k in found})
            merged.append(kept)
        spec[section] = merged
    return spec
