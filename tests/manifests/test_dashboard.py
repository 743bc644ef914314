"""The Grafana dashboard names only metrics the code exports, charts every family the webhook
and the operator export, and is a loadable dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from graceful.operator.metrics import Metrics as OperatorMetrics
from graceful.webhook.cache import PolicyCache
from graceful.webhook.metrics import Metrics as WebhookMetrics
from tests.manifests.conftest import ROOT

DASHBOARD = ROOT / "charts" / "graceful-operator" / "dashboards" / "graceful-operator.json"
METRIC = re.compile(r"\bgraceful_[a-z0-9_]+\b")


def families(exposition: bytes) -> list[Metric]:
    """The metric families of one /metrics page, less prometheus_client's ``_created``
    timestamps: the parser reads each as a family of its own, and no panel charts when a
    counter was created."""
    parsed = list(text_string_to_metric_families(exposition.decode()))
    names = {family.name for family in parsed}
    return [f for f in parsed
            if not (f.name.endswith("_created") and f.name.removesuffix("_created") in names)]


def webhook_families() -> list[Metric]:
    """The webhook's /metrics, with one admission observed so its labelled families show."""
    metrics = WebhookMetrics(PolicyCache.of([]))
    metrics.observe("Deployment", "CREATE", "mutated", 0.001)
    return families(metrics.exposition())


def operator_families() -> list[Metric]:
    """The operator's /metrics, with each labelled family touched once: a labelled family
    with no children shows no sample, so nothing the dashboard names could match it."""
    metrics = OperatorMetrics()
    metrics.events.labels("Warning").inc()
    metrics.watch_restarts.labels("Deployment").inc()
    metrics.workloads.labels("mismatched").set(1)
    metrics.findings.labels("X").set(1)
    metrics.audit_seconds.observe(0.1)
    metrics.policy_report_writes.labels("apply").inc()
    return families(metrics.text())


def exported() -> set[str]:
    """Every sample name the webhook's and the operator's /metrics show (``_total``,
    ``_bucket``... included)."""
    return {sample.name for family in webhook_families() + operator_families()
            for sample in family.samples}


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
    names = exported()
    for family in ("graceful_webhook_admission_requests_total",
                   "graceful_webhook_admission_duration_seconds_bucket",
                   "graceful_webhook_policy_cache_ready", "graceful_webhook_policies",
                   "graceful_operator_audits_total",
                   "graceful_operator_audit_duration_seconds_bucket",
                   "graceful_operator_workloads", "graceful_operator_findings",
                   "graceful_operator_events_posted_total",
                   "graceful_operator_status_writes_total",
                   "graceful_operator_watch_restarts_total",
                   "graceful_operator_certificate_checks_total",
                   "graceful_operator_policy_report_writes_total"):
        assert family in names and family in text, family


def test_a_new_family_needs_a_panel() -> None:
    """Whatever family either Metrics class exports, some expression charts one of its
    samples: a counter added to the code and not to the dashboard is one nobody watches.
    A labelled family not touched in ``webhook_families``/``operator_families`` shows no
    sample and fails here too."""
    dashboard = json.loads(DASHBOARD.read_text())
    named = {m for expr in expressions(dashboard) for m in METRIC.findall(expr)}
    exports = {"webhook": webhook_families(), "operator": operator_families()}
    for component, found in exports.items():
        assert found, component
        missing = [f.name for f in found if not any(s.name in named for s in f.samples)]
        assert not missing, f"{component} families on no panel: {missing}"


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
