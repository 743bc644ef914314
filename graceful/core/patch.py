"""RFC 6902 JSON Patch operations that are safe on any valid object.

Why a builder instead of a diff: the API server applies the webhook's patch
to the object as admitted, and ``replace`` on a path that does not exist fails
the whole admission. The builder walks a private copy of the object, emits
``add`` of the first missing parent (with the rest nested inside it) and
``replace`` only where the value is already there, and applies each operation
to its copy so that later operations see earlier ones. Keys are escaped as RFC
6901 requires (``~`` → ``~0``, ``/`` → ``~1``), so an annotation such as
``graceful.io/policy`` is one path segment, not two.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def escape(segment: str | int) -> str:
    """One RFC 6901 reference token."""
    text = str(segment)
    if "~" in text or "/" in text:
        return text.replace("~", "~0").replace("/", "~1")
    return text


@dataclass(frozen=True)
class Pointer:
    """A JSON pointer held as its unescaped parts."""

    parts: tuple[str | int, ...] = ()

    def __truediv__(self, part: str | int) -> Pointer:
        return Pointer((*self.parts, part))

    def join(self, other: Pointer) -> Pointer:
        """This pointer followed by ``other``."""
        return Pointer((*self.parts, *other.parts))

    def __str__(self) -> str:
        return text_of(self.parts)


def text_of(parts: tuple[str | int, ...]) -> str:
    """The pointer made of ``parts``, as text (``str(Pointer(parts))`` without the Pointer)."""
    if not parts:
        return ""
    # ``escape`` called only where a part needs it: most are plain keys.
    return "/" + "/".join([part if type(part) is str and "~" not in part and "/" not in part
                           else escape(part) for part in parts])


class PatchBuilder:
    """Collects operations and keeps a copy of the object with them applied."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        # Copy-on-write: containers are copied only on the paths ``set`` walks,
        # so a 50 KB object costs a few shallow copies instead of a deep copy.
        self.doc: dict[str, Any] = dict(obj)
        self._own: set[int] = {id(self.doc)}
        self.ops: list[dict[str, Any]] = []
        # The nodes the last ``set`` walked through (ours, the root first) and the parts
        # leading to them: the next ``set`` resumes from the deepest one it shares, so
        # the operations of one container cost one walk from the root, not one each.
        self._trail: list[Any] = [self.doc]
        self._trail_parts: tuple[str | int, ...] = ()

    def set(self, pointer: Pointer, value: Any) -> None:
        """Make ``pointer`` hold ``value``: ``add`` the first missing parent, else ``replace``.

        Each container walked through that is not ours yet is replaced first by a
        shallow copy of it (copy-on-write): the caller's object keeps every
        original alive while the builder exists, so an id in ``_own`` always
        names one of our copies. A node on the trail is never replaced while it
        is there: every write is below the trail's last node, and the trail is
        cut back to the written node's parent.
        """
        parts = pointer.parts
        last = len(parts) - 1
        known = self._trail_parts
        trail = self._trail
        start = 0
        shared = min(len(known), last)
        while (start < shared and parts[start] == known[start]
               and type(parts[start]) is type(known[start])):
            start += 1
        del trail[start + 1:]
        node: Any = trail[start]
        own = self._own
        try:
            for depth in range(start, last + 1):
                part = parts[depth]
                key: str | int
                if isinstance(node, list):
                    if not isinstance(part, int) or not 0 <= part < len(node):
                        raise ValueError(f"{pointer}: no element {part}")
                    key = part
                elif isinstance(node, dict):
                    key = str(part)
                    if node.get(key) is None:
                        nested = _nest(parts[depth + 1:], value)
                        self._emit("add", parts[: depth + 1], nested)
                        # not copied: not in ``_own``, so a later ``set`` below it copies it
                        node[key] = nested
                        return
                else:
                    raise ValueError(f"{pointer}: parent is not an object")
                child = node[key]
                if depth == last:
                    if child != value:
                        self._emit("replace", parts, value)
                        node[key] = _copy(value)
                    return
                if isinstance(child, (dict, list)) and id(child) not in own:
                    child = dict(child) if isinstance(child, dict) else list(child)
                    node[key] = child
                    own.add(id(child))
                node = child
                trail.append(child)
        finally:
            self._trail_parts = parts[: len(trail) - 1]

    def _emit(self, op: str, parts: tuple[str | int, ...], value: Any) -> None:
        self.ops.append({"op": op, "path": text_of(parts), "value": _copy(value)})


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    """``copy.deepcopy`` of a JSON value, several times faster (other values: deepcopy)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    # Scalars are kept inline: a call per leaf was most of the cost.
    if kind is dict:
        return {key: item if type(item) in _SCALARS else _copy(item)
                for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else _copy(item) for item in value]
    return copy.deepcopy(value)


def _nest(parts: tuple[str | int, ...], value: Any) -> Any:
    for part in reversed(parts):
        value = {str(part): value}
    return value
