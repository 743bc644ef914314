"""What the operator keeps in memory of each watched workload, and under which key.

Why projections: the audit reads only a workload's identity, labels,
annotations and pod template, plus the few status counts that say whether
its Pods predate the template (``graceful.core.rollout``). A Deployment as
the API returns it also carries ``managedFields``, the rest of its
``status`` and often ``kubectl.kubernetes.io/last-applied-configuration`` (a
second copy of the whole object), which together are most of its size.
Keeping only the projection is what keeps the operator small with thousands
of workloads.

Why no Pods of controllers and no ReplicaSets: whether a workload's Pods are
stale is read from the controller's status (``rollout``), so the operator
watches Pods only where a Pod is the workload (a bare Pod, no owner). The
watch asks the API server for those only (:data:`BARE_POD_SELECTOR`, a label
selector; ownership cannot be selected on), and :func:`workload` drops any
owned Pod that still comes through.

Every function here is pure: an API object in, a small dict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from graceful.core import is_bare_pod

#: Kinds whose pod template the audit evaluates, with the apiVersion they are served at.
WORKLOAD_API_VERSIONS: Final = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Pod": "v1",
}
#: The annotations ``graceful.core`` reads all carry this prefix; the others (the
#: controller's ``deployment.kubernetes.io/revision``, kubectl's last-applied copy of the
#: object) are not kept, so their changes cost no evaluation and no memory.
KEPT_ANNOTATION_PREFIX: Final = "graceful.io/"
#: Labels the Kubernetes controllers put on the Pods they own (ReplicaSet, StatefulSet and
#: DaemonSet, Job): a Pod without any of them is a bare Pod, or a custom controller's.
CONTROLLER_POD_LABELS: Final = ("pod-template-hash", "controller-revision-hash",
                                "batch.kubernetes.io/controller-uid", "controller-uid")
#: The label selector of the Pod watch: no Pod a built-in controller owns.
BARE_POD_SELECTOR: Final = ",".join(f"!{label}" for label in CONTROLLER_POD_LABELS)
#: Status fields ``graceful.core.rollout`` reads, per kind.
ROLLOUT_STATUS: Final = {
    "Deployment": ("observedGeneration", "replicas", "updatedReplicas"),
    "StatefulSet": ("observedGeneration", "replicas", "updatedReplicas", "currentRevision",
                    "updateRevision"),
    "DaemonSet": ("observedGeneration", "desiredNumberScheduled", "updatedNumberScheduled"),
    # A Job's template cannot change and a CronJob's applies to its next Job: no rollout.
    "Job": (),
    "CronJob": (),
}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> dict[str, str]:
    return {k: v for k, v in _mapping(value).items()
            if isinstance(k, str) and isinstance(v, str)}


def workload(body: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The projection of a Deployment, StatefulSet, DaemonSet, Job, CronJob or bare Pod; None
    otherwise.

    It is a valid (smaller) object of the same kind: ``graceful.core.evaluate``
    and ``graceful.core.rollout`` read it exactly as they would read the original.
    """
    api_version = WORKLOAD_API_VERSIONS.get(kind)
    if api_version is None:
        return None
    meta = _mapping(body.get("metadata"))
    spec = _mapping(body.get("spec"))
    metadata: dict[str, Any] = {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "labels": _strings(meta.get("labels")),
        "annotations": {k: v for k, v in _strings(meta.get("annotations")).items()
                        if k.startswith(KEPT_ANNOTATION_PREFIX)},
    }
    if kind == "Pod":
        if not is_bare_pod(body):  # the one definition, shared with the webhook
            return None
        return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}
    if isinstance(meta.get("generation"), int):
        metadata["generation"] = meta["generation"]
    if kind == "CronJob":
        job_spec = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
        template = job_spec.get("template")
        kept_spec: dict[str, Any] = {"jobTemplate": {"spec": {"template": template}}}
    else:
        kept_spec = {"template": spec.get("template")}
    for key in ("paused", "updateStrategy"):
        if key in spec:
            kept_spec[key] = spec[key]
    status = _mapping(body.get("status"))
    kept_status: dict[str, Any] = {k: status[k] for k in ROLLOUT_STATUS[kind] if k in status}
    stopped = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)
               and c.get("type") == "Progressing" and c.get("status") == "False"]
    if stopped:
        kept_status["conditions"] = [{k: c.get(k) for k in ("type", "status", "reason")}
                                     for c in stopped]
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": kept_spec,
            "status": kept_status}
