"""Compatibility shims for the installed kopf, applied once when the operator starts.

``ToggleSet`` wake-ups (kopf 1.45, ``kopf/_cogs/aiokits/aiotoggles.py``)
-----------------------------------------------------------------------
While an operator has ``@kopf.index`` handlers, kopf keeps one
``ToggleSet(all)`` ("operator indexed"): the watcher of each resource kind
adds a toggle for every new object (``queueing.watcher``), the object's worker
drops it once the object is indexed and then waits on the set until every
object of every kind is indexed (``processing.process_resource_event``). kopf's
``make_toggle``/``drop_toggle``/``drop_toggles`` call ``notify_all()`` on the
set's condition on *every* change, waking every waiting worker just for it to
re-check the aggregate and go back to sleep: N objects cost N^2 wake-ups. At
10,000 Deployments plus their 10,000 ReplicaSets the operator spent minutes
(80% of its CPU, measured with py-spy) in those wake-ups and wrote no status
within 300 s.

The shim replaces those three methods with ones that notify only when the
set's aggregate state (``is_on()``) flips. That is all a waiter of the set can
observe: ``ToggleSet.wait_for`` waits for the aggregate, and a waiter of one
toggle (``Toggle.wait_for``) depends only on that toggle's own state, which
adding or dropping toggles does not change (``Toggle.turn_to`` still wakes
everyone, as before). Everything else of kopf is left as it is.

Guarded: the shim is applied only when ``ToggleSet`` still has the shape it
was written against (its methods are kopf's own, the set keeps its toggles in
``_toggles`` and shares ``_condition`` with them). Otherwise it does nothing
and logs once, and the operator runs on kopf as installed (correct, only slow
at scale). Remove it when kopf's own ToggleSet notifies only on a flip.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

_MARK = "_graceful_notify_on_flip"
_METHODS = ("make_toggle", "drop_toggle", "drop_toggles")
_warned: list[str] = []  # the problem, once logged


def _shape_problem(module: Any) -> str | None:
    """Why ``module.ToggleSet`` is not what the shim was written for; None if it is."""
    toggle_set = getattr(module, "ToggleSet", None)
    toggle = getattr(module, "Toggle", None)
    if not isinstance(toggle_set, type) or not isinstance(toggle, type):
        return "no ToggleSet/Toggle classes"
    for name in (*_METHODS, "wait_for"):
        method = toggle_set.__dict__.get(name)
        if not inspect.iscoroutinefunction(method):
            return f"ToggleSet.{name} is not a coroutine function of the class"
        if getattr(method, "__module__", None) != module.__name__:
            return f"ToggleSet.{name} is not kopf's own"
    if not callable(toggle_set.__dict__.get("is_on")):
        return "ToggleSet.is_on is missing"
    if "condition" not in inspect.signature(toggle).parameters:
        return "Toggle() takes no shared condition"
    try:
        probe = toggle_set(all)
    except Exception as exc:  # an unexpected constructor: leave kopf alone
        return f"ToggleSet(all) failed: {exc!r}"
    if not isinstance(getattr(probe, "_condition", None), asyncio.Condition):
        return "ToggleSet has no _condition"
    if not isinstance(getattr(probe, "_toggles", None), set):
        return "ToggleSet keeps no _toggles set"
    return None


async def _make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
    toggle = self._graceful_toggle_class(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: Any, toggle: Any) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggles(self: Any, toggles: Iterable[Any]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


def patch_toggle_sets(module: Any = None) -> bool:
    """Make ``ToggleSet`` notify its waiters only on a flip; True if it does (now or already).

    ``module`` is kopf's ``aiotoggles`` (a stand-in in tests).
    """
    if module is None:
        try:
            module = importlib.import_module("kopf._cogs.aiokits.aiotoggles")
        except ImportError as exc:
            problem: str | None = f"cannot import kopf._cogs.aiokits.aiotoggles: {exc}"
    if module is not None:
        if getattr(getattr(module, "ToggleSet", None), _MARK, False):
            return True
        problem = _shape_problem(module)
    if problem is not None:
        if not _warned:
            _warned.append(problem)
            logger.warning("kopf's ToggleSet is not patched (%s): the operator works but its "
                           "start-up is quadratic in the number of watched objects", problem)
        return False
    toggle_set = module.ToggleSet
    toggle_set.make_toggle = _make_toggle
    toggle_set.drop_toggle = _drop_toggle
    toggle_set.drop_toggles = _drop_toggles
    toggle_set._graceful_toggle_class = module.Toggle
    setattr(toggle_set, _MARK, True)
    logger.debug("kopf's ToggleSet patched to notify only when its state flips")
    return True


def apply() -> None:
    """Every shim of this module (called once, before ``kopf.run``)."""
    patch_toggle_sets()
