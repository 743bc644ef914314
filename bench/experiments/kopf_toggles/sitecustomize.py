"""EXPERIMENT for bench/audit_scale.py, not part of the product: kopf's ToggleSet wakes less.

kopf gives every object a toggle in one ``ToggleSet`` while an operator has
``@kopf.index`` handlers, and every object's worker waits on the set's
condition until all objects are indexed. ``make_toggle`` and ``drop_toggle``
call ``notify_all()`` on every change, so N objects cost N^2 wake-ups; at
20,000 objects the operator never gets to its first status. A waiter of the
set waits for the set's aggregate state, so waking it when that state did not
change is useless (a single toggle's waiters are woken by ``Toggle.turn_to``,
which this leaves alone). Here the set notifies only when its state flips.

Use (nothing is patched unless KOPF_TOGGLE_PATCH=1)::

    KOPF_TOGGLE_PATCH=1 PYTHONPATH=bench/experiments/kopf_toggles \\
        .venv/bin/python -m bench.audit_scale --note "kopf ToggleSet patched"

The subprocesses (the operator) inherit the environment, and Python imports
``sitecustomize`` from the path at startup.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

if os.environ.get("KOPF_TOGGLE_PATCH") == "1":
    from kopf._cogs.aiokits import aiotoggles as _toggles

    async def make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
        toggle = _toggles.Toggle(__val, name=name, condition=self._condition)
        async with self._condition:
            before = self.is_on()
            self._toggles.add(toggle)
            if self.is_on() != before:
                self._condition.notify_all()
        return toggle

    async def drop_toggle(self: Any, toggle: Any) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.discard(toggle)
            if self.is_on() != before:
                self._condition.notify_all()

    async def drop_toggles(self: Any, toggles: Iterable[Any]) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.difference_update(toggles)
            if self.is_on() != before:
                self._condition.notify_all()

    _toggles.ToggleSet.make_toggle = make_toggle  # type: ignore[method-assign]
    _toggles.ToggleSet.drop_toggle = drop_toggle  # type: ignore[method-assign]
    _toggles.ToggleSet.drop_toggles = drop_toggles  # type: ignore[method-assign]
