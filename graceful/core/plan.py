"""The settings a workload needs, per container and per pod.

Why a plan next to the patch: the patch says how to change one object as it
was admitted; the plan says what the budget is and where each number came
from. The operator compares running Pods with the plan (``stale_pods``), the
``graceful explain`` command prints it, and tests assert on it without
decoding JSON pointers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graceful.core.budget import Budget
from graceful.core.timeout_sources import Timeout

#: What happens to a container's preStop hook: added, a recognised sleep raised
#: to S or (``userValues: Overwrite``) lowered to S, a recognised sleep kept,
#: a hook of the user's kept with its declared length (``keep-declared``) or of
#: unknown length (``keep-unknown``), a hook the kubelet does not run kept
#: (``keep-invalid``), or nothing (S is 0 and there is no hook).
PreStopChange = Literal["add", "raise", "lower", "keep", "keep-declared", "keep-unknown",
                        "keep-invalid", "none"]


@dataclass(frozen=True)
class ReadinessPlan:
    """A readiness probe's timing after the patch."""

    period_seconds: int
    failure_threshold: int

    @property
    def window(self) -> int:
        """Seconds from the first failed probe to not-ready."""
        return self.period_seconds * self.failure_threshold


@dataclass(frozen=True)
class ContainerPlan:
    """What one app container gets."""

    name: str
    timeout: Timeout
    """G for this container and where it was read."""
    pre_stop: PreStopChange
    pre_stop_seconds: int
    """The preStop time the budget counts for this container after the patch (for
    ``keep-unknown``: S, a lower bound)."""
    readiness: ReadinessPlan | None
    """Probe timing after the patch; None when the container has no readiness probe."""
    budget: Budget

    @property
    def pre_stop_known(self) -> bool:
        """Whether ``pre_stop_seconds`` is the hook's real length."""
        return self.pre_stop != "keep-unknown"


@dataclass(frozen=True)
class Plan:
    """What the pod gets: the binding budget, the grace period, each container."""

    pod_spec_path: str
    budget: Budget
    """The largest container budget (the pod has one grace period for all)."""
    grace_period_seconds: int
    """``terminationGracePeriodSeconds`` after the patch (a kept larger user value included)."""
    containers: tuple[ContainerPlan, ...]
    untouched: tuple[str, ...]
    """App containers the policy does not select, and native sidecars."""

    def container(self, name: str) -> ContainerPlan | None:
        """The plan of the container called ``name``."""
        return next((c for c in self.containers if c.name == name), None)
