"""The CRD and the pydantic models describe the same API.

Both schemas are reduced to the same normal form (types, properties, required
fields, defaults, bounds, enums, patterns) and compared whole, so a field,
default or bound added on one side only fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from graceful.core import names
from graceful.core.policy import (
    MESSAGES,
    ClusterPolicySpec,
    ClusterPolicyStatus,
    PolicySpec,
    PolicyStatus,
)

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "gracefulpolicy.yaml"
_KEPT = ("type", "default", "minimum", "maximum", "minLength", "maxLength", "maxItems",
         "maxProperties", "enum", "pattern")
_EMPTY: tuple[Any, ...] = ([], {}, None)


def load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return crd


def crd_version() -> dict[str, Any]:
    version: dict[str, Any]
    (version,) = load_crd()["spec"]["versions"]
    return version


def _normal_crd(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: node[k] for k in _KEPT if k in node}
    if "properties" in node:
        out["properties"] = {k: _normal_crd(v) for k, v in node["properties"].items()}
        out["required"] = sorted(node.get("required", []))
    if "items" in node:
        out["items"] = _normal_crd(node["items"])
    if "additionalProperties" in node:
        out["additionalProperties"] = _normal_crd(node["additionalProperties"])
    return out


def _normal_model(node: dict[str, Any], defs: dict[str, Any],
                  zero_defaults: bool) -> dict[str, Any]:
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items()
                                                          if k != "$ref"}}
    if "anyOf" in node:  # Optional[X]: the null branch is "field absent" in the CRD
        (branch,) = [b for b in node["anyOf"] if b.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**(defs[branch["$ref"].rsplit("/", 1)[1]] if "$ref" in branch else branch), **rest}
    out = {k: node[k] for k in _KEPT if k in node}
    if isinstance(out.get("default"), dict):  # an empty list inside a default is "absent"
        out["default"] = {k: v for k, v in out["default"].items() if v not in _EMPTY}
    if out.get("default", 0) in _EMPTY or (zero_defaults and out.get("default") in (0, "")):
        out.pop("default", None)
    if "properties" in node:
        out["properties"] = {k: _normal_model(v, defs, zero_defaults)
                             for k, v in node["properties"].items()}
        out["required"] = sorted(node.get("required", []))
    if "items" in node:
        out["items"] = _normal_model(node["items"], defs, zero_defaults)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _normal_model(node["additionalProperties"], defs,
                                                    zero_defaults)
    return out


def model_schema(model: type[PolicySpec] | type[PolicyStatus],
                 zero_defaults: bool) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return _normal_model(schema, schema.get("$defs", {}), zero_defaults)


def test_names_match_the_design_contract() -> None:
    crd = load_crd()
    assert crd["metadata"]["name"] == f"{names.PLURAL}.{names.GROUP}"
    spec = crd["spec"]
    assert spec["group"] == names.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == names.KIND
    assert spec["names"]["plural"] == names.PLURAL
    assert spec["names"]["singular"] == names.SINGULAR
    assert spec["names"]["shortNames"] == [names.SHORT_NAME]
    version = crd_version()
    assert version["name"] == names.VERSION
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns_are_exactly_the_contract() -> None:
    columns = [(c["name"], c["jsonPath"]) for c in crd_version()["additionalPrinterColumns"]]
    assert columns == [
        ("MODE", ".spec.mode"),
        ("TIMEOUT", ".spec.gracefulTimeoutSeconds"),
        ("GRACE", ".status.gracePeriodSeconds"),
        ("MATCHED", ".status.matched"),
        ("COMPLIANT", ".status.compliant"),
        ("MISMATCHED", ".status.mismatched"),
        ("AGE", ".metadata.creationTimestamp"),
    ]


def test_spec_schema_equals_the_model() -> None:
    crd = _normal_crd(crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"])
    crd.pop("default")  # the root default is compared in test_spec_default_is_the_model_default
    assert crd == model_schema(PolicySpec, zero_defaults=False)


def test_status_schema_equals_the_model() -> None:
    crd = _normal_crd(crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"])
    assert crd == model_schema(PolicyStatus, zero_defaults=True)


def test_spec_default_is_the_model_default() -> None:
    spec = crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["default"] == PolicySpec().model_dump(by_alias=True, exclude_none=True,
                                                      exclude_defaults=False,
                                                      exclude={"containers": True,
                                                               "proxy_containers": True,
                                                               "drain": {"platform_limits"}})


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for key, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _walk(node[key], f"{path}[]")
    return found


def test_every_number_string_and_list_is_bounded() -> None:
    """The API server's CEL cost estimate needs a bound on every size."""
    root = crd_version()["schema"]["openAPIV3Schema"]
    for path, node in _walk(root["properties"]["spec"], "spec") + _walk(
            root["properties"]["status"], "status"):
        kind = node.get("type")
        if kind == "integer":
            assert "minimum" in node, path
            assert "maximum" in node or node.get("format") == "int64", path
        elif kind == "string":
            assert "maxLength" in node or "enum" in node, path
        elif kind == "array":
            assert "maxItems" in node, path
        elif kind == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, path


def test_cel_messages_are_the_model_messages() -> None:
    rules = [r for _, node in _walk(crd_version()["schema"]["openAPIV3Schema"])
             for r in node.get("x-kubernetes-validations", [])]
    assert sorted(r["message"] for r in rules) == sorted(MESSAGES.values())


@pytest.mark.parametrize("field", ["spec", "status"])
def test_top_level_fields_exist(field: str) -> None:
    assert field in crd_version()["schema"]["openAPIV3Schema"]["properties"]


# -- ClusterGracefulPolicy ------------------------------------------------------

CLUSTER_CRD_PATH = CRD_PATH.parent / "clustergracefulpolicy.yaml"


def cluster_version() -> dict[str, Any]:
    version: dict[str, Any]
    (version,) = yaml.safe_load(CLUSTER_CRD_PATH.read_text())["spec"]["versions"]
    return version


def test_cluster_names_match_the_design_contract() -> None:
    crd = yaml.safe_load(CLUSTER_CRD_PATH.read_text())
    assert crd["metadata"]["name"] == f"{names.CLUSTER_PLURAL}.{names.GROUP}"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["kind"] == names.CLUSTER_KIND
    assert crd["spec"]["names"]["shortNames"] == [names.CLUSTER_SHORT_NAME]
    assert cluster_version()["additionalPrinterColumns"] == crd_version()[
        "additionalPrinterColumns"]


def test_cluster_spec_and_status_schemas_equal_the_models() -> None:
    schema = cluster_version()["schema"]["openAPIV3Schema"]["properties"]
    assert _normal_crd(schema["spec"]) == model_schema(ClusterPolicySpec, zero_defaults=False)
    assert _normal_crd(schema["status"]) == model_schema(ClusterPolicyStatus, zero_defaults=True)
