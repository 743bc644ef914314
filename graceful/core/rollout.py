"""Is a workload's controller replacing its Pods right now? From its status fields alone.

Why it matters: ``StalePods`` tells the user that running Pods predate the
compliant template and that nothing will replace them, so a rollout is due.
While the controller *is* replacing them (a rollout in progress), saying so
is noise at best and, at worst, an invitation to restart a rollout that is
already happening. So the audit asks :func:`rollout_of` first and reports
stale Pods only when :attr:`Rollout.replaces_pods` is False.

How each kind is read (the fields the controllers themselves write):

- Deployment: ``spec.paused`` means nothing is replaced until it is resumed;
  otherwise it is progressing while ``status.observedGeneration`` lags
  ``metadata.generation`` or ``status.updatedReplicas`` is below
  ``spec.replicas`` (default 1) or below ``status.replicas`` (old Pods still
  around).
- StatefulSet: ``updateStrategy.type: OnDelete`` replaces nothing by itself;
  a ``rollingUpdate.partition`` above 0 leaves the Pods below it on the old
  revision for good; otherwise it is progressing while the generation lags,
  ``status.currentRevision`` differs from ``status.updateRevision``, or
  ``status.updatedReplicas`` is below ``spec.replicas``.
- DaemonSet: ``OnDelete`` replaces nothing; otherwise it is progressing while
  the generation lags or ``status.updatedNumberScheduled`` is below
  ``status.desiredNumberScheduled``.
- Anything else (a bare Pod, a Job): no controller replaces its Pods.

Pure: an object in, a verdict out; no clock, no I/O. A status the controller
has not written yet (a new object) reads as progressing, since the controller
is about to act on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: ``progressing``: the controller is replacing Pods; ``complete``: it has finished
#: (Pods it left behind are stale); ``paused``/``manual``: it will not replace them
#: (a paused Deployment; ``OnDelete`` or a partition); ``none``: no controller.
RolloutState = Literal["progressing", "complete", "paused", "manual", "none"]


@dataclass(frozen=True)
class Rollout:
    """What a workload's controller is doing with its Pods, and why we think so."""

    state: RolloutState
    reason: str

    @property
    def replaces_pods(self) -> bool:
        """True while the controller is replacing Pods: stale Pods are not reported then."""
        return self.state == "progressing"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any, default: int = 0) -> int:
    return value if type(value) is int and value >= 0 else default


def _generation_lags(obj: Mapping[str, Any]) -> bool:
    generation = _count(_mapping(obj.get("metadata")).get("generation"))
    observed = _mapping(obj.get("status")).get("observedGeneration")
    return type(observed) is not int or observed < generation


def rollout_of(obj: Mapping[str, Any]) -> Rollout:
    """The rollout state of a Deployment, StatefulSet or DaemonSet (``none`` otherwise)."""
    if not isinstance(obj, Mapping):
        return Rollout("none", "not an object")
    kind = obj.get("kind")
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    if kind == "Deployment":
        if spec.get("paused") is True:
            return Rollout("paused", "the Deployment is paused")
        if _generation_lags(obj):
            return Rollout("progressing", "the controller has not observed the latest spec")
        wanted = _count(spec.get("replicas"), 1)
        updated = _count(status.get("updatedReplicas"))
        if updated < wanted or updated < _count(status.get("replicas")):
            return Rollout("progressing", f"{updated} of {wanted} replicas updated")
        return Rollout("complete", "every replica is updated")
    if kind == "StatefulSet":
        strategy = _mapping(spec.get("updateStrategy"))
        if strategy.get("type") == "OnDelete":
            return Rollout("manual", "updateStrategy OnDelete: Pods change only when deleted")
        partition = _count(_mapping(strategy.get("rollingUpdate")).get("partition"))
        if partition > 0:
            return Rollout("manual", f"partition {partition}: Pods below it keep the old revision")
        if _generation_lags(obj):
            return Rollout("progressing", "the controller has not observed the latest spec")
        current, update = status.get("currentRevision"), status.get("updateRevision")
        if update is not None and current != update:
            return Rollout("progressing", "currentRevision differs from updateRevision")
        wanted = _count(spec.get("replicas"), 1)
        updated = _count(status.get("updatedReplicas"))
        if updated < wanted:
            return Rollout("progressing", f"{updated} of {wanted} replicas updated")
        return Rollout("complete", "every replica is on the update revision")
    if kind == "DaemonSet":
        strategy = _mapping(spec.get("updateStrategy"))
        if strategy.get("type") == "OnDelete":
            return Rollout("manual", "updateStrategy OnDelete: Pods change only when deleted")
        if _generation_lags(obj):
            return Rollout("progressing", "the controller has not observed the latest spec")
        desired = _count(status.get("desiredNumberScheduled"))
        updated = _count(status.get("updatedNumberScheduled"))
        if updated < desired:
            return Rollout("progressing", f"{updated} of {desired} nodes updated")
        return Rollout("complete", "every node runs the updated Pod")
    return Rollout("none", "no controller replaces its Pods")


def old_pods(obj: Mapping[str, Any]) -> int:
    """How many Pods the controller's status counts as not on the current template."""
    status = _mapping(obj.get("status"))
    if obj.get("kind") == "DaemonSet":
        return max(0, _count(status.get("desiredNumberScheduled"))
                   - _count(status.get("updatedNumberScheduled")))
    if obj.get("kind") in ("Deployment", "StatefulSet"):
        return max(0, _count(status.get("replicas")) - _count(status.get("updatedReplicas")))
    return 0


@dataclass(frozen=True)
class Stale:
    """Pods that predate the template and that nothing will replace (the operator's
    ``StalePods``, read from the controller's status instead of the Pods)."""

    count: int
    why: str

    @property
    def message(self) -> str:
        noun = "pod predates" if self.count == 1 else "pods predate"
        return f"{self.count} {noun} the compliant spec ({self.why}); roll out to apply it"


def stale_of(obj: Mapping[str, Any]) -> Stale | None:
    """The stale Pods of a workload by its status, or None (none, or a rollout in progress)."""
    state = rollout_of(obj)
    if state.replaces_pods or state.state == "none":
        return None
    count = old_pods(obj)
    return Stale(count, state.reason) if count > 0 else None
