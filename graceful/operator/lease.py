"""Leader election with a ``coordination.k8s.io/v1`` Lease.

Why not kopf's peering: peering pauses operators of *equal* priority, so two
replicas of this Deployment would both pause or both run. A Lease elects
exactly one leader, the way client-go's leader election (and every
kubebuilder project) does. Every replica watches and indexes, so a follower is
warm and takes over within one lease duration; only the leader writes policy
status and Events.

The rules, as in client-go:

- the holder renews every ``renew_every`` seconds (2 s) by updating
  ``renewTime`` with the resourceVersion it read (optimistic concurrency: of
  two replicas racing for the Lease, one gets a 409 Conflict);
- another replica takes over only after it has seen the Lease *unchanged* for
  ``leaseDurationSeconds`` (15 s) by its own clock, so the replicas' clocks
  need not agree;
- the holder stops acting as leader ``renew_deadline`` (10 s) after its last
  successful renewal, before anybody else may take over;
- a replica that stops cleanly releases the Lease (empty holder), so its
  successor takes over at once.

The decision is a pure function (:func:`decide`) tested with plain numbers;
:class:`LeaseElector` does the HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from graceful.operator.kube import Api, ApiError

logger = logging.getLogger(__name__)

Action = Literal["create", "renew", "acquire", "wait"]

DEFAULT_LEASE_NAME = "graceful-operator"


@dataclass(frozen=True)
class LeaseSpec:
    """The fields of a Lease's spec that election uses."""

    holder: str | None
    duration_seconds: int = 15
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Observation:
    """The Lease as this replica last read it, and when (its own clock) it last changed."""

    spec: LeaseSpec
    resource_version: str
    changed_at: float


def observe(previous: Observation | None, spec: LeaseSpec, resource_version: str,
            now: float) -> Observation:
    """Record a read of the Lease; the clock restarts only when the Lease changed."""
    if previous is not None and previous.resource_version == resource_version:
        return previous
    return Observation(spec=spec, resource_version=resource_version, changed_at=now)


def decide(observation: Observation | None, *, me: str, now: float) -> Action:
    """What to do with the Lease: create it, renew ours, take it over, or wait."""
    if observation is None:
        return "create"
    holder = observation.spec.holder
    if holder == me:
        return "renew"
    if not holder:
        return "acquire"
    if now >= observation.changed_at + observation.spec.duration_seconds:
        return "acquire"
    return "wait"


def micro_time(value: datetime) -> str:
    """A ``metav1.MicroTime`` string."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_spec(action: Action, current: LeaseSpec | None, *, me: str, wall: datetime,
              duration_seconds: int) -> LeaseSpec:
    """The spec to write for ``action`` (not for ``wait``)."""
    stamp = micro_time(wall)
    if action == "create" or current is None:
        return LeaseSpec(holder=me, duration_seconds=duration_seconds, acquire_time=stamp,
                         renew_time=stamp, transitions=0)
    if action == "renew":
        return replace(current, holder=me, duration_seconds=duration_seconds, renew_time=stamp)
    if action == "acquire":
        return LeaseSpec(holder=me, duration_seconds=duration_seconds, acquire_time=stamp,
                         renew_time=stamp, transitions=current.transitions + 1)
    raise ValueError("nothing to write while waiting")


def released(current: LeaseSpec, wall: datetime) -> LeaseSpec:
    """The spec that hands the Lease back (client-go's ReleaseOnCancel)."""
    return replace(current, holder=None, duration_seconds=1, renew_time=micro_time(wall))


def spec_of(lease: Mapping[str, Any]) -> LeaseSpec:
    spec = lease.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    transitions = spec.get("leaseTransitions")
    return LeaseSpec(
        holder=spec.get("holderIdentity") or None,
        duration_seconds=duration if isinstance(duration, int) and duration > 0 else 15,
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=transitions if isinstance(transitions, int) else 0,
    )


def lease_object(name: str, namespace: str, spec: LeaseSpec,
                 resource_version: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"leaseDurationSeconds": spec.duration_seconds,
                            "leaseTransitions": spec.transitions}
    if spec.holder:
        body["holderIdentity"] = spec.holder
    if spec.acquire_time:
        body["acquireTime"] = spec.acquire_time
    if spec.renew_time:
        body["renewTime"] = spec.renew_time
    metadata: dict[str, Any] = {"name": name, "namespace": namespace,
                                "labels": {"app.kubernetes.io/name": "graceful-operator"}}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": metadata, "spec": body}


@dataclass
class Leadership:
    """Whether this replica may act as leader, by its own monotonic clock."""

    valid_until: float = 0.0

    def renewed(self, started: float, deadline: float) -> None:
        """A write that started at ``started`` succeeded."""
        self.valid_until = started + deadline

    def lost(self) -> None:
        self.valid_until = 0.0

    def active(self, now: float) -> bool:
        return now < self.valid_until


class LeaseElector:
    """Keeps (or waits for) the Lease; ``on_change(True/False)`` on every transition."""

    def __init__(self, api: Api, *, namespace: str, identity: str,
                 name: str = DEFAULT_LEASE_NAME, duration_seconds: int = 15,
                 renew_every: float = 2.0, renew_deadline: float = 10.0,
                 on_change: Callable[[bool], None] = lambda _leading: None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration_seconds = duration_seconds
        self.renew_every = renew_every
        self.renew_deadline = renew_deadline
        self.on_change = on_change
        self.clock = clock
        self.wall = wall
        self.leadership = Leadership()
        self.observation: Observation | None = None
        self._leading = False
        self._told_missing = False

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def is_leader(self) -> bool:
        return self.leadership.active(self.clock())

    def _transition(self) -> None:
        leading = self.is_leader()
        if leading != self._leading:
            self._leading = leading
            logger.info("%s leadership of lease %s/%s as %s",
                        "acquired" if leading else "lost", self.namespace, self.name,
                        self.identity)
            self.on_change(leading)

    async def step(self) -> Action:
        """Read the Lease once and act on it; returns what was decided."""
        started = self.clock()
        try:
            lease = await self.api.request("GET", f"{self.path}/{self.name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            lease = None
        if lease is None:
            self.observation = None
        else:
            rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
            self.observation = observe(self.observation, spec_of(lease), rv, started)
        action = decide(self.observation, me=self.identity, now=started)
        if action == "wait":
            self.leadership.lost()
            return action
        current = self.observation.spec if self.observation else None
        spec = next_spec(action, current, me=self.identity, wall=self.wall(),
                         duration_seconds=self.duration_seconds)
        version = self.observation.resource_version if self.observation else None
        body = lease_object(self.name, self.namespace, spec, version)
        try:
            if action == "create":
                await self.api.request("POST", self.path, body=body)
            else:
                await self.api.request("PUT", f"{self.path}/{self.name}", body=body)
        except ApiError as exc:
            if exc.status in (409, 422):  # somebody else wrote first
                self.leadership.lost()
                return "wait"
            raise
        self.leadership.renewed(started, self.renew_deadline)
        return action

    async def run(self) -> None:
        """Forever: one attempt every ``renew_every`` seconds; errors only delay."""
        while True:
            await self.attempt()
            await asyncio.sleep(self.renew_every)

    async def attempt(self) -> None:
        """One :meth:`step`; a failure is logged, never raised.

        A missing namespace is said once, with what to do, then retried
        quietly: it is a set-up mistake (``graceful operator`` run by hand
        against a cluster without ``graceful-system``), not a passing outage,
        and the same line every two seconds would bury the fix.
        """
        try:
            await self.step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API server may be away; keep trying
            if self._namespace_missing(exc):
                if not self._told_missing:
                    self._told_missing = True
                    logger.error(
                        "lease %s/%s: namespace %r does not exist, so this replica cannot"
                        " lead and writes no status or Event. Create it (kubectl create"
                        " namespace %s) or pass --lease-namespace NS with a namespace that"
                        " exists; retrying every %gs", self.namespace, self.name,
                        self.namespace, self.namespace, self.renew_every)
                else:
                    logger.debug("lease %s/%s: %s", self.namespace, self.name, exc)
            else:
                logger.warning("lease %s/%s: %s", self.namespace, self.name, exc)
        else:
            if self._told_missing:
                self._told_missing = False
                logger.info("lease %s/%s: namespace %r exists now", self.namespace,
                            self.name, self.namespace)
        self._transition()

    def _namespace_missing(self, exc: Exception) -> bool:
        return (isinstance(exc, ApiError) and exc.status == 404
                and f'namespaces "{self.namespace}" not found' in exc.message)

    async def release(self) -> None:
        """Hand the Lease back if we hold it, so a successor need not wait."""
        was_leader = self.is_leader()
        self.leadership.lost()
        self._transition()
        if not was_leader:
            return
        path = f"{self.path}/{self.name}"
        try:
            lease = await self.api.request("GET", path)
            current = spec_of(lease)
            if current.holder != self.identity:
                return
            rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
            await self.api.request("PUT", path, body=lease_object(
                self.name, self.namespace, released(current, self.wall()), rv))
            logger.info("released lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            logger.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
