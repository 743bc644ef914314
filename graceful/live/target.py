"""``KIND/NAME`` as kubectl reads it, and where each kind lives in the API.

Kept apart from the client so it is tested without a cluster, and so the
kinds a live command accepts are exactly the engine's :data:`WORKLOAD_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from graceful.core import WORKLOAD_KINDS


class TargetError(ValueError):
    """A KIND/NAME argument that names no workload kind we read."""


@dataclass(frozen=True)
class Resource:
    """Where the objects of one workload kind are listed."""

    kind: str
    group: str
    """``""`` for the core group."""
    version: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None) -> str:
        """The API path of the collection (in ``namespace``, or all) or of one object."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{root}{where}/{self.plural}" + (f"/{name}" if name else "")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps``: how RBAC and kubectl name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: Final = {r.kind: r for r in (
    Resource("Deployment", "apps", "v1", "deployments"),
    Resource("StatefulSet", "apps", "v1", "statefulsets"),
    Resource("DaemonSet", "apps", "v1", "daemonsets"),
    Resource("Job", "batch", "v1", "jobs"),
    Resource("CronJob", "batch", "v1", "cronjobs"),
    Resource("Pod", "", "v1", "pods"),
)}
assert set(RESOURCES) == set(WORKLOAD_KINDS), "a workload kind the live commands cannot read"

#: Every spelling kubectl accepts for these kinds: kind, singular, plural, short names.
_ALIASES: Final = {
    "Deployment": ("deployment", "deployments", "deploy"),
    "StatefulSet": ("statefulset", "statefulsets", "sts"),
    "DaemonSet": ("daemonset", "daemonsets", "ds"),
    "Job": ("job", "jobs"),
    "CronJob": ("cronjob", "cronjobs", "cj"),
    "Pod": ("pod", "pods", "po"),
}
_BY_ALIAS: Final = {alias: kind for kind, aliases in _ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class Target:
    resource: Resource
    name: str


def parse_target(text: str) -> Target:
    """``deploy/worker``, ``Deployment/worker``, ``deployments.apps/worker`` -> a Target.

    Like kubectl, the kind is case-insensitive and may carry its group
    (``deployment.apps``, ``cronjobs.batch``); a wrong group is an error, not ignored.
    """
    kind_text, slash, name = text.partition("/")
    if not slash or not kind_text or not name or "/" in name:
        raise TargetError(f"{text!r}: expected KIND/NAME, e.g. deployment/worker")
    alias, _, group = kind_text.lower().partition(".")
    kind = _BY_ALIAS.get(alias)
    if kind is None:
        known = ", ".join(f"{aliases[0]} ({aliases[-1]})" for aliases in _ALIASES.values())
        raise TargetError(f"{text!r}: {kind_text!r} is not a workload kind graceful reads"
                          f" (one of: {known})")
    resource = RESOURCES[kind]
    if group and group != (resource.group or "core"):
        raise TargetError(f"{text!r}: {kind} is in the {resource.group or 'core'} API group,"
                          f" not {group!r}")
    return Target(resource, name)
