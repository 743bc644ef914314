"""The install manifests against a real API server: server-side dry-run and RBAC.

The namespace and the CRD are applied for real first (a dry-run of a
namespaced object needs its namespace, a GracefulPolicy needs its CRD); the
service accounts and RBAC are applied for real for the `kubectl auth can-i`
matrix and removed afterwards. The CRD and the namespace stay: other tests of
the session may use them, and applying them again is a no-op.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv.demo import REPORT_CRD
from testenv.pki import CertificateAuthority
from testenv.ports import free_port
from tests.conftest import Kubectl
from tests.manifests.conftest import (
    MANIFESTS,
    NAMESPACE,
    OVERLAY,
    by_kind,
    manifest_files,
    objects,
    pod_spec,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.e2e

OPERATOR = f"system:serviceaccount:{NAMESPACE}:graceful-operator"
WEBHOOK = f"system:serviceaccount:{NAMESPACE}:graceful-webhook"
DEFAULT_SA = f"system:serviceaccount:{NAMESPACE}:default"
MWC = "mutatingwebhookconfigurations.admissionregistration.k8s.io"
RBAC_FILES = ("10-serviceaccounts.yaml", "20-rbac-webhook.yaml", "21-rbac-operator.yaml")


@pytest.fixture(scope="module")
def base(kubectl: Kubectl) -> None:
    """The namespace and the CRD, for real."""
    kubectl("apply", "-f", str(MANIFESTS / "00-namespace.yaml"),
            "-f", str(MANIFESTS / "01-crd-gracefulpolicy.yaml"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io")


@pytest.fixture(scope="module")
def rbac(base: None, kubectl: Kubectl) -> Iterator[None]:
    """The service accounts and RBAC, for real, removed afterwards; with the wg-policy CRD
    (as where Kyverno runs), since ``kubectl auth can-i`` answers "no" for a resource the
    API server does not serve, whatever the RBAC says."""
    files = [arg for name in RBAC_FILES for arg in ("-f", str(MANIFESTS / name))]
    kubectl("apply", *files, "-f", str(REPORT_CRD))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/policyreports.wgpolicyk8s.io")
    try:
        yield
    finally:
        kubectl("delete", "--ignore-not-found", "--wait=false", *files, check=False)
        kubectl("delete", "--ignore-not-found", "-f", str(REPORT_CRD), check=False)


def _no_pod_security_warning(stderr: str) -> None:
    assert "would violate PodSecurity" not in stderr, stderr
    assert "Warning" not in stderr, stderr


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_every_file_passes_server_side_dry_run(base: None, kubectl: Kubectl,
                                               path: Path) -> None:
    proc = kubectl("apply", "--dry-run=server", "-f", str(path))
    _no_pod_security_warning(proc.stderr)
    assert "(server dry run)" in proc.stdout


def test_the_whole_directory_and_the_kustomization(base: None, kubectl: Kubectl) -> None:
    proc = kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS))
    _no_pod_security_warning(proc.stderr)
    applied = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(objects())
    proc = kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS))
    assert len(proc.stdout.splitlines()) == len(objects())


def test_cert_manager_overlay_renders_and_its_kubernetes_objects_pass(base: None,
                                                                     kubectl: Kubectl) -> None:
    rendered = [d for d in yaml.safe_load_all(kubectl("kustomize", str(OVERLAY)).stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert ("Certificate", "graceful-webhook") in kinds
    assert ("Issuer", "graceful-selfsigned") in kinds
    assert ("Role", "graceful-operator-certificates") not in kinds
    assert ("ClusterRole", "graceful-operator-webhook-ca") not in kinds
    (config,) = by_kind("MutatingWebhookConfiguration", rendered)
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"{NAMESPACE}/graceful-webhook"}
    (operator,) = [d for d in by_kind("Deployment", rendered)
                   if d["metadata"]["name"] == "graceful-operator"]
    env = {e["name"]: e.get("value") for e in pod_spec(operator)["containers"][0]["env"]}
    assert env["GRACEFUL_MANAGE_CERTIFICATES"] == "false"
    # cert-manager's own kinds need its CRDs; everything else goes to the API server
    plain = [d for d in rendered if not d["apiVersion"].startswith("cert-manager.io/")]
    proc = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(plain))
    _no_pod_security_warning(proc.stderr)


def _pod_from(deployment: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{deployment['metadata']['name']}-check",
                         "namespace": NAMESPACE,
                         "labels": deployment["spec"]["template"]["metadata"]["labels"]},
            "spec": pod_spec(deployment)}


@pytest.mark.parametrize("name", ["graceful-webhook", "graceful-operator"])
def test_pods_pass_restricted_pod_security(rbac: None, kubectl: Kubectl, name: str) -> None:
    (deployment,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == name]
    proc = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                   input=json.dumps(_pod_from(deployment)))
    _no_pod_security_warning(proc.stderr)
    assert json.loads(proc.stdout)["spec"]["securityContext"]["runAsUser"] == 65532


def test_pod_security_is_really_enforced_in_the_namespace(rbac: None, kubectl: Kubectl) -> None:
    """A negative control: the check above would catch a privileged Pod."""
    (deployment,) = [d for d in by_kind("Deployment")
                     if d["metadata"]["name"] == "graceful-webhook"]
    pod = _pod_from(deployment)
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    proc = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode != 0
    assert "violates PodSecurity" in proc.stderr and "allowPrivilegeEscalation" in proc.stderr


# -- kubectl auth can-i ------------------------------------------------------------------

ALLOWED: list[tuple[str, ...]] = [
    # the audit: read workloads, Pods and policies everywhere
    (OPERATOR, "list", "deployments.apps", "-A"),
    (OPERATOR, "watch", "deployments.apps", "-A"),
    (OPERATOR, "get", "statefulsets.apps", "-n", "team-a"),
    (OPERATOR, "watch", "daemonsets.apps", "-A"),
    (OPERATOR, "watch", "jobs.batch", "-A"),
    (OPERATOR, "list", "cronjobs.batch", "-A"),
    (OPERATOR, "list", "pods", "-A"),
    (OPERATOR, "watch", "gracefulpolicies.graceful.io", "-A"),
    (OPERATOR, "watch", "customresourcedefinitions.apiextensions.k8s.io"),
    # the report
    (OPERATOR, "patch", "gracefulpolicies.graceful.io", "--subresource=status", "-n", "team-a"),
    (OPERATOR, "update", "gracefulpolicies.graceful.io", "--subresource=status", "-n", "team-a"),
    (OPERATOR, "create", "events", "-n", "team-a"),
    (OPERATOR, "list", "events", "-A"),
    (OPERATOR, "patch", "events", "-n", "team-a"),
    (OPERATOR, "create", "events.events.k8s.io", "-n", "team-a"),
    # PolicyReports: its own, written whole and deleted with the last workload they report
    (OPERATOR, "list", "policyreports.wgpolicyk8s.io", "-A"),
    (OPERATOR, "create", "policyreports.wgpolicyk8s.io", "-n", "team-a"),
    (OPERATOR, "patch", "policyreports.wgpolicyk8s.io/graceful-operator", "-n", "team-a"),
    (OPERATOR, "delete", "policyreports.wgpolicyk8s.io/graceful-operator", "-n", "team-a"),
    # leader election, in its own namespace
    (OPERATOR, "create", "leases.coordination.k8s.io", "-n", NAMESPACE),
    (OPERATOR, "get", "leases.coordination.k8s.io/graceful-operator", "-n", NAMESPACE),
    (OPERATOR, "update", "leases.coordination.k8s.io/graceful-operator", "-n", NAMESPACE),
    # the webhook's certificate
    (OPERATOR, "create", "secrets", "-n", NAMESPACE),
    # create cannot be limited by name: any name, in its namespace (the README says so)
    (OPERATOR, "create", "secrets/someone-elses", "-n", NAMESPACE),
    (OPERATOR, "get", "secrets/graceful-webhook-tls", "-n", NAMESPACE),
    (OPERATOR, "update", "secrets/graceful-webhook-tls", "-n", NAMESPACE),
    (OPERATOR, "get", f"{MWC}/graceful-webhook"),
    (OPERATOR, "patch", f"{MWC}/graceful-webhook"),
    # the webhook's policy cache
    (WEBHOOK, "list", "gracefulpolicies.graceful.io", "-A"),
    (WEBHOOK, "watch", "gracefulpolicies.graceful.io", "-A"),
    (WEBHOOK, "get", "gracefulpolicies.graceful.io", "-n", "team-a"),
]

DENIED: list[tuple[str, ...]] = [
    # Secrets outside its namespace, or any other Secret, or listing them
    (OPERATOR, "get", "secrets", "-n", "default"),
    (OPERATOR, "get", "secrets/graceful-webhook-tls", "-n", "default"),
    (OPERATOR, "list", "secrets", "-A"),
    (OPERATOR, "list", "secrets", "-n", NAMESPACE),
    (OPERATOR, "watch", "secrets", "-n", NAMESPACE),
    (OPERATOR, "get", "secrets/someone-elses", "-n", NAMESPACE),
    (OPERATOR, "delete", "secrets/graceful-webhook-tls", "-n", NAMESPACE),
    (OPERATOR, "update", "secrets/someone-elses", "-n", NAMESPACE),
    (OPERATOR, "patch", "secrets/graceful-webhook-tls", "-n", NAMESPACE),
    (OPERATOR, "create", "secrets", "-n", "kube-system"),
    # workloads: read only, never created or changed
    (OPERATOR, "create", "pods", "-n", "default"),
    (OPERATOR, "create", "pods", "-n", NAMESPACE),
    (OPERATOR, "create", "pods/exec", "-n", "default"),
    (OPERATOR, "delete", "pods", "-n", "default"),
    (OPERATOR, "patch", "deployments.apps", "-n", "default"),
    (OPERATOR, "update", "statefulsets.apps", "-n", "default"),
    (OPERATOR, "create", "deployments.apps", "-n", NAMESPACE),
    (OPERATOR, "create", "jobs.batch", "-n", "default"),
    (OPERATOR, "patch", "cronjobs.batch", "-n", "default"),
    # stale Pods come from the controllers' status: no ReplicaSet is read
    (OPERATOR, "list", "replicasets.apps", "-A"),
    # policies: status only
    (OPERATOR, "update", "gracefulpolicies.graceful.io", "-n", "team-a"),
    (OPERATOR, "patch", "gracefulpolicies.graceful.io", "-n", "team-a"),
    (OPERATOR, "delete", "gracefulpolicies.graceful.io", "-n", "team-a"),
    (OPERATOR, "create", "gracefulpolicies.graceful.io", "-n", "team-a"),
    # leases and webhook configurations: only its own
    (OPERATOR, "create", "leases.coordination.k8s.io", "-n", "default"),
    (OPERATOR, "update", "leases.coordination.k8s.io/kube-controller-manager", "-n", NAMESPACE),
    (OPERATOR, "list", "leases.coordination.k8s.io", "-n", NAMESPACE),
    (OPERATOR, "patch", f"{MWC}/other"),
    (OPERATOR, "create", MWC),
    (OPERATOR, "delete", f"{MWC}/graceful-webhook"),
    (OPERATOR, "patch", "validatingwebhookconfigurations.admissionregistration.k8s.io"),
    # no escalation
    (OPERATOR, "escalate", "clusterroles.rbac.authorization.k8s.io"),
    (OPERATOR, "bind", "clusterroles.rbac.authorization.k8s.io"),
    (OPERATOR, "create", "clusterrolebindings.rbac.authorization.k8s.io"),
    (OPERATOR, "create", "rolebindings.rbac.authorization.k8s.io", "-n", NAMESPACE),
    (OPERATOR, "update", "roles.rbac.authorization.k8s.io", "-n", NAMESPACE),
    (OPERATOR, "impersonate", "serviceaccounts", "-n", NAMESPACE),
    (OPERATOR, "create", "serviceaccounts/token", "-n", NAMESPACE),
    (OPERATOR, "patch", "customresourcedefinitions.apiextensions.k8s.io"),
    (OPERATOR, "create", "clusterpolicyreports.wgpolicyk8s.io"),
    (OPERATOR, "deletecollection", "policyreports.wgpolicyk8s.io", "-n", "team-a"),
    (OPERATOR, "get", "nodes"),
    (OPERATOR, "*", "*"),
    # the webhook reads policies and nothing else
    (WEBHOOK, "get", "secrets", "-n", NAMESPACE),
    (WEBHOOK, "list", "secrets", "-A"),
    (WEBHOOK, "list", "pods", "-A"),
    (WEBHOOK, "get", "deployments.apps", "-n", "default"),
    (WEBHOOK, "patch", "gracefulpolicies.graceful.io", "--subresource=status", "-n", "team-a"),
    (WEBHOOK, "update", "gracefulpolicies.graceful.io", "-n", "team-a"),
    (WEBHOOK, "create", "events", "-n", "team-a"),
    (WEBHOOK, "create", "leases.coordination.k8s.io", "-n", NAMESPACE),
    (WEBHOOK, "patch", f"{MWC}/graceful-webhook"),
    (WEBHOOK, "create", "pods", "-n", "default"),
    # the namespace's default service account gets nothing from us
    (DEFAULT_SA, "list", "gracefulpolicies.graceful.io", "-A"),
    (DEFAULT_SA, "create", "secrets", "-n", NAMESPACE),
]


def _can_i(kubectl: Kubectl, user: str, *args: str) -> bool:
    proc = kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    answer = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert answer in ("yes", "no"), f"kubectl auth can-i {' '.join(args)}: {proc.stderr}"
    return answer == "yes"


def _ids(case: tuple[str, ...]) -> str:
    return f"{case[0].rsplit(':', 1)[-1]} {' '.join(case[1:])}"


@pytest.mark.parametrize("case", ALLOWED, ids=_ids)
def test_allowed(rbac: None, kubectl: Kubectl, case: tuple[str, ...]) -> None:
    assert _can_i(kubectl, *case), f"{_ids(case)} should be allowed"


@pytest.mark.parametrize("case", DENIED, ids=_ids)
def test_denied(rbac: None, kubectl: Kubectl, case: tuple[str, ...]) -> None:
    assert not _can_i(kubectl, *case), f"{_ids(case)} must be denied"


# -- the components themselves, with exactly these permissions -------------------------

def _token_kubeconfig(kubectl: Kubectl, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the service account, with a short-lived token."""
    token = kubectl("create", "token", account, "-n", NAMESPACE, "--duration=1h").stdout.strip()
    admin = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": account,
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "c", "user": account}}],
    }))
    path.chmod(0o600)
    return path


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _start(processes: list[subprocess.Popen[bytes]], log: Path, *args: str) -> None:
    with log.open("wb") as out:
        processes.append(subprocess.Popen([sys.executable, "-m", "graceful.cli", *args],
                                          stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))


def _eventually(what: str, check: Callable[[], bool], logs: list[Path],
                timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    pytest.fail(f"{what} did not happen within {timeout:.0f}s\n{tails}")


def test_webhook_and_operator_work_with_exactly_these_permissions(
        rbac: None, kubectl: Kubectl, namespace: str, tmp_path: Path,
        processes: list[subprocess.Popen[bytes]]) -> None:
    """Run both as their service accounts: a missing permission shows up as a failure here."""
    ca = CertificateAuthority.create("rbac-test-ca")
    cert, key = ca.issue("webhook", hosts=["127.0.0.1"], server=True).write(tmp_path, "tls")
    port = free_port()
    webhook_log, operator_log = tmp_path / "webhook.log", tmp_path / "operator.log"
    _start(processes, webhook_log, "webhook", "--cert", str(cert), "--key", str(key),
           "--host", "127.0.0.1", "--port", str(port), "--kubeconfig",
           str(_token_kubeconfig(kubectl, "graceful-webhook", tmp_path / "webhook.kubeconfig")))
    _start(processes, operator_log, "operator", "--identity", "rbac-test", "--kubeconfig",
           str(_token_kubeconfig(kubectl, "graceful-operator", tmp_path / "operator.kubeconfig")))
    logs = [webhook_log, operator_log]

    context = ssl.create_default_context(cadata=ca.cert_pem.decode())

    def webhook_ready() -> bool:  # /readyz: the policy cache listed and watches
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=context,
                                        timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    _eventually("the webhook's policy cache sync", webhook_ready, logs)

    kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "policy.yaml"),
            "-f", str(EXAMPLES / "legacy.yaml"))

    def reported() -> bool:
        status = json.loads(kubectl("get", "gracefulpolicy", "apps", "-n", namespace,
                                    "-o", "json").stdout).get("status") or {}
        return bool(status.get("matched") == 1 and status.get("mismatched") == 1)

    _eventually("the operator's status report", reported, logs)

    def event_posted() -> bool:
        events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return "GracefulBudgetMismatch" in events

    _eventually("the operator's Event on the workload", event_posted, logs)
    holder = kubectl("get", "lease", "graceful-operator", "-n", NAMESPACE, "-o",
                     "jsonpath={.spec.holderIdentity}").stdout
    assert holder == "rbac-test"
    for log in logs:
        text = log.read_text()
        assert "403" not in text and "Forbidden" not in text and "forbidden" not in text, text
