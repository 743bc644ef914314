"""The operator's own memory of the workloads kopf delivers, and when it is complete.

Why not ``@kopf.index`` for workloads: kopf holds back every non-index handler
until every indexed object of every kind is indexed, and while one waits, the
object's worker keeps the whole body it was given (a Deployment decodes to
about 22 KiB). With 10,000 indexed Deployments that is every body at once,
over 300 MiB before anything is audited (``docs/kopf-at-scale.md`` has the
profile). An ``@kopf.on.event`` handler that keeps a small projection here
lets kopf free each body as soon as its worker goes idle
(``settings.queueing.idle_timeout``).

What the index gave for free has to be kept here instead: knowing that the
first listing is complete, so that an audit never reports a half-listed
namespace (a restart would write "matched 12" before "matched 10,000").
:class:`ListingGate` knows how many objects of each kind existed when the
operator started (the API server counts them, ``remainingItemCount``), and
opens once that many were delivered; a deletion during the listing is caught
by counting again once deliveries went quiet.

Pure: time and counts are passed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graceful.core.rollout import stale_of
from graceful.operator import projection
from graceful.operator.events import WorkloadKey


def key_of(obj: Mapping[str, Any]) -> WorkloadKey:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return (str(meta.get("namespace") or ""), str(obj.get("kind") or ""),
            str(meta.get("name") or ""))


def _without_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "generation"}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def same_audit(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether the audit of ``new`` is the audit of ``old``: same template and labels, and
    the controller's status says the same about its Pods (``rollout.stale_of``). A Deployment's
    status moves several times per rollout; only a change of that conclusion counts."""
    return _without_status(old) == _without_status(new) and _stale(old) == _stale(new)


def _stale(obj: Mapping[str, Any]) -> str | None:
    """What the audit reports of the rollout: the stale Pods' message, or nothing (a rollout
    in progress is not reported, however many Pods it has left to replace)."""
    stale = stale_of(obj)
    return None if stale is None else stale.message


@dataclass
class WorkloadStore:
    """Projections of the audited workloads, by namespace and key."""

    _by_namespace: dict[str, dict[WorkloadKey, dict[str, Any]]] = field(default_factory=dict)

    def apply(self, kind: str, body: Mapping[str, Any], deleted: bool) -> WorkloadKey | None:
        """Record one watch event; the key of the workload if what the audit reads changed."""
        meta = body.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not isinstance(namespace, str) or not isinstance(name, str):
            return None
        key = (namespace, kind, name)
        kept = None if deleted else projection.workload(body, kind)
        workloads = self._by_namespace.setdefault(namespace, {})
        if kept is None:
            if workloads.pop(key, None) is None:
                return None
            if not workloads:
                del self._by_namespace[namespace]
            return key
        old = workloads.get(key)
        workloads[key] = kept
        if old is not None and same_audit(old, kept):
            return None  # a status or metadata change the audit does not read
        return key

    def namespace(self, namespace: str) -> Mapping[WorkloadKey, dict[str, Any]]:
        return self._by_namespace.get(namespace, {})

    def namespaces(self) -> Iterator[str]:
        return iter(list(self._by_namespace))

    def __len__(self) -> int:
        return sum(len(w) for w in self._by_namespace.values())


@dataclass
class ListingGate:
    """Open once kopf delivered every workload that existed when the operator started."""

    expected: dict[str, int] = field(default_factory=dict)
    """Kind -> how many objects the API server counted (set before kopf lists)."""
    seen: dict[str, set[str]] = field(default_factory=dict)
    """Kind -> uids delivered so far (less the deleted ones)."""
    last_delivery: float = 0.0
    opened: bool = False

    def observe(self, kind: str, uid: str | None, deleted: bool, now: float) -> None:
        if self.opened or not uid:
            return
        uids = self.seen.setdefault(kind, set())
        if deleted:
            uids.discard(uid)
        else:
            uids.add(uid)
        self.last_delivery = now

    def recount(self, kind: str, count: int) -> None:
        """The API server's count now (objects deleted while kopf listed are not delivered)."""
        self.expected[kind] = count

    def complete(self) -> bool:
        """Whether every expected object was delivered (then the gate stays open)."""
        if not self.opened and all(len(self.seen.get(kind, ())) >= count
                                   for kind, count in self.expected.items()):
            self.opened = True
            self.seen.clear()
        return self.opened

    def quiet(self, now: float, seconds: float) -> bool:
        """No delivery for ``seconds``: time to count again."""
        return now - self.last_delivery >= seconds
