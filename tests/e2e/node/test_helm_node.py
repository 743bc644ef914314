"""The Helm chart on the real node: install, upgrade and uninstall, as a platform team runs them.

``helm install`` into a release namespace of its own must bring up the same
working product as ``kubectl apply -f manifests/``: both Deployments roll
out, the operator writes the certificate Secret and the caBundle, the API
server calls the webhook through its Service, a Deployment in a namespace
with a policy is mutated and the policy's status counts it. ``helm upgrade``
keeps the Secret (the chart never renders it) while the webhook's Pods roll;
``helm uninstall`` leaves no MutatingWebhookConfiguration behind, since a
leftover one would send every deploy of the cluster to a Service that is gone.

One install per cluster is the product's shape (the webhook configuration,
the ClusterRoles and their bindings are cluster-wide and have fixed names),
and the session's node tests share one cluster: the module removes the
manifests' install if a test before it made one, and puts it back afterwards.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster, Helm, Kubectl
from tests.e2e.node.conftest import (
    apply_objects,
    get_json,
    install_manifests,
    policy,
    remove_manifests_install,
    wait_for,
    webhook_answers,
)
from tests.e2e.node.test_install_node import deployment

pytestmark = [pytest.mark.e2e, pytest.mark.node]

CHART = Path(__file__).resolve().parents[3] / "charts" / "graceful-operator"
RELEASE = "graceful"
NAMESPACE = "graceful-helm"
"""Not graceful-system: the chart must take every namespace from the release."""
SECRET = "graceful-webhook-tls"
MWC = "mutatingwebhookconfiguration"


def ca_in_bundle(kubectl: Kubectl) -> bool:
    """The configuration's caBundle holds the CA of the release's Secret."""
    mwc = get_json(kubectl, MWC, "graceful-webhook")
    secret = get_json(kubectl, "-n", NAMESPACE, "secret", SECRET)
    if mwc is None or secret is None or "ca.crt" not in secret.get("data", {}):
        return False
    bundle = base64.b64decode(mwc["webhooks"][0]["clientConfig"].get("caBundle", ""))
    return base64.b64decode(secret["data"]["ca.crt"]) in bundle


def ready_replicas(kubectl: Kubectl, name: str) -> int:
    deploy = get_json(kubectl, "-n", NAMESPACE, "deployment", name)
    assert deploy is not None, name
    return int(deploy["status"].get("readyReplicas") or 0)


@pytest.fixture(scope="module")
def release(node_cluster: Cluster, node_kubectl: Kubectl, helm: Helm) -> Iterator[Cluster]:
    """The chart installed with its default values in ``graceful-helm``, running."""
    kubectl = node_kubectl
    had_manifests = remove_manifests_install(kubectl)
    helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
         kubeconfig=node_cluster.kubeconfig)
    try:
        for name in ("graceful-operator", "graceful-webhook"):
            # the webhook's Pods start once the operator has written their Secret
            kubectl("-n", NAMESPACE, "rollout", "status", f"deploy/{name}", "--timeout=300s")
        wait_for(lambda: ca_in_bundle(kubectl), "the operator to put its CA in the caBundle",
                 timeout=300)
        yield node_cluster
    finally:
        helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait",
             kubeconfig=node_cluster.kubeconfig, check=False)
        kubectl("delete", "namespace", NAMESPACE, "--wait=false", "--ignore-not-found",
                check=False)
        if had_manifests:
            install_manifests(kubectl)


def test_install_brings_up_a_working_product(release: Cluster, node_kubectl: Kubectl,
                                             helm: Helm, node_namespace: str) -> None:
    kubectl = node_kubectl
    status = json.loads(helm("status", RELEASE, "-n", NAMESPACE, "-o", "json",
                             kubeconfig=release.kubeconfig).stdout)
    assert status["info"]["status"] == "deployed"
    assert ready_replicas(kubectl, "graceful-webhook") == 2
    assert ready_replicas(kubectl, "graceful-operator") == 2
    secret = get_json(kubectl, "-n", NAMESPACE, "secret", SECRET)
    assert secret is not None and {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])
    (hook,) = (get_json(kubectl, MWC, "graceful-webhook") or {})["webhooks"]
    assert hook["clientConfig"]["service"]["namespace"] == NAMESPACE

    apply_objects(kubectl, policy(node_namespace))
    wait_for(lambda: webhook_answers(kubectl, node_namespace),
             "the API server to call the release's webhook through its Service", timeout=300)
    apply_objects(kubectl, deployment(node_namespace, "worker"))
    stored = get_json(kubectl, "-n", node_namespace, "deployment", "worker")
    assert stored is not None
    template = stored["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == 2 + 20 + 2
    assert template["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 2}}

    def counted() -> dict[str, Any] | None:
        found = get_json(kubectl, "-n", node_namespace, "gracefulpolicy", "apps")
        state = (found or {}).get("status") or {}
        return state if state.get("matched") == 1 and state.get("compliant") == 1 else None

    wait_for(counted, "the release's operator to count the Deployment in the policy's status",
             timeout=120)


def test_a_cluster_policy_serves_a_namespace_without_its_own(
        release: Cluster, node_kubectl: Kubectl, node_namespace: str) -> None:
    """The release's webhook watches ClusterGracefulPolicies and Namespaces with its RBAC."""
    kubectl = node_kubectl
    name = f"default-{node_namespace}"
    cluster_policy = {
        "apiVersion": "graceful.io/v1alpha1", "kind": "ClusterGracefulPolicy",
        "metadata": {"name": name},
        "spec": {"namespaceSelector": {"matchLabels": {"graceful.io/budget": node_namespace}},
                 "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
                 "gracefulTimeoutSeconds": 7,
                 "drain": {"preStopSleepSeconds": 1, "safetyMarginSeconds": 1}}}
    kubectl("label", "namespace", node_namespace, f"graceful.io/budget={node_namespace}")
    apply_objects(kubectl, cluster_policy)
    try:
        plain = deployment(node_namespace, "plain")
        del plain["metadata"]["annotations"]["graceful.io/policy"]
        plain["metadata"]["labels"] = {"app": "plain"}

        def mutated() -> dict[str, Any] | None:
            proc = kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                           input=json.dumps(plain), check=False)
            spec = json.loads(proc.stdout)["spec"]["template"]["spec"] if (
                proc.returncode == 0) else {}
            return spec if spec.get("terminationGracePeriodSeconds") != 10 else None

        spec = wait_for(mutated, "the webhook to apply the cluster policy", timeout=120)
        assert spec["terminationGracePeriodSeconds"] == 1 + 20 + 1
        # a policy of the namespace that selects the workload wins
        own = policy(node_namespace, name="own", prestop=3, margin=3,
                     selector={"matchLabels": {"app": "plain"}})
        apply_objects(kubectl, own)

        def own_wins() -> dict[str, Any] | None:
            found = mutated()
            return found if found and found["terminationGracePeriodSeconds"] == 26 else None

        spec = wait_for(own_wins, "the namespace's own policy to win (3 + 20 + 3)", timeout=120)
        assert spec["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 3}}
    finally:
        kubectl("delete", "cgp", name, "--ignore-not-found", check=False)


def test_upgrade_keeps_the_certificate_secret(release: Cluster, node_kubectl: Kubectl,
                                              helm: Helm, node_namespace: str) -> None:
    kubectl = node_kubectl
    before = get_json(kubectl, "-n", NAMESPACE, "secret", SECRET)
    assert before is not None
    bundle = (get_json(kubectl, MWC, "graceful-webhook") or {})["webhooks"][0][
        "clientConfig"]["caBundle"]
    # new values for the configuration, and a change of the webhook's pod template: its
    # Pods roll, and the new ones must serve with the Secret that was kept
    helm("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE,
         "--set", "webhook.timeoutSeconds=10",
         "--set", "webhook.resources.requests.cpu=60m",
         kubeconfig=release.kubeconfig)
    kubectl("-n", NAMESPACE, "rollout", "status", "deploy/graceful-webhook", "--timeout=300s")
    after = get_json(kubectl, "-n", NAMESPACE, "secret", SECRET)
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["data"] == before["data"]
    config = get_json(kubectl, MWC, "graceful-webhook")
    assert config is not None
    assert config["webhooks"][0]["timeoutSeconds"] == 10
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == bundle
    webhook = get_json(kubectl, "-n", NAMESPACE, "deployment", "graceful-webhook")
    assert webhook is not None
    (container,) = webhook["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == "60m"
    assert ready_replicas(kubectl, "graceful-webhook") == 2
    apply_objects(kubectl, policy(node_namespace))
    wait_for(lambda: webhook_answers(kubectl, node_namespace),
             "the rolled webhook to answer with the kept certificate", timeout=300)


def test_uninstall_leaves_no_webhook_configuration(release: Cluster, node_kubectl: Kubectl,
                                                   helm: Helm, node_namespace: str) -> None:
    """Runs last in the module: it uninstalls the module's release."""
    kubectl = node_kubectl
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait",
         kubeconfig=release.kubeconfig)
    configs = get_json(kubectl, MWC)
    assert configs is not None
    assert [c["metadata"]["name"] for c in configs["items"]
            if any(h.get("clientConfig", {}).get("service", {}).get("namespace") == NAMESPACE
                   for h in c.get("webhooks", []))] == []
    assert get_json(kubectl, MWC, "graceful-webhook") is None
    for kind in ("clusterrole/graceful-operator", "clusterrole/graceful-webhook",
                 "clusterrolebinding/graceful-operator"):
        assert get_json(kubectl, kind) is None, kind
    # deploys go on, unmutated: nothing calls a webhook that is gone
    apply_objects(kubectl, policy(node_namespace))
    apply_objects(kubectl, deployment(node_namespace, "after"))
    stored = get_json(kubectl, "-n", node_namespace, "deployment", "after")
    assert stored is not None
    assert "lifecycle" not in stored["spec"]["template"]["spec"]["containers"][0]
    # helm never owned the Secret the operator wrote: it stays until the namespace goes
    assert get_json(kubectl, "-n", NAMESPACE, "secret", SECRET) is not None
