"""PolicyReports from the single writer, against a fake API: what is written, and when not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from graceful.core import policy_report
from graceful.operator.kube import ApiError
from graceful.operator.policy_reports import PolicyReports, group_path, report_path
from graceful.operator.reconciler import Auditor
from graceful.operator.settings import OperatorSettings
from tests.operator import objects
from tests.operator.fakes import FakeApi
from tests.operator.test_reconciler import Clock, World, flush

NAME = "graceful-operator"


def served(api: FakeApi) -> FakeApi:
    """The cluster has the wg-policy CRD."""
    api.objects[group_path()] = {"kind": "APIResourceList",
                                 "resources": [{"name": "policyreports", "namespaced": True}]}
    return api


def make(api: FakeApi, world: World, *, leader: bool = True, enabled: bool = True,
         when: datetime = datetime(2030, 1, 1, tzinfo=UTC)) -> Auditor:
    auditor = Auditor(settings=OperatorSettings(identity="replica-1"), api=api,
                      is_leader=lambda: leader, clock=Clock(), wall=lambda: when,
                      reports=PolicyReports(api, enabled=enabled, wall=lambda: when))
    world.watch(auditor)
    auditor.mark_all(evaluate=True)
    return auditor


def stored(api: FakeApi, namespace: str = "team-a") -> dict[str, dict[str, Any]]:
    prefix = report_path(namespace) + "/"
    return {path.removeprefix(prefix): body for path, body in api.objects.items()
            if path.startswith(prefix)}


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {r["resources"][0]["name"]: r["result"] for r in report["results"]}


def writes(api: FakeApi) -> list[tuple[str, str]]:
    return [(m, p) for m, p in api.calls if "/policyreports/" in p and m in ("PATCH", "DELETE")]


def a_world() -> World:
    world = World()
    world.put(objects.policy())
    world.put(objects.deployment("legacy"))  # misses the budget
    world.put(objects.deployment("good", grace=40, pre_stop=5))
    world.put(objects.deployment("other", policy=None))  # not opted in: no result
    return world


def test_one_report_per_namespace_with_a_result_per_opted_in_workload() -> None:
    api, world = served(FakeApi()), a_world()
    flush(make(api, world), world)
    (name, report), = stored(api).items()
    assert name == NAME
    assert report["metadata"]["labels"] == {"app.kubernetes.io/managed-by": NAME}
    assert outcomes(report) == {"good": "pass", "legacy": "fail"}
    assert report["summary"] == {"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}
    assert all(r["policy"] == "workers" for r in report["results"])


def test_nothing_is_written_again_when_nothing_changed() -> None:
    api, world = served(FakeApi()), a_world()
    auditor = make(api, world)
    flush(auditor, world)
    before = len(writes(api))
    auditor.resync()  # a resync compares everything, and finds it equal
    flush(auditor, world)
    assert len(writes(api)) == before == 1


def test_an_edit_and_a_deletion_follow_the_workloads() -> None:
    api, world = served(FakeApi()), a_world()
    auditor = make(api, world)
    flush(auditor, world)
    world.put(objects.deployment("legacy", grace=40, pre_stop=5))
    flush(auditor, world)
    assert outcomes(stored(api)[NAME]) == {"good": "pass", "legacy": "pass"}
    world.delete("Deployment", "legacy")
    flush(auditor, world)
    assert outcomes(stored(api)[NAME]) == {"good": "pass"}
    world.delete("Deployment", "good")
    flush(auditor, world)
    assert stored(api) == {}, "a namespace without opted-in workloads keeps no report"


def test_a_restart_rewrites_nothing_and_keeps_the_timestamps() -> None:
    api, world = served(FakeApi()), a_world()
    flush(make(api, world), world)
    first = stored(api)[NAME]
    count = len(writes(api))
    later = datetime(2030, 1, 2, tzinfo=UTC)
    flush(make(api, world, when=later), world)  # a new process, a day later
    assert len(writes(api)) == count
    world.put(objects.deployment("legacy", grace=40, pre_stop=5))
    restarted = make(api, world, when=later)
    flush(restarted, world)
    stamps = {r["resources"][0]["name"]: r["timestamp"]["seconds"]
              for r in stored(api)[NAME]["results"]}
    assert stamps["good"] == first["results"][0]["timestamp"]["seconds"]
    assert stamps["legacy"] == int(later.timestamp())


def test_without_the_crd_nothing_is_written_and_the_status_still_is() -> None:
    api, world = FakeApi(), a_world()
    report = flush(make(api, world), world)
    assert not report.failed and report.statuses == 1
    assert writes(api) == [] and ("GET", group_path()) in api.calls


def test_the_crd_installed_later_is_noticed_at_the_next_resync() -> None:
    api, world = FakeApi(), a_world()
    auditor = make(api, world)
    flush(auditor, world)
    served(api)
    flush(auditor, world)
    assert stored(api) == {}, "availability is asked once per resync, not per audit"
    auditor.resync()
    flush(auditor, world)
    assert outcomes(stored(api)[NAME]) == {"good": "pass", "legacy": "fail"}


def test_switched_off_nothing_is_asked_or_written() -> None:
    api, world = served(FakeApi()), a_world()
    flush(make(api, world, enabled=False), world)
    assert writes(api) == [] and ("GET", group_path()) not in api.calls


def test_a_follower_writes_no_report() -> None:
    api, world = served(FakeApi()), a_world()
    flush(make(api, world, leader=False), world)
    assert writes(api) == []


def test_a_refused_write_is_said_once_and_holds_nothing_back(
        caplog: pytest.LogCaptureFixture) -> None:
    api, world = served(FakeApi()), a_world()
    api.fail[("PATCH", report_path("team-a"))] = 403
    auditor = make(api, world)
    report = flush(auditor, world)
    assert not report.failed and report.statuses == 1
    world.put(objects.deployment("legacy", grace=40, pre_stop=5))
    flush(auditor, world)
    refusals = [r for r in caplog.records if "not written until the next resync" in r.message]
    assert len(refusals) == 1
    assert len(writes(api)) == 1


def test_a_failed_write_is_retried_with_the_namespace() -> None:
    api, world = served(FakeApi()), a_world()
    api.fail[("PATCH", report_path("team-a"))] = 500
    auditor = make(api, world)
    assert flush(auditor, world).failed
    del api.fail[("PATCH", report_path("team-a"))]
    assert not flush(auditor, world).failed
    assert outcomes(stored(api)[NAME]) == {"good": "pass", "legacy": "fail"}


def test_a_large_namespace_is_spread_over_reports_and_an_edit_rewrites_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_report, "RESULTS_PER_REPORT", 4)
    api, world = served(FakeApi()), World()
    world.put(objects.policy())
    for i in range(20):
        world.put(objects.deployment(f"w{i:02}"))
    auditor = make(api, world)
    flush(auditor, world)
    reports = stored(api)
    assert set(reports) == {f"{NAME}-8-{i}" for i in range(1, 9)}
    names = [r["resources"][0]["name"] for body in reports.values() for r in body["results"]]
    assert sorted(names) == [f"w{i:02}" for i in range(20)]
    before = len(writes(api))
    world.put(objects.deployment("w07", grace=40, pre_stop=5))
    flush(auditor, world)
    assert len(writes(api)) == before + 1
    for i in range(20):
        if i != 7:
            world.delete("Deployment", f"w{i:02}")
    flush(auditor, world)
    assert set(stored(api)) == {NAME}, "shrunk back to one report; the others deleted"
    assert outcomes(stored(api)[NAME]) == {"w07": "pass"}


@pytest.mark.parametrize(("status", "message"), [
    (404, 'namespaces "team-a" not found'),
    (403, 'policyreports "graceful-operator" is forbidden: unable to create new content in'
          ' namespace team-a because it is being terminated'),
])
def test_a_namespace_on_its_way_out_is_no_failure_and_no_refusal(
        status: int, message: str, caplog: pytest.LogCaptureFixture) -> None:
    api, world = served(FakeApi()), a_world()

    async def refuse(method: str, path: str, **kwargs: Any) -> Any:
        if method == "PATCH" and "/policyreports/" in path:
            api.calls.append((method, path))
            raise ApiError(status, message)
        return await original(method, path, **kwargs)

    original = api.request
    api.request = refuse  # type: ignore[method-assign]
    auditor = make(api, world)
    assert not flush(auditor, world).failed
    assert auditor.reports is not None and not auditor.reports.refused
    assert "not written until the next resync" not in caplog.text
    api.request = original  # type: ignore[method-assign]
    world.put(objects.deployment("legacy", grace=40, pre_stop=5))
    flush(auditor, world)
    assert outcomes(stored(api)[NAME]) == {"good": "pass", "legacy": "pass"}
