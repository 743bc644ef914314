"""Reading the pod template out of a workload, without trusting its shape.

Why defensive reading: the webhook sees objects before the API server has
validated every field (mutating admission runs first), and the auditor sees
whatever is stored. A ``containers`` that is not a list must become a readable
warning, not a 500 from the webhook, because a failing webhook with
``failurePolicy: Fail`` blocks every rollout in the namespace.

Which containers count: ``spec.containers`` are the app. Init containers run
before the app and are gone when it stops, so they are left alone. Native
sidecars (init containers with ``restartPolicy: Always``) are not mutated
either: the kubelet stops them only after every app container has exited, so
they already outlive the drain; their own stop is counted in the budget
(see :mod:`graceful.core.proxies` and docs/shutdown-budget.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graceful.core.findings import clip
from graceful.core.names import WORKLOAD_KINDS
from graceful.core.patch import Pointer


class UnreadableObject(ValueError):
    """The object is not a workload shape the engine can read; the message says where."""


class UnsupportedKind(UnreadableObject):
    """The object opted in but is of a kind the engine does not handle (an Argo Rollout...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"kind {clip(kind)!r} is not one of {', '.join(WORKLOAD_KINDS)}")
        self.kind = kind


@dataclass(frozen=True)
class ContainerView:
    """One app container of the pod template, with where it lives in the object."""

    name: str
    raw: Mapping[str, Any]
    path: Pointer


@dataclass(frozen=True)
class PodSpecView:
    """The pod spec of a workload and the parts of it the budget needs."""

    path: Pointer
    raw: Mapping[str, Any]
    containers: tuple[ContainerView, ...]
    sidecars: tuple[str, ...]
    grace: int | None
    """``terminationGracePeriodSeconds`` as set, or None when absent (Kubernetes uses 30)."""
    sidecar_containers: tuple[ContainerView, ...] = ()
    """The native sidecars (init containers with ``restartPolicy: Always``), in order."""


# ``where`` is only formatted when the value is wrong: a Pointer costs its string on errors.
def _mapping(value: Any, where: str | Pointer) -> Mapping[str, Any]:
    if type(value) is not dict and not isinstance(value, Mapping):  # the ABC check is slow
        raise UnreadableObject(f"{where} is not an object")
    return value


def _optional_mapping(value: Any, where: str | Pointer) -> Mapping[str, Any]:
    return {} if value is None else _mapping(value, where)


def _list(value: Any, where: str | Pointer) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise UnreadableObject(f"{where} is not a list")
    return value


# Pointers are immutable: the few every evaluation needs are made once.
_TEMPLATE = Pointer(("spec", "template"))
_CRONJOB_TEMPLATE = Pointer(("spec", "jobTemplate", "spec", "template"))
_POD_SPEC = Pointer(("spec",))
_TEMPLATE_SPEC = _TEMPLATE / "spec"
_CRONJOB_TEMPLATE_SPEC = _CRONJOB_TEMPLATE / "spec"
_POD_ANNOTATIONS = Pointer(("metadata", "annotations"))
_TEMPLATE_ANNOTATIONS = _TEMPLATE / "metadata" / "annotations"
_CRONJOB_TEMPLATE_ANNOTATIONS = _CRONJOB_TEMPLATE / "metadata" / "annotations"
_METADATA = {_TEMPLATE: _TEMPLATE / "metadata", _CRONJOB_TEMPLATE: _CRONJOB_TEMPLATE / "metadata"}
_ANNOTATIONS = {_TEMPLATE: _TEMPLATE_ANNOTATIONS, _CRONJOB_TEMPLATE: _CRONJOB_TEMPLATE_ANNOTATIONS}


def template_path(obj: Mapping[str, Any]) -> Pointer:
    """Where the pod template lives: ``/spec/jobTemplate/spec/template`` for a CronJob,
    ``/spec/template`` otherwise (a Pod has none: its own ``/spec`` is returned's parent)."""
    return _CRONJOB_TEMPLATE if obj.get("kind") == "CronJob" else _TEMPLATE


def pod_spec_path(obj: Mapping[str, Any]) -> Pointer:
    """Where the pod spec lives: ``/spec`` for a Pod, the template's ``spec`` otherwise."""
    kind = obj.get("kind")
    if kind == "Pod":
        return _POD_SPEC
    return _CRONJOB_TEMPLATE_SPEC if kind == "CronJob" else _TEMPLATE_SPEC


def read_pod_spec(obj: Mapping[str, Any]) -> PodSpecView:
    """The pod spec of ``obj``; :class:`UnreadableObject` when the shape is wrong."""
    kind = _mapping(obj, "object").get("kind")
    if kind not in WORKLOAD_KINDS:
        raise UnsupportedKind(str(kind))
    path = pod_spec_path(obj)
    node: Any = obj
    for part in path.parts:
        if type(node) is not dict and not isinstance(node, Mapping):  # the ABC check is slow
            raise UnreadableObject(f"{path} is not an object")
        node = node.get(str(part))
        if node is None:
            raise UnreadableObject(f"{path} is missing")
    spec = _mapping(node, path)
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (type(grace) is not int or grace < 0):
        raise UnreadableObject(f"{path}/terminationGracePeriodSeconds is not a whole number")
    containers = []
    listed = path / "containers"
    for index, item in enumerate(_list(spec.get("containers"), listed)):
        where = listed / index
        container = _mapping(item, where)
        name = container.get("name")
        if not isinstance(name, str) or not name:
            raise UnreadableObject(f"{where}/name is not a string")
        containers.append(ContainerView(name=name, raw=container, path=where))
    sidecars = []
    inits = path / "initContainers"
    for index, item in enumerate(_list(spec.get("initContainers"), inits)):
        init = _mapping(item, inits / index)
        if init.get("restartPolicy") == "Always" and isinstance(init.get("name"), str):
            sidecars.append(ContainerView(name=init["name"], raw=init, path=inits / index))
    if not containers:
        raise UnreadableObject(f"{path}/containers is empty")
    return PodSpecView(path=path, raw=spec, containers=tuple(containers),
                       sidecars=tuple(s.name for s in sidecars), grace=grace,
                       sidecar_containers=tuple(sidecars))


def pod_annotations(obj: Mapping[str, Any]) -> tuple[Pointer, dict[str, str]]:
    """Where the Pod's own annotations live (a template's for a workload), and their value.

    Unlike :func:`annotations_of`, the workload's annotations are not merged in:
    a mesh's proxy reads the Pod's annotations only.
    """
    kind = _mapping(obj, "object").get("kind")
    if kind == "Pod":
        where = _POD_ANNOTATIONS
    else:
        where = _CRONJOB_TEMPLATE_ANNOTATIONS if kind == "CronJob" else _TEMPLATE_ANNOTATIONS
    node: Any = obj
    for part in where.parts:
        node = _optional_mapping(node, where).get(str(part))
    return where, string_map(node, where)


def metadata_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """``metadata`` of the object ({} when absent); :class:`UnreadableObject` if not a map."""
    return _optional_mapping(_mapping(obj, "object").get("metadata"), "/metadata")


def string_map(value: Any, where: str | Pointer) -> dict[str, str]:
    """A labels or annotations map, keeping only string values."""
    return {k: v for k, v in _optional_mapping(value, where).items()
            if isinstance(k, str) and isinstance(v, str)}


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """The workload's annotations over its pod template's (the workload's own win).

    Users put ``graceful.io/*`` on either; reading both means a Deployment
    annotated on its template still opts in.
    """
    merged: dict[str, str] = {}
    if _mapping(obj, "object").get("kind") != "Pod":
        node: Any = obj
        path = template_path(obj)
        for part in path.parts:
            node = _optional_mapping(node, path).get(str(part))
        meta = _optional_mapping(_optional_mapping(node, path).get("metadata"),
                                 _METADATA[path])
        merged.update(string_map(meta.get("annotations"), _ANNOTATIONS[path]))
    merged.update(string_map(metadata_of(obj).get("annotations"), "/metadata/annotations"))
    return merged


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """The workload's own labels, which a policy's selector matches."""
    return string_map(metadata_of(obj).get("labels"), "/metadata/labels")


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``ownerReference`` with ``controller: true``, or None."""
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    owners = metadata.get("ownerReferences") if isinstance(metadata, Mapping) else None
    if not isinstance(owners, list):
        return None
    return next((ref for ref in owners
                 if isinstance(ref, Mapping) and ref.get("controller") is True), None)


def is_bare_pod(obj: Mapping[str, Any]) -> bool:
    """A Pod that no controller manages, so it is a workload of its own.

    A Pod with a controller (a ReplicaSet, a StatefulSet, a Job...) was decided
    through that controller's template; an owner that is not its controller
    (an ``ownerReference`` for garbage collection only) recreates nothing, so
    such a Pod is bare. The webhook and the operator both ask this function.
    """
    return isinstance(obj, Mapping) and obj.get("kind") == "Pod" and controller_of(obj) is None


def name_of(obj: Mapping[str, Any]) -> str:
    """``metadata.name`` (or ``generateName``), "" when neither is a string."""
    meta = metadata_of(obj)
    for key in ("name", "generateName"):
        if isinstance(meta.get(key), str):
            return str(meta[key])
    return ""
