"""kopf_compat: ToggleSet wakes its waiters on a flip of its state only, and only that changed."""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
from collections.abc import Iterable, Iterator

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kubernetes import client as k8s_client

from graceful.operator import kopf_compat
from graceful.operator.handlers import WATCHED_RESOURCES, build_registry
from graceful.operator.lease import LeaseElector
from graceful.operator.main import NoDiffBase, kopf_settings
from graceful.operator.reconciler import Auditor
from graceful.operator.settings import OperatorSettings
from tests.operator.fakes import FakeApi


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """kopf's ToggleSet patched for one test, as it was before afterwards."""
    for name in ("make_toggle", "drop_toggle", "drop_toggles"):
        monkeypatch.setattr(aiotoggles.ToggleSet, name, aiotoggles.ToggleSet.__dict__[name])
    monkeypatch.setattr(aiotoggles.ToggleSet, kopf_compat._MARK, False, raising=False)
    monkeypatch.setattr(aiotoggles.ToggleSet, "_graceful_toggle_class", None, raising=False)
    assert kopf_compat.patch_toggle_sets() is True
    assert aiotoggles.ToggleSet.make_toggle is kopf_compat._make_toggle
    yield


async def _settles() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_installed_kopf_has_the_shape_the_shim_expects() -> None:
    # If this fails, kopf changed: re-read aiotoggles.py and adapt or drop the shim.
    assert kopf_compat._shape_problem(aiotoggles) is None


def test_patching_twice_is_harmless(patched: None) -> None:
    assert kopf_compat.patch_toggle_sets() is True
    assert aiotoggles.ToggleSet.drop_toggle is kopf_compat._drop_toggle


@pytest.mark.usefixtures("patched")
def test_an_all_set_wakes_its_waiters_when_it_flips_either_way() -> None:
    async def scenario() -> None:
        toggles = aiotoggles.ToggleSet(all)
        first = await toggles.make_toggle(name="first")
        second = await toggles.make_toggle(name="second")
        on = asyncio.create_task(toggles.wait_for(True))
        await _settles()
        await toggles.drop_toggle(first)
        await _settles()
        assert not on.done()  # one toggle is still off
        await second.turn_to(True)  # a toggle turned on still wakes the set's waiters
        await asyncio.wait_for(on, 1)
        assert toggles.is_on()

        off = asyncio.create_task(toggles.wait_for(False))
        await _settles()
        assert not off.done()
        third = await toggles.make_toggle(False, name="third")  # a new off toggle: all -> off
        await asyncio.wait_for(off, 1)

        on_again = asyncio.create_task(toggles.wait_for(True))
        await _settles()
        await toggles.drop_toggles([third])
        await asyncio.wait_for(on_again, 1)
        assert len(toggles) == 1 and second in toggles

    asyncio.run(scenario())


@pytest.mark.usefixtures("patched")
def test_an_any_set_wakes_its_waiters_when_it_flips_either_way() -> None:
    async def scenario() -> None:
        toggles = aiotoggles.ToggleSet(any)
        assert toggles.is_off()
        on = asyncio.create_task(toggles.wait_for(True))
        await _settles()
        quiet = await toggles.make_toggle(False, name="quiet")
        await _settles()
        assert not on.done()
        loud = await toggles.make_toggle(True, name="loud")
        await asyncio.wait_for(on, 1)

        off = asyncio.create_task(toggles.wait_for(False))
        await _settles()
        await toggles.drop_toggle(quiet)
        await _settles()
        assert not off.done()  # "loud" is still on
        await toggles.drop_toggle(loud)
        await asyncio.wait_for(off, 1)

    asyncio.run(scenario())


@pytest.mark.usefixtures("patched")
def test_a_waiter_of_one_toggle_of_a_set_still_wakes_on_that_toggle() -> None:
    async def scenario() -> None:
        toggles = aiotoggles.ToggleSet(any)
        toggle = await toggles.make_toggle(False)
        waiter = asyncio.create_task(toggle.wait_for(True))
        await _settles()
        await toggles.make_toggle(False)
        await _settles()
        assert not waiter.done()
        await toggle.turn_to(True)
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


@pytest.mark.usefixtures("patched")
def test_indexing_20000_objects_wakes_each_waiter_once() -> None:
    """kopf's start-up pattern: a toggle per object, then the object's worker waits for all.

    Unpatched, every make and drop wakes every waiting worker, which re-checks
    the set's state: 20,000 objects cost about 2 * 10^8 checks (2,000 cost 2 * 10^6
    and 17 s here).
    Patched, the checks are a few per object. Counted rather than timed: the
    wall time of 20,000 asyncio tasks on a shared machine is not a test.
    """
    count = 20_000
    checks = 0

    def counted_all(states: Iterable[bool]) -> bool:
        nonlocal checks
        checks += 1
        return all(states)

    async def scenario() -> None:
        indexed = aiotoggles.ToggleSet(counted_all)
        blocker = await indexed.make_toggle(name="orchestration blocker")
        woken = 0

        async def worker(toggle: aiotoggles.Toggle) -> None:
            nonlocal woken
            await indexed.drop_toggle(toggle)
            await indexed.wait_for(True)
            woken += 1

        workers = []
        for number in range(count):
            toggle = await indexed.make_toggle(name=f"object {number}")
            workers.append(asyncio.create_task(worker(toggle)))
            await asyncio.sleep(0)  # kopf's watcher yields between objects; workers start
        await _settles()
        assert woken == 0 and indexed.is_off()
        await indexed.drop_toggle(blocker)
        await asyncio.wait_for(asyncio.gather(*workers), 60)
        assert woken == count and len(indexed) == 0

    asyncio.run(scenario())
    assert checks < 10 * count


def test_a_changed_kopf_is_left_alone_and_logged_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    class ToggleSet:  # a kopf that rewrote the class
        async def make_toggle(self) -> None: ...

    class Toggle:
        pass

    changed = types.SimpleNamespace(__name__="kopf._cogs.aiokits.aiotoggles",
                                    ToggleSet=ToggleSet, Toggle=Toggle)
    monkeypatch.setattr(kopf_compat, "_warned", [])
    with caplog.at_level(logging.WARNING, logger=kopf_compat.__name__):
        assert kopf_compat.patch_toggle_sets(changed) is False
        assert kopf_compat.patch_toggle_sets(changed) is False
    assert ToggleSet.__dict__["make_toggle"] is not kopf_compat._make_toggle
    assert not hasattr(ToggleSet, "drop_toggle")
    warnings = [r for r in caplog.records if "not patched" in r.getMessage()]
    assert len(warnings) == 1


def _registry() -> kopf.OperatorRegistry:
    api = FakeApi()
    auditor = Auditor(settings=OperatorSettings(identity="r"), api=api)
    elector = LeaseElector(api, namespace="graceful-system", identity="r")
    return build_registry(auditor, elector, api, k8s_client.Configuration())  # type: ignore[arg-type]


def test_no_handler_runs_in_kopfs_thread_pool() -> None:
    registry = _registry()
    handlers = [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
    assert {h.id for h in handlers} == {"policies", "workloads", "pods", "replicasets",
                                        "mark-dirty"}
    for handler in handlers:
        assert inspect.iscoroutinefunction(handler.fn), handler.id


def test_no_handler_needs_a_diff_base_or_writes_to_the_watched_objects() -> None:
    # NoDiffBase and "the operator never annotates a workload" both rest on this.
    registry = _registry()
    for group, version, plural in WATCHED_RESOURCES:
        resource = kopf.Resource(group, version, plural)
        assert not registry._changing.has_handlers(resource=resource), plural
        assert not registry._spawning.has_handlers(resource=resource), plural


def test_the_diff_base_is_nothing_and_refuses_to_be_stored() -> None:
    storage = kopf_settings().persistence.diffbase_storage
    assert isinstance(storage, NoDiffBase)
    body = kopf.Body({"metadata": {"name": "big", "annotations": {"a": "b" * 10_000}},
                      "spec": {"template": {}}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
    with pytest.raises(RuntimeError, match="change handler"):
        storage.store(body=body, patch=kopf.Patch(), essence=kopf.BodyEssence())


def test_initial_listings_are_paged() -> None:
    assert kopf_settings().watching.chunk_size == 500
