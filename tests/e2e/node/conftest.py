"""Fixtures of the node tests: the product installed as a user installs it.

``installed`` applies ``manifests/`` unchanged (``kubectl apply -f``), waits for
both Deployments to roll out, for the operator to write the certificate
Secret and the caBundle, and for the API server to call the webhook through
its Service; it is shared by every node test of the session.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster, Kubectl

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "manifests"
SYSTEM = "graceful-system"


def apply_objects(kubectl: Kubectl, *objects: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    proc = kubectl("get", *args, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0,
             interval: float = 0.5) -> Any:
    """Poll until ``check()`` is truthy; fail naming ``what`` (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def webhook_answers(kubectl: Kubectl, namespace: str) -> bool:
    """A server-side dry run of an annotated Deployment comes back mutated."""
    probe = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": namespace,
                     "annotations": {"graceful.io/policy": "apps"}},
        "spec": {"selector": {"matchLabels": {"app": "probe"}},
                 "template": {"metadata": {"labels": {"app": "probe"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }
    proc = kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                   input=json.dumps(probe), check=False)
    if proc.returncode != 0:
        return False
    spec = json.loads(proc.stdout)["spec"]["template"]["spec"]
    return "terminationGracePeriodSeconds" in spec and bool(
        spec["containers"][0].get("lifecycle", {}).get("preStop"))


@pytest.fixture(scope="session")
def installed(node_cluster: Cluster, node_kubectl: Kubectl) -> dict[str, float]:
    """The product from manifests/, running on the node; returns how long each step took."""
    return install_manifests(node_kubectl)


def install_manifests(kubectl: Kubectl) -> dict[str, float]:
    """``kubectl apply -f manifests/``, then wait until the webhook answers; the steps' times.

    Also what the Helm test calls to put the session's install back after its
    own release is gone (one install per cluster: see ``test_helm_node``).
    """
    took: dict[str, float] = {}
    started = time.monotonic()
    kubectl("apply", "-f", str(MANIFESTS))
    kubectl("-n", SYSTEM, "rollout", "status", "deploy/graceful-operator", "--timeout=300s")
    took["operator rolled out"] = time.monotonic() - started

    def secret_written() -> bool:
        secret = get_json(kubectl, "-n", SYSTEM, "secret", "graceful-webhook-tls")
        return secret is not None and bool(secret.get("data", {}).get("tls.crt"))

    wait_for(secret_written, "the operator to write the webhook's certificate Secret",
             timeout=300)
    took["certificate Secret"] = time.monotonic() - started
    kubectl("-n", SYSTEM, "rollout", "status", "deploy/graceful-webhook", "--timeout=300s")
    took["webhook rolled out"] = time.monotonic() - started

    def ca_bundle_synced() -> bool:
        mwc = get_json(kubectl, "mutatingwebhookconfiguration", "graceful-webhook")
        secret = get_json(kubectl, "-n", SYSTEM, "secret", "graceful-webhook-tls")
        if mwc is None or secret is None:
            return False
        bundle = base64.b64decode(mwc["webhooks"][0]["clientConfig"].get("caBundle", ""))
        return base64.b64decode(secret["data"]["ca.crt"]) in bundle
    wait_for(ca_bundle_synced, "the operator to put the CA into the webhook configuration",
             timeout=300)

    probe_ns = f"probe-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", probe_ns)
    apply_objects(kubectl, policy(probe_ns))
    wait_for(lambda: webhook_answers(kubectl, probe_ns),
             "the API server to call the webhook through its Service", timeout=300)
    kubectl("delete", "namespace", probe_ns, "--wait=false")
    took["webhook answers"] = time.monotonic() - started
    return took


def remove_manifests_install(kubectl: Kubectl) -> bool:
    """Delete what ``kubectl apply -f manifests/`` made, but the namespace and the CRDs.

    Returns whether there was an install. The CRDs stay (deleting them would
    delete every policy of the cluster), and so does the namespace, with the
    certificate Secret the operator wrote in it: applying manifests/ again
    picks both up.
    """
    present = get_json(kubectl, "-n", SYSTEM, "deployment", "graceful-webhook") is not None
    files = [str(path) for path in sorted(MANIFESTS.glob("*.yaml"))
             if not path.name.startswith(("00-", "01-", "02-"))]
    args = [arg for path in files for arg in ("-f", path)]
    kubectl("delete", "--ignore-not-found", "--wait=true", "--timeout=300s", *args)
    # an operator Pod still stopping could write its CA into a configuration of the same name
    def stopped() -> bool:
        pods = get_json(kubectl, "-n", SYSTEM, "pods",
                        "--selector=app.kubernetes.io/part-of=graceful-operator")
        return pods is None or not pods["items"]

    wait_for(stopped, "the manifests' Pods to end", timeout=300)
    return present


def policy(namespace: str, *, name: str = "apps", prestop: int = 2, margin: int = 2,
           timeout: int = 5, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gracefulTimeoutSeconds": timeout,
                 "drain": {"preStopSleepSeconds": prestop, "safetyMarginSeconds": margin},
                 **spec},
    }


@pytest.fixture
def node_namespace(node_kubectl: Kubectl) -> Iterator[str]:
    name = f"n-{uuid.uuid4().hex[:10]}"
    node_kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        node_kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def events_dir(node_cluster: Cluster, node_namespace: str) -> Path:
    """A hostPath directory for the test's Pods to write their event logs into."""
    assert node_cluster.plane is not None and node_cluster.plane.node_part is not None
    directory = node_cluster.plane.node_part.paths.host_path_dir / node_namespace
    directory.mkdir(parents=True)
    directory.chmod(0o777)
    return directory
