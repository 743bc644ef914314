"""Leader election: the pure decision with plain numbers, then two electors on a fake API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from graceful.operator.lease import (
    Leadership,
    LeaseElector,
    LeaseSpec,
    Observation,
    decide,
    lease_object,
    next_spec,
    observe,
    released,
    spec_of,
)
from tests.operator.fakes import FakeApi

WALL = datetime(2030, 1, 1, tzinfo=UTC)


def seen(holder: str | None, at: float, rv: str = "1", duration: int = 15) -> Observation:
    return Observation(LeaseSpec(holder=holder, duration_seconds=duration), rv, at)


def test_no_lease_is_created() -> None:
    assert decide(None, me="a", now=0) == "create"


def test_our_lease_is_renewed_even_late() -> None:
    assert decide(seen("a", 0), me="a", now=100) == "renew"


def test_a_live_lease_of_another_is_respected() -> None:
    assert decide(seen("b", 10), me="a", now=24.9) == "wait"


def test_an_unrenewed_lease_is_taken_over_after_its_duration() -> None:
    assert decide(seen("b", 10), me="a", now=25) == "acquire"


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide(seen(None, 10), me="a", now=10) == "acquire"


def test_expiry_counts_from_when_we_saw_it_change_not_from_its_timestamps() -> None:
    first = observe(None, LeaseSpec("b"), "7", now=100)
    same = observe(first, LeaseSpec("b"), "7", now=110)
    assert same.changed_at == 100
    assert decide(same, me="a", now=115) == "acquire"
    renewed = observe(same, LeaseSpec("b"), "8", now=114)
    assert renewed.changed_at == 114
    assert decide(renewed, me="a", now=115) == "wait"


def test_next_spec() -> None:
    created = next_spec("create", None, me="a", wall=WALL, duration_seconds=15)
    assert created == LeaseSpec("a", 15, "2030-01-01T00:00:00.000000Z",
                                "2030-01-01T00:00:00.000000Z", 0)
    later = datetime(2030, 1, 1, 0, 0, 2, tzinfo=UTC)
    renewed = next_spec("renew", created, me="a", wall=later, duration_seconds=15)
    assert renewed.acquire_time == created.acquire_time
    assert renewed.renew_time == "2030-01-01T00:00:02.000000Z"
    taken = next_spec("acquire", created, me="b", wall=later, duration_seconds=15)
    assert (taken.holder, taken.transitions, taken.acquire_time) == (
        "b", 1, "2030-01-01T00:00:02.000000Z")
    gone = released(created, later)
    assert gone.holder is None and gone.duration_seconds == 1


def test_lease_object_round_trip() -> None:
    spec = next_spec("create", None, me="a", wall=WALL, duration_seconds=15)
    obj = lease_object("graceful-operator", "graceful-system", spec, "5")
    assert obj["metadata"]["resourceVersion"] == "5"
    assert obj["spec"]["holderIdentity"] == "a"
    assert spec_of(obj) == spec


def test_leadership_expires_by_the_local_clock() -> None:
    leadership = Leadership()
    assert not leadership.active(0)
    leadership.renewed(started=100, deadline=10)
    assert leadership.active(109.9) and not leadership.active(110)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(api: FakeApi, clock: Clock, me: str, changes: list[tuple[str, bool]]
            ) -> LeaseElector:
    return LeaseElector(api, namespace="graceful-system", identity=me, clock=clock,
                        wall=lambda: WALL, on_change=lambda v: changes.append((me, v)))


def test_two_replicas_one_leader_then_takeover() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), Clock()
        changes: list[tuple[str, bool]] = []
        a = elector(api, clock, "a", changes)
        b = elector(api, clock, "b", changes)
        assert await a.step() == "create"
        assert await b.step() == "wait"
        assert a.is_leader() and not b.is_leader()
        for _ in range(5):  # a renews every 2 s; b keeps seeing a changing lease
            clock.now += 2
            assert await a.step() == "renew"
            assert await b.step() == "wait"
        # a dies silently: its leadership lapses locally after the renew deadline...
        clock.now += 10
        assert not a.is_leader()
        # ...and b takes over once it has seen the lease unchanged for the lease duration.
        assert await b.step() == "wait"
        clock.now += 5
        assert await b.step() == "acquire"
        assert b.is_leader()
        lease = api.objects["/apis/coordination.k8s.io/v1/namespaces/graceful-system/leases/"
                            "graceful-operator"]
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1

    asyncio.run(scenario())


def test_racing_writers_one_wins_by_resource_version() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), Clock()
        changes: list[tuple[str, bool]] = []
        a = elector(api, clock, "a", changes)
        b = elector(api, clock, "b", changes)
        await a.step()
        await a.release()
        path = ("/apis/coordination.k8s.io/v1/namespaces/graceful-system/leases/"
                "graceful-operator")
        stale = dict(api.objects[path])  # what a reads: the released lease
        assert await b.step() == "acquire"  # b writes first
        original = api.request

        async def stale_read(method: str, path_: str, **kwargs: object) -> object:
            return stale if method == "GET" else await original(method, path_, **kwargs)  # type: ignore[arg-type]

        api.request = stale_read  # type: ignore[method-assign,assignment]
        assert await a.step() == "wait"  # its PUT carries the old resourceVersion: 409
        assert b.is_leader() and not a.is_leader()
        assert api.objects[path]["spec"]["holderIdentity"] == "b"

    asyncio.run(scenario())


def test_release_lets_the_successor_in_at_once_and_reports_transitions() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), Clock()
        changes: list[tuple[str, bool]] = []
        a = elector(api, clock, "a", changes)
        b = elector(api, clock, "b", changes)
        await a.step()
        a._transition()
        await b.step()
        await a.release()
        assert changes == [("a", True), ("a", False)]
        assert await b.step() == "acquire"
        b._transition()
        assert changes[-1] == ("b", True)

    asyncio.run(scenario())


def test_an_unreachable_api_server_ends_leadership_after_the_deadline() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), Clock()
        changes: list[tuple[str, bool]] = []
        a = elector(api, clock, "a", changes)
        await a.step()
        api.down = True
        clock.now += 9
        assert a.is_leader()
        clock.now += 1
        assert not a.is_leader()
        api.down = False
        assert await a.step() == "renew"
        assert a.is_leader()

    asyncio.run(scenario())
