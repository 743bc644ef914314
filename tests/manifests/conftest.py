"""The install manifests as parsed objects, for the pure tests and the e2e tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAY = ROOT / "overlays" / "cert-manager"
NAMESPACE = "graceful-system"
PART_OF = "graceful-operator"


def manifest_files() -> list[Path]:
    return sorted(MANIFESTS.glob("*.yaml"))


def objects(paths: list[Path] | None = None) -> list[dict[str, Any]]:
    found = []
    for path in paths or manifest_files():
        found.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return found


def by_kind(kind: str, objs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [o for o in (objs if objs is not None else objects()) if o["kind"] == kind]


def one(kind: str, name: str, objs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    (found,) = [o for o in by_kind(kind, objs) if o["metadata"]["name"] == name]
    return found


def pod_spec(deployment: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def containers(deployment: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(deployment)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True
