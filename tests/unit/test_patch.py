from __future__ import annotations

import jsonpatch
import pytest

from graceful.core.patch import PatchBuilder, Pointer, escape


def test_escape_follows_rfc6901() -> None:
    assert escape("graceful.io/policy") == "graceful.io~1policy"
    assert escape("a~b/c") == "a~0b~1c"
    assert str(Pointer(("metadata", "annotations", "graceful.io/x~y"))) == (
        "/metadata/annotations/graceful.io~1x~0y")


def test_missing_parents_are_added_whole() -> None:
    obj = {"spec": {"containers": [{"name": "a"}]}}
    builder = PatchBuilder(obj)
    builder.set(Pointer(("spec", "containers", 0, "lifecycle", "preStop")), {"sleep": {}})
    assert builder.ops == [{"op": "add", "path": "/spec/containers/0/lifecycle",
                            "value": {"preStop": {"sleep": {}}}}]
    assert jsonpatch.apply_patch(obj, builder.ops) == builder.doc


def test_existing_values_are_replaced_and_equal_ones_skipped() -> None:
    obj = {"spec": {"x": 1, "y": 2, "z": None}}
    builder = PatchBuilder(obj)
    builder.set(Pointer(("spec", "x")), 5)
    builder.set(Pointer(("spec", "y")), 2)
    builder.set(Pointer(("spec", "z")), 3)
    assert builder.ops == [{"op": "replace", "path": "/spec/x", "value": 5},
                           {"op": "add", "path": "/spec/z", "value": 3}]
    assert jsonpatch.apply_patch(obj, builder.ops) == {"spec": {"x": 5, "y": 2, "z": 3}}


def test_later_operations_see_earlier_ones() -> None:
    obj: dict[str, object] = {"metadata": {}}
    builder = PatchBuilder(obj)
    builder.set(Pointer(("metadata", "annotations", "graceful.io/a")), "1")
    builder.set(Pointer(("metadata", "annotations", "graceful.io/b")), "2")
    assert [op["op"] for op in builder.ops] == ["add", "add"]
    assert builder.ops[1]["path"] == "/metadata/annotations/graceful.io~1b"
    assert jsonpatch.apply_patch(obj, builder.ops) == builder.doc
    assert obj == {"metadata": {}}, "the input is never modified"


def test_list_elements_are_replaced_in_place() -> None:
    obj = {"command": ["sleep", "2"]}
    builder = PatchBuilder(obj)
    builder.set(Pointer(("command", 1)), "5")
    assert builder.ops == [{"op": "replace", "path": "/command/1", "value": "5"}]
    with pytest.raises(ValueError):
        builder.set(Pointer(("command", 7)), "5")
