"""The Helm chart, rendered by the pinned helm: lint, values, and no drift from manifests/.

One source of truth: with its default values the chart renders exactly the
objects of ``manifests/`` (and with ``certificates.mode=cert-manager`` those of
``overlays/cert-manager``), except the Namespace, which belongs to whoever
installs the release (``helm install --create-namespace`` or an existing one).
The only differences allowed are Helm's own two labels on ``metadata``: they
are never on a selector or a pod template, so a workload installed with
``kubectl apply`` can be taken over by ``helm upgrade`` without a rollout.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Helm
from tests.manifests.conftest import NAMESPACE, OVERLAY, ROOT, objects, one, pod_spec

CHART = ROOT / "charts" / "graceful-operator"
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")

Key = tuple[str, str]


def template(helm: Helm, *sets: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """``helm template`` of the chart, as objects (CRDs included)."""
    args = [arg for value in sets for arg in ("--set", value)]
    out = helm("template", "graceful", str(CHART), "--namespace", namespace,
                   "--include-crds", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def keyed(objs: list[dict[str, Any]], strip_helm: bool = False) -> dict[Key, dict[str, Any]]:
    """Objects by (kind, name); ``strip_helm`` removes (and checks) Helm's labels.

    CRDs come from the chart's ``crds/``, which Helm installs as they are: they
    carry no Helm labels.
    """
    found: dict[Key, dict[str, Any]] = {}
    for original in objs:
        obj = copy.deepcopy(original)
        if strip_helm and obj["kind"] != "CustomResourceDefinition":
            labels = obj["metadata"].get("labels", {})
            assert {k: labels.pop(k, None) for k in HELM_LABELS} == {
                "helm.sh/chart": "graceful-operator-0.1.0",
                "app.kubernetes.io/managed-by": "Helm"}, obj["metadata"]["name"]
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in found, f"{key} twice"
        found[key] = obj
    return found


def without_namespace(objs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {k: v for k, v in keyed(objs).items() if k[0] != "Namespace"}


def test_default_values_render_exactly_the_manifests(helm: Helm) -> None:
    chart = keyed(template(helm), strip_helm=True)
    expected = without_namespace(objects())
    assert sorted(chart) == sorted(expected)
    for key, obj in expected.items():
        assert chart[key] == obj, key


def test_cert_manager_mode_renders_the_overlay(helm: Helm, kubectl_binary: Path) -> None:
    overlay = [d for d in yaml.safe_load_all(subprocess.run(
        [str(kubectl_binary), "kustomize", str(OVERLAY)], capture_output=True, text=True,
        check=True).stdout) if d]
    chart = keyed(template(helm, "certificates.mode=cert-manager"), strip_helm=True)
    expected = without_namespace(overlay)
    assert sorted(chart) == sorted(expected)
    for key, obj in expected.items():
        assert chart[key] == obj, key


def test_cert_manager_mode_with_an_issuer_of_the_platform(helm: Helm) -> None:
    rendered = keyed(template(helm, "certificates.mode=cert-manager",
                              "certificates.certManager.issuerRef.kind=ClusterIssuer",
                              "certificates.certManager.issuerRef.name=corp-ca"))
    assert ("Issuer", "graceful-selfsigned") not in rendered
    certificate = rendered[("Certificate", "graceful-webhook")]
    assert certificate["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "corp-ca"}


@pytest.mark.parametrize("sets", [(), ("certificates.mode=cert-manager",)],
                         ids=["builtin", "cert-manager"])
def test_helm_lint_strict(helm: Helm, sets: tuple[str, ...]) -> None:
    args = [arg for value in sets for arg in ("--set", value)]
    proc = helm("lint", "--strict", str(CHART), *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_values_reach_the_objects(helm: Helm) -> None:
    rendered = keyed(template(
        helm, "image.repository=registry.example.com/graceful", "image.tag=0.2.0",
        "webhook.replicas=3", "operator.replicas=1", "webhook.failurePolicy=Fail",
        "webhook.timeoutSeconds=10", "webhook.excludedNamespaces={kube-system,istio-system}",
        "operator.namespaces={apps,jobs}", "webhook.resources.limits.memory=1Gi",
        "imagePullSecrets[0].name=regcred", "operator.nodeSelector.pool=system",
        namespace="platform"))
    webhook = rendered[("Deployment", "graceful-webhook")]
    operator = rendered[("Deployment", "graceful-operator")]
    assert webhook["spec"]["replicas"] == 3 and operator["spec"]["replicas"] == 1
    for deployment in (webhook, operator):
        (container,) = pod_spec(deployment)["containers"]
        assert container["image"] == "registry.example.com/graceful:0.2.0"
        assert pod_spec(deployment)["imagePullSecrets"] == [{"name": "regcred"}]
        assert deployment["metadata"]["namespace"] == "platform"
    assert pod_spec(webhook)["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    assert pod_spec(operator)["nodeSelector"] == {"pool": "system"}
    assert "nodeSelector" not in pod_spec(webhook)
    assert pod_spec(operator)["containers"][0]["args"][-2:] == [
        "--namespace=apps", "--namespace=jobs"]
    (hook,) = rendered[("MutatingWebhookConfiguration", "graceful-webhook")]["webhooks"]
    assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 10
    assert hook["clientConfig"]["service"]["namespace"] == "platform"
    # the release's own namespace is always excluded, whatever the values say
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "istio-system", "kube-system", "platform"]
    for kind, name in (("ClusterRoleBinding", "graceful-operator"),
                       ("RoleBinding", "graceful-operator-leader-election")):
        assert rendered[(kind, name)]["subjects"][0]["namespace"] == "platform"


@pytest.mark.parametrize("value", ["webhook.failurePolicy=Maybe", "webhook.timeoutSeconds=31",
                                   "webhook.timeoutSeconds=0", "certificates.mode=vault",
                                   "image.pullPolicy=Sometimes"])
def test_bad_values_are_refused_before_anything_is_rendered(helm: Helm, value: str) -> None:
    proc = helm("template", "graceful", str(CHART), "--set", value, check=False)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr


def test_chart_crds_are_the_copies_of_crds() -> None:
    for path in (CHART / "crds").iterdir():
        source = ROOT / "crds" / path.name
        assert path.read_text().split("\n", 1)[1] == source.read_text()
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(
        p.name for p in (ROOT / "crds").iterdir())


def test_webhook_secret_and_configuration_names_are_the_operators_defaults(helm: Helm) -> None:
    """The operator finds the Secret and the configuration by these names (no flags passed)."""
    from graceful.operator.settings import OperatorSettings  # noqa: PLC0415

    defaults = OperatorSettings()
    rendered = template(helm)
    webhook = one("Deployment", "graceful-webhook", rendered)
    volumes = {v["name"]: v for v in pod_spec(webhook)["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == defaults.webhook_secret
    one("MutatingWebhookConfiguration", defaults.webhook_configuration, rendered)
    one("Service", defaults.webhook_service, rendered)


def test_policy_reports_off_takes_the_permission_away_too(helm: Helm) -> None:
    def policy_report_rules(rendered: dict[Key, dict[str, Any]]) -> list[dict[str, Any]]:
        role = rendered[("ClusterRole", "graceful-operator")]
        return [r for r in role["rules"] if "wgpolicyk8s.io" in r["apiGroups"]]

    def env(rendered: dict[Key, dict[str, Any]]) -> dict[str, Any]:
        (container,) = pod_spec(rendered[("Deployment", "graceful-operator")])["containers"]
        return {e["name"]: e.get("value") for e in container["env"]}

    on = keyed(template(helm))
    assert policy_report_rules(on) == [{"apiGroups": ["wgpolicyk8s.io"],
                                        "resources": ["policyreports"],
                                        "verbs": ["list", "create", "patch", "delete"]}]
    assert "GRACEFUL_POLICY_REPORTS" not in env(on)
    off = keyed(template(helm, "policyReports.enabled=false"))
    assert policy_report_rules(off) == []
    assert env(off)["GRACEFUL_POLICY_REPORTS"] == "false"
