"""admit.apply_patch: copy-on-write along the patched paths, same answers as jsonpatch.

Why it exists: jsonpatch deep-copies the whole object before applying, 0.8 ms
for a 50 KB Deployment on every review; apply_patch copies only the containers
on each operation's paths. It must agree with jsonpatch on every result and
every error, and must never modify the caller's object or patch.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer
from hypothesis import given, settings
from hypothesis import strategies as st

from graceful.webhook.admit import apply_patch

_KEYS = st.sampled_from(["a", "b", "c", "spec", "0", "~", "/", ""])
_SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["x", "sleep"])
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=12,
)


def _pointers(doc: Any) -> list[str]:
    """Every pointer into ``doc``, plus some that point just past or nowhere."""
    found = [""]

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            items: list[tuple[str, Any]] = [(str(k), v) for k, v in node.items()]
            found.append(prefix + "/zz")
        elif isinstance(node, list):
            items = [(str(i), v) for i, v in enumerate(node)]
            found.extend([prefix + f"/{len(node)}", prefix + "/-", prefix + "/99"])
        else:
            return
        for key, value in items:
            path = prefix + "/" + key.replace("~", "~0").replace("/", "~1")
            found.append(path)
            walk(value, path)

    walk(doc, "")
    found.append("/no/such/path")
    return found


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    doc = draw(_DOCS)
    pointers = _pointers(doc)
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["add", "replace", "remove", "test", "move", "copy"]))
        entry: dict[str, Any] = {"op": op, "path": draw(st.sampled_from(pointers))}
        if op in ("add", "replace", "test"):
            entry["value"] = draw(_DOCS)
        if op in ("move", "copy"):
            entry["from"] = draw(st.sampled_from(pointers))
        ops.append(entry)
    return doc, ops


def _outcome(fn: Any, doc: Any, patch: list[dict[str, Any]]) -> tuple[str, Any]:
    try:
        return "ok", fn(doc, patch)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        return type(exc).__name__, None


@settings(max_examples=3000, deadline=None)
@given(_cases())
def test_same_result_and_errors_as_jsonpatch(case: tuple[Any, list[dict[str, Any]]]) -> None:
    doc, patch = case
    doc_before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    ours = _outcome(apply_patch, doc, patch)
    assert doc == doc_before and patch == patch_before  # the caller's objects are untouched
    theirs = _outcome(jsonpatch.apply_patch, copy.deepcopy(doc), copy.deepcopy(patch))
    assert ours == theirs


def test_untouched_branches_are_shared_and_touched_ones_copied() -> None:
    doc = {"spec": {"a": [1, 2]}, "status": {"big": list(range(100))}}
    result = apply_patch(doc, [{"op": "add", "path": "/spec/a/-", "value": 3}])
    assert result == {"spec": {"a": [1, 2, 3]}, "status": doc["status"]}
    assert doc["spec"]["a"] == [1, 2]
    assert result["status"] is doc["status"]
