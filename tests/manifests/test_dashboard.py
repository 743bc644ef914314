"""The Grafana dashboard names only metrics the code exports, and is a loadable dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from graceful.webhook.cache import PolicyCache
from graceful.webhook.metrics import Metrics
from tests.manifests.conftest import ROOT

DASHBOARD = ROOT / "charts" / "graceful-operator" / "dashboards" / "graceful-operator.json"
METRIC = re.compile(r"\bgraceful_[a-z0-9_]+\b")


def exported() -> set[str]:
    """Every sample name the webhook's /metrics shows (``_total``, ``_bucket``... included)."""
    metrics = Metrics(PolicyCache.of([]))
    metrics.observe("Deployment", "CREATE", "mutated", 0.001)
    names = set()
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        names.update(sample.name for sample in family.samples)
    return names


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def test_every_metric_the_dashboard_names_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    named = {m for expr in expressions(dashboard) for m in METRIC.findall(expr)}
    assert named, "the dashboard queries nothing"
    assert named <= exported(), sorted(named - exported())


def test_every_exported_family_is_on_the_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    text = " ".join(expressions(dashboard))
    for family in ("graceful_webhook_admission_requests_total",
                   "graceful_webhook_admission_duration_seconds_bucket",
                   "graceful_webhook_policy_cache_ready", "graceful_webhook_policies"):
        assert family in exported() and family in text


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["refId"] for t in panel["targets"])
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "namespace"}


def test_the_dashboard_ships_with_the_chart() -> None:
    ignored = (ROOT / "charts" / "graceful-operator" / ".helmignore").read_text()
    assert "dashboards" not in ignored and "*.json" not in ignored
    assert Path(DASHBOARD).is_file()
