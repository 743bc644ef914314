"""The auditor's timers on fake loop time (looptime): batching deadlines and the resync.

Nothing here sleeps for real: ``looptime`` moves the loop's clock forward
whenever every task waits, so "one minute later" takes no time and the
assertions are about exact loop times, not about a slow machine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import looptime

from graceful.operator.reconciler import Auditor
from graceful.operator.settings import OperatorSettings
from tests.operator import objects
from tests.operator.fakes import FakeApi
from tests.operator.test_reconciler import World


def on_fake_time(scenario: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    loop = looptime.new_event_loop(start=100)
    try:
        loop.run_until_complete(scenario(loop))
    finally:
        loop.close()


class TimedApi(FakeApi):
    """Records the loop time of every status write."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.write_times: list[float] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if method == "PATCH":
            self.write_times.append(self.loop.time())
        return await super().request(method, path, **kwargs)


def auditor_on(loop: asyncio.AbstractEventLoop, api: FakeApi, **settings: float) -> Auditor:
    return Auditor(settings=OperatorSettings(identity="r", **settings), api=api,
                   clock=loop.time, wall=lambda: datetime(2030, 1, 1, tzinfo=UTC))


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_a_burst_of_edits_is_one_status_write_by_the_deadline() -> None:
    async def scenario(loop: asyncio.AbstractEventLoop) -> None:
        api, world = TimedApi(loop), World()
        world.put(objects.policy())
        auditor = auditor_on(loop, api, quiet=0.2, max_delay=1.0)
        world.watch(auditor)
        task = asyncio.create_task(auditor.run())
        await until(lambda: bool(api.patches))  # the first audit: an empty policy
        world.apply_status_patches(api)
        started = loop.time()
        for number in range(30):  # one edit every 0.1 s: never quiet for 0.2 s
            world.put(objects.deployment(f"legacy-{number:02d}"))
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        writes = [round(t - started, 2) for t in api.write_times[1:]]
        assert writes[0] == 1.0  # the deadline, although the namespace never went quiet
        assert len(writes) <= 4  # 30 edits in 3 s: one write per deadline, and the last
        assert api.patches[-1][1]["status"]["matched"] == 30
        await stop(task)

    on_fake_time(scenario)


def test_the_resync_repairs_a_status_someone_else_changed() -> None:
    async def scenario(loop: asyncio.AbstractEventLoop) -> None:
        api, world = FakeApi(), World()
        world.put(objects.policy())
        world.put(objects.deployment("legacy"))
        auditor = auditor_on(loop, api, resync_seconds=60)
        world.watch(auditor)
        task = asyncio.create_task(auditor.run())
        await until(lambda: bool(api.patches))
        world.apply_status_patches(api)
        world.bodies[("GracefulPolicy", "workers")]["status"]["mismatched"] = 7
        world.apply_status_patches(api)  # the watch delivers the tampered status
        passes = auditor.passes
        await asyncio.sleep(59)
        assert not api.patches and auditor.passes == passes  # nothing until the resync
        await asyncio.sleep(2)
        assert api.patches[0][1]["status"] == {"mismatched": 1}
        assert auditor.passes == passes + 1
        await stop(task)

    on_fake_time(scenario)
