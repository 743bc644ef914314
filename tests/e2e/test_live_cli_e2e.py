"""``graceful explain KIND/NAME`` and ``graceful audit --cluster`` against a real kube-apiserver.

Workloads and a policy are created with kubectl (no webhook runs, so they are
stored as written); the commands then read them back through a kubeconfig, as a
user would, including one of a ServiceAccount that has only the built-in
``view`` ClusterRole plus read access to graceful.io policies. kube-controller-
manager creates the Deployments' Pods (Pending: no node), which is enough for
``explain`` to judge whether each carries the budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from graceful.core import GracefulPolicy, evaluate
from tests.conftest import Cluster, Kubectl

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
BIN = Path(sys.executable).parent
GRACEFUL = str(BIN / "graceful")

POLICY: dict[str, Any] = {
    "apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
    "metadata": {"name": "apps"},
    "spec": {"mode": "Audit", "gracefulTimeoutSeconds": 30,
             "drain": {"preStopSleepSeconds": 5, "safetyMarginSeconds": 10,
                       "maxGracePeriodSeconds": 3900, "preStopAction": "Sleep"}},
}


def deployment(name: str) -> dict[str, Any]:
    """An opted-in Deployment whose app drains for 60 s, with Kubernetes' default 30 s grace."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"graceful.io/policy": "apps",
                                                   "graceful.io/graceful-timeout": "60"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}},
    }


def admitted(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` as an Enforce policy's webhook would store it: compliant by construction."""
    enforce = {**POLICY, "metadata": {"name": "apps", "namespace": namespace},
               "spec": {**POLICY["spec"], "mode": "Enforce"}}
    policy = GracefulPolicy.from_object(enforce)
    decision = evaluate(obj, [policy])
    assert decision.patch and decision.admitted is not None
    return dict(decision.admitted)


@pytest.fixture(scope="module")
def crds(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CRDS))
    kubectl("wait", "--for", "condition=established", "--timeout=60s",
            "crd/gracefulpolicies.graceful.io", "crd/clustergracefulpolicies.graceful.io")


def wait_for_pods(kubectl: Kubectl, namespace: str, app: str, count: int) -> None:
    for _ in range(600):
        out = kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "name").stdout
        if len(out.split()) == count:
            return
        time.sleep(0.1)
    pytest.fail(f"kube-controller-manager created no {count} Pods for {app}")


@pytest.fixture
def workloads(crds: None, kubectl: Kubectl, namespace: str) -> str:
    """``worker`` (mismatched: 30 s grace for a 75 s budget) and ``fit`` (as admitted)."""
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(POLICY))
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deployment("worker")))
    kubectl("apply", "-n", namespace, "-f", "-",
            input=json.dumps(admitted(deployment("fit"), namespace)))
    wait_for_pods(kubectl, namespace, "worker", 2)
    wait_for_pods(kubectl, namespace, "fit", 2)
    return namespace


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def viewer_kubeconfig(kubectl: Kubectl, cluster: Cluster, namespace: str, tmp: Path, *,
                      read_policies: bool) -> Iterator[Path]:
    """A kubeconfig of a new ServiceAccount with ``view`` in ``namespace`` (its context's
    namespace) and, with ``read_policies``, get/list on graceful.io policies."""
    name = f"viewer-{uuid.uuid4().hex[:8]}"
    kubectl("create", "serviceaccount", name, "-n", namespace)
    kubectl("create", "rolebinding", name, "-n", namespace, "--clusterrole=view",
            f"--serviceaccount={namespace}:{name}")
    if read_policies:
        kubectl("create", "clusterrole", name, "--verb=get,list",
                "--resource=gracefulpolicies.graceful.io,clustergracefulpolicies.graceful.io")
        kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                f"--serviceaccount={namespace}:{name}")
    try:
        token = kubectl("create", "token", name, "-n", namespace).stdout.strip()
        admin = yaml.safe_load(kubectl("config", "view", "--raw", "--minify").stdout)
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "viewer",
            "clusters": admin["clusters"],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "viewer", "context": {
                "cluster": admin["clusters"][0]["name"], "user": name, "namespace": namespace}}],
        }
        path = tmp / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield path
    finally:
        if read_policies:
            kubectl("delete", "clusterrolebinding,clusterrole", name, check=False)


@pytest.fixture
def viewer(kubectl: Kubectl, cluster: Cluster, workloads: str,
           tmp_path: Path) -> Iterator[Path]:
    yield from viewer_kubeconfig(kubectl, cluster, workloads, tmp_path, read_policies=True)


@pytest.fixture
def view_only(kubectl: Kubectl, cluster: Cluster, workloads: str,
              tmp_path: Path) -> Iterator[Path]:
    yield from viewer_kubeconfig(kubectl, cluster, workloads, tmp_path, read_policies=False)


def test_explain_draws_the_live_timeline_and_judges_the_pods(
        cluster: Cluster, workloads: str) -> None:
    ns = workloads
    proc = run(GRACEFUL, "explain", "deployment/worker", "-n", ns, "--width", "60",
               env=cluster.env())
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"Deployment {ns}/worker: policy apps (Audit)" in out
    assert "container app: G = 60s from the graceful.io/graceful-timeout annotation" in out
    assert "SIGKILL at 30s cuts the drain: the app needs until 70s" in out
    assert "the webhook changes nothing here (the policy only audits)" in out
    assert "running Pods (2), against the template's budget:" in out
    assert out.count("STALE") == 2
    assert "terminationGracePeriodSeconds 30s (template: 75s)" in out

    fit = run(GRACEFUL, "explain", "deploy/fit", "-n", ns, env=cluster.env())
    assert fit.returncode == 0, fit.stderr
    assert fit.stdout.count("carries the budget") == 2
    assert "STALE" not in fit.stdout


def test_kubectl_runs_the_plugin(cluster: Cluster, workloads: str, kubectl_binary: Path) -> None:
    env = {**cluster.env(), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    plugin = run(str(kubectl_binary), "graceful", "explain", "deployment/worker", "-n",
                 workloads, "--width", "60", env=env)
    direct = run(GRACEFUL, "explain", "deployment/worker", "-n", workloads, "--width", "60",
                 env=cluster.env())
    assert plugin.returncode == 0, plugin.stderr
    assert "SIGKILL at 30s cuts the drain" in plugin.stdout
    assert plugin.stdout == direct.stdout


def test_audit_cluster_reports_the_mismatched_workload(
        cluster: Cluster, workloads: str) -> None:
    proc = run(GRACEFUL, "audit", "--cluster", "-n", workloads, env=cluster.env())
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("MISMATCH") and "Deployment/worker" in line for line in lines)
    assert any(line.startswith("PASS") and "Deployment/fit" in line for line in lines)
    assert "2 opted in: 1 compliant, 1 mismatched; 0 not opted in" in proc.stdout
    report = run(GRACEFUL, "audit", "--cluster", "-n", workloads, "-o", "json",
                 env=cluster.env())
    verdicts = {r["name"]: r["verdict"] for r in json.loads(report.stdout)["results"]}
    assert verdicts == {"worker": "MISMATCH", "fit": "PASS"}  # the Pods are the RS's, not listed
    everywhere = run(GRACEFUL, "audit", "--cluster", "-A", "-o", "json", env=cluster.env())
    assert everywhere.returncode == 1, everywhere.stderr
    found = {(r["namespace"], r["name"]): r["verdict"]
             for r in json.loads(everywhere.stdout)["results"]}
    assert found[(workloads, "worker")] == "MISMATCH"
    assert found[(workloads, "fit")] == "PASS"


def test_a_viewer_kubeconfig_is_enough(cluster: Cluster, workloads: str, viewer: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(viewer)}
    # no -n: the namespace of the kubeconfig's context, like kubectl
    explain = run(GRACEFUL, "explain", "deploy/worker", env=env)
    assert explain.returncode == 0, explain.stderr
    assert f"Deployment {workloads}/worker: policy apps (Audit)" in explain.stdout
    assert explain.stdout.count("STALE") == 2
    audit = run(GRACEFUL, "audit", "--cluster", "--kubeconfig", str(viewer),
                env=dict(os.environ))
    assert audit.returncode == 1, audit.stderr
    assert "1 mismatched" in audit.stdout


def test_errors_say_what_is_missing(cluster: Cluster, workloads: str, view_only: Path) -> None:
    forbidden = run(GRACEFUL, "explain", "deploy/worker", "--kubeconfig", str(view_only),
                    env=dict(os.environ))
    assert forbidden.returncode == 2
    assert ("forbidden: missing permission 'list' on 'gracefulpolicies.graceful.io'"
            f" in namespace {workloads}") in forbidden.stderr
    missing = run(GRACEFUL, "explain", "sts/nothing", "-n", workloads, env=cluster.env())
    assert missing.returncode == 2
    assert f"statefulset 'nothing' not found in namespace {workloads}" in missing.stderr


def test_a_cluster_policy_selects_by_the_live_namespace_labels(
        cluster: Cluster, kubectl: Kubectl, workloads: str, viewer: Path) -> None:
    """The namespace's labels are read from the cluster (a viewer may get its namespace)."""
    name = f"live-{uuid.uuid4().hex[:8]}"
    policy = {"apiVersion": "graceful.io/v1alpha1", "kind": "ClusterGracefulPolicy",
              "metadata": {"name": name},
              "spec": {**POLICY["spec"], "namespaceSelector": {"matchLabels": {"team": name}}}}
    kubectl("apply", "-f", "-", input=json.dumps(policy))
    try:
        batch = deployment("batch")
        batch["metadata"]["annotations"]["graceful.io/policy"] = f"cluster/{name}"
        kubectl("apply", "-n", workloads, "-f", "-", input=json.dumps(batch))
        env = {**os.environ, "KUBECONFIG": str(viewer)}
        before = run(GRACEFUL, "explain", "deploy/batch", env=env)
        assert before.returncode == 0, before.stderr
        assert f"policy 'cluster/{name}' not found in namespace {workloads}" in before.stdout
        kubectl("label", "namespace", workloads, f"team={name}")
        after = run(GRACEFUL, "explain", "deploy/batch", env=env)
        assert after.returncode == 0, after.stderr
        assert f"Deployment {workloads}/batch: policy cluster/{name} (Audit)" in after.stdout
    finally:
        kubectl("delete", "clustergracefulpolicy", name, check=False)



def test_a_job_and_a_bare_pod(cluster: Cluster, kubectl: Kubectl, workloads: str) -> None:
    """Batch Pods get G + M and no preStop; a bare Pod is its own template, and its only Pod.

    The test cluster runs no Job controller, so the Job has no Pods here.
    """
    annotations = {"graceful.io/policy": "apps", "graceful.io/graceful-timeout": "60"}
    pod_spec = {"restartPolicy": "Never",
                "containers": [{"name": "task", "image": "example/task:1"}]}
    kubectl("apply", "-n", workloads, "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once", "annotations": annotations},
        "spec": {"template": {"spec": pod_spec}}}))
    kubectl("apply", "-n", workloads, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "alone", "annotations": annotations}, "spec": pod_spec}))
    job = run(GRACEFUL, "explain", "job/once", "-n", workloads, env=cluster.env())
    assert job.returncode == 0, job.stderr
    assert f"Job {workloads}/once: policy apps (Audit)" in job.stdout
    assert "GracePeriodBelowBudget: grace period 30s < budget 70s" in job.stdout
    assert "running Pods: none" in job.stdout
    pod = run(GRACEFUL, "explain", "po/alone", "-n", workloads, env=cluster.env())
    assert pod.returncode == 0, pod.stderr
    assert "running Pods (1), against the template's budget:" in pod.stdout
    assert "  alone: does NOT carry the budget" in pod.stdout
    # a bare Pod is no batch Pod (only a Job's are): preStop and its seconds count
    assert ("terminationGracePeriodSeconds 30s (template: 75s); task preStop none"
            " (template: 5s)") in pod.stdout
    audit = run(GRACEFUL, "audit", "--cluster", "-n", workloads, "-o", "json", env=cluster.env())
    verdicts = {(r["kind"], r["name"]): r["verdict"] for r in json.loads(audit.stdout)["results"]}
    assert verdicts[("Job", "once")] == verdicts[("Pod", "alone")] == "MISMATCH"
