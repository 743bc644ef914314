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
        return "".join(["/" + escape(part) for part in self.parts])


class PatchBuilder:
    """Collects operations and keeps a copy of the object with them applied."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        # Copy-on-write: containers are copied only on the paths ``set`` walks,
        # so a 50 KB object costs a few shallow copies instead of a deep copy.
        self.doc: dict[str, Any] = dict(obj)
        self._own: set[int] = {id(self.doc)}
        self.ops: list[dict[str, Any]] = []

    def _child(self, node: dict[str, Any] | list[Any], part: Any) -> Any:
        """``node[part]``, replaced first by a shallow copy of it if it is a container not ours.

        The caller's object keeps every original alive while the builder
        exists, so an id in ``_own`` always names one of our copies.
        """
        child = node[part]
        if isinstance(child, dict | list) and id(child) not in self._own:
            child = dict(child) if isinstance(child, dict) else list(child)
            node[part] = child
            self._own.add(id(child))
        return child

    def set(self, pointer: Pointer, value: Any) -> None:
        """Make ``pointer`` hold ``value``: ``add`` the first missing parent, else ``replace``."""
        node: Any = self.doc
        parts = pointer.parts
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not isinstance(part, int) or not 0 <= part < len(node):
                    raise ValueError(f"{pointer}: no element {part}")
                if last:
                    if node[part] != value:
                        self._emit("replace", parts, value)
                        node[part] = _copy(value)
                    return
                node = self._child(node, part)
                continue
            if not isinstance(node, dict):
                raise ValueError(f"{pointer}: parent is not an object")
            key = str(part)
            if key not in node or node[key] is None:
                nested = _nest(parts[depth + 1:], value)
                self._emit("add", parts[: depth + 1], nested)
                # not copied: not in ``_own``, so a later ``set`` below it copies it first
                node[key] = nested
                return
            if last:
                if node[key] != value:
                    self._emit("replace", parts, value)
                    node[key] = _copy(value)
                return
            node = self._child(node, key)

    def _emit(self, op: str, parts: tuple[str | int, ...], value: Any) -> None:
        self.ops.append({"op": op, "path": str(Pointer(parts)), "value": _copy(value)})


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    """``copy.deepcopy`` of a JSON value, several times faster (other values: deepcopy)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind is list:
        return [_copy(item) for item in value]
    return copy.deepcopy(value)


def _nest(parts: tuple[str | int, ...], value: Any) -> Any:
    for part in reversed(parts):
        value = {str(part): value}
    return value
