"""The Helm chart against the real API server: dry-run, install, upgrade, uninstall.

The release goes into a namespace of its own (the chart takes every namespace
from the release), so it cannot collide with the manifests' tests in
``graceful-system``. There is no kubelet here, so the Pods never run: the
operator runs as a subprocess with the chart's identity instead (a token of
its ServiceAccount), writes the certificate Secret and the caBundle as it would
in the cluster, and ``helm upgrade`` must keep both.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster, Helm, Kubectl
from tests.e2e.test_certificates_e2e import Process, until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "graceful-operator"
SECRET = "graceful-webhook-tls"
MWC = "mutatingwebhookconfiguration"


@pytest.fixture
def release_namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"helm-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def rendered(helm: Helm, namespace: str, *sets: str) -> str:
    args = [arg for value in sets for arg in ("--set", value)]
    return helm("template", "graceful", str(CHART), "--namespace", namespace,
                "--include-crds", *args).stdout


@pytest.mark.parametrize("sets", [(), ("webhook.failurePolicy=Fail", "operator.namespaces={a,b}")],
                         ids=["defaults", "values"])
def test_helm_template_passes_server_side_dry_run(helm: Helm, kubectl: Kubectl,
                                                  release_namespace: str,
                                                  sets: tuple[str, ...]) -> None:
    docs = [d for d in yaml.safe_load_all(rendered(helm, release_namespace, *sets)) if d]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds))  # a dry-run needs them for real
    proc = kubectl("apply", "--dry-run=server", "-f", "-",
                   input=yaml.safe_dump_all([d for d in docs if d not in crds]))
    lines = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(lines) == len(docs) - len(crds), proc.stdout


def operator_kubeconfig(cluster: Cluster, kubectl: Kubectl, namespace: str,
                        directory: Path) -> Path:
    """A kubeconfig that acts as the chart's operator ServiceAccount (its RBAC, nothing more)."""
    token = kubectl("create", "token", "graceful-operator", "-n", namespace).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "operator"
    path = directory / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    proc = kubectl("get", *args, "-o", "json", check=False)
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def ca_bundle(kubectl: Kubectl) -> str:
    config = get_json(kubectl, MWC, "graceful-webhook")
    assert config is not None
    (hook,) = config["webhooks"]
    return str(hook["clientConfig"].get("caBundle", ""))


def test_install_upgrade_uninstall(helm: Helm, cluster: Cluster, kubectl: Kubectl,
                                   release_namespace: str, tmp_path: Path) -> None:
    ns = release_namespace
    helm("install", "graceful", str(CHART), "--namespace", ns, kubeconfig=cluster.kubeconfig)
    try:
        status = json.loads(helm("status", "graceful", "-n", ns, "-o", "json",
                                 kubeconfig=cluster.kubeconfig).stdout)
        assert status["info"]["status"] == "deployed"
        for kind in ("deployment/graceful-webhook", "deployment/graceful-operator",
                     "service/graceful-webhook", "pdb/graceful-webhook"):
            assert get_json(kubectl, kind, "-n", ns) is not None, kind
        config = get_json(kubectl, MWC, "graceful-webhook")
        assert config is not None
        (hook,) = config["webhooks"]
        assert hook["clientConfig"]["service"]["namespace"] == ns
        assert ns in hook["namespaceSelector"]["matchExpressions"][0]["values"]

        # the operator, as the chart's ServiceAccount, writes the Secret and the caBundle
        kubeconfig = operator_kubeconfig(cluster, kubectl, ns, tmp_path)
        operator = Process(["operator", "--kubeconfig", str(kubeconfig), "--lease-namespace", ns,
                            "--identity", "helm-op", "--certificate-check-seconds", "1"],
                           tmp_path / "operator.log").start()
        try:
            until(lambda: get_json(kubectl, "secret", SECRET, "-n", ns), 60,
                  "the operator to write the certificate Secret", operator.text)
            until(lambda: ca_bundle(kubectl), 60, "the operator to fill the caBundle",
                  operator.text)
        finally:
            operator.stop()
        secret = get_json(kubectl, "secret", SECRET, "-n", ns)
        assert secret is not None
        bundle = ca_bundle(kubectl)
        assert base64.b64decode(bundle).startswith(b"-----BEGIN CERTIFICATE-----")

        helm("upgrade", "graceful", str(CHART), "--namespace", ns, "--set",
             "webhook.timeoutSeconds=10", "--set", "webhook.replicas=3",
             kubeconfig=cluster.kubeconfig)
        after = get_json(kubectl, "secret", SECRET, "-n", ns)
        assert after is not None and after["data"] == secret["data"]
        assert after["metadata"]["uid"] == secret["metadata"]["uid"]
        assert ca_bundle(kubectl) == bundle  # the chart never sets it, so upgrade keeps it
        config = get_json(kubectl, MWC, "graceful-webhook")
        assert config is not None and config["webhooks"][0]["timeoutSeconds"] == 10
        webhook = get_json(kubectl, "deployment/graceful-webhook", "-n", ns)
        assert webhook is not None and webhook["spec"]["replicas"] == 3
    finally:
        proc = helm("uninstall", "graceful", "--namespace", ns, "--wait",
                    kubeconfig=cluster.kubeconfig, check=False)
    assert proc.returncode == 0, proc.stderr
    # a leftover webhook configuration would send every deploy of the cluster to a dead Service
    assert get_json(kubectl, MWC, "graceful-webhook") is None
    for kind in ("clusterrole/graceful-operator", "clusterrole/graceful-webhook",
                 "clusterrolebinding/graceful-operator-webhook-ca"):
        assert get_json(kubectl, kind) is None, kind
    # what stays is what helm never owned: the CRDs of crds/ (and so every policy) and the
    # Secret the operator wrote (NOTES.txt says so)
    assert get_json(kubectl, "crd/gracefulpolicies.graceful.io") is not None
    assert get_json(kubectl, "secret", SECRET, "-n", ns) is not None
