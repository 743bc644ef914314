"""The local control plane itself: real components, real RBAC, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testenv import ComponentError, ControlPlane, PortInUseError, Ports, versions
from testenv.process import is_ours
from tests.conftest import Cluster, Kubectl

pytestmark = pytest.mark.e2e


def _alive(plane_root: str, pids: list[int]) -> list[int]:
    return [pid for pid in pids if is_ours(pid, plane_root)]


def test_version_is_the_pinned_release(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == versions.KUBERNETES
    assert version["minor"] == versions.KUBERNETES.split(".")[1]


def test_deployment_becomes_replicaset_and_pods(kubectl: Kubectl, namespace: str) -> None:
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    deadline = time.monotonic() + 10
    pods: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
        if len(pods) == 2:
            break
        time.sleep(0.2)
    assert len(pods) == 2, "kube-controller-manager did not create 2 pods within 10 s"
    rs = json.loads(kubectl("get", "replicasets", "-n", namespace, "-o", "json").stdout)["items"]
    assert len(rs) == 1
    assert rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"


def test_rbac_is_real(kubectl: Kubectl, namespace: str) -> None:
    sa = f"system:serviceaccount:{namespace}:default"
    denied = kubectl("auth", "can-i", "create", "deployments", "-n", namespace, "--as", sa,
                     check=False)
    assert denied.stdout.strip() == "no"
    assert kubectl("auth", "can-i", "create", "deployments", "-n", namespace).stdout.strip() \
        == "yes"
    kubectl("create", "rolebinding", "edit", "--clusterrole=edit",
            f"--serviceaccount={namespace}:default", "-n", namespace)
    # The RBAC authorizer sees the new binding through its informer: poll briefly.
    deadline = time.monotonic() + 10
    answer = ""
    while time.monotonic() < deadline and answer != "yes":
        answer = kubectl("auth", "can-i", "create", "deployments", "-n", namespace, "--as", sa,
                         check=False).stdout.strip()
        time.sleep(0.1)
    assert answer == "yes"


def test_start_stop_leaves_nothing_behind(cluster: Cluster) -> None:
    # The session cluster built the binaries, so this is a warm start.
    started = time.monotonic()
    plane = ControlPlane(name="lifecycle").start()
    elapsed = time.monotonic() - started
    root = str(plane.root)
    pids = [c.pid for c in plane.components.values()]
    assert len(pids) == 3
    assert _alive(root, pids) == pids
    plane.stop()
    assert _alive(root, pids) == []
    assert not Path(root).exists()
    print(f"\nwarm start took {elapsed:.1f}s")  # a figure, not a bound: CI machines are loaded


def test_two_clusters_at_once(cluster: Cluster, kubectl: Kubectl) -> None:
    other = ControlPlane(name="second").start()
    try:
        assert other.server != cluster.server
        kubectl("create", "namespace", "only-in-first")
        out = subprocess.run(
            ["kubectl", "--kubeconfig", str(other.kubeconfig), "get", "namespace",
             "only-in-first"], capture_output=True, text=True, check=False,
        )
        assert out.returncode != 0 and "NotFound" in out.stderr
    finally:
        other.stop()
        kubectl("delete", "namespace", "only-in-first", "--wait=false", check=False)


def test_component_that_dies_is_reported_with_its_log(cluster: Cluster) -> None:
    plane = ControlPlane(name="crash").start()
    try:
        victim = plane.components["kube-controller-manager"]
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        with pytest.raises(ComponentError) as info:
            while time.monotonic() < deadline:
                plane.check()
                time.sleep(0.05)
        assert info.value.name == "kube-controller-manager"
        assert "exited with status" in str(info.value)
        assert "last lines of" in str(info.value) and info.value.tail.strip()
    finally:
        root = plane.root
        plane.stop()
    assert not root.exists()


def test_port_already_in_use_is_a_clear_error(cluster: Cluster) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = Ports.choose()
        ports.apiserver = taken
        plane = ControlPlane(name="busy", ports=ports)
        with pytest.raises(PortInUseError) as info:
            plane.start(timeout=60)
    assert info.value.name == "kube-apiserver"
    assert "address already in use" in info.value.tail
    assert plane.components == {}
    assert not plane.root.exists()


def test_graceful_cluster_command(cluster: Cluster, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "graceful.cli", "cluster"]
    started = time.monotonic()
    up = subprocess.run([*cli, "up", "--name", "clitest"], env=env, capture_output=True,
                        text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    assert up.returncode == 0, up.stderr
    export = up.stdout.strip()
    assert export.startswith("export KUBECONFIG=")
    kubeconfig = export.removeprefix("export KUBECONFIG=")
    print(f"\nwarm `graceful cluster up` took {elapsed:.1f}s")  # a figure, not a bound
    state = json.loads((tmp_path / "graceful" / "clusters" / "clitest.json").read_text())
    pids = [int(c["pid"]) for c in state["components"].values()]
    try:
        status = subprocess.run([*cli, "status", "--name", "clitest"], env=env,
                                capture_output=True, text=True, check=False)
        assert status.returncode == 0 and status.stdout.count("running") == 3
        path = subprocess.run([*cli, "kubeconfig", "--name", "clitest"], env=env,
                              capture_output=True, text=True, check=True)
        assert path.stdout.strip() == kubeconfig
        nodes = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", "ns", "default"],
                               capture_output=True, text=True, check=False)
        assert nodes.returncode == 0, nodes.stderr
    finally:
        down = subprocess.run([*cli, "down", "--name", "clitest"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    assert _alive(state["root"], pids) == []
    assert not Path(state["root"]).exists()
    assert not (tmp_path / "graceful" / "clusters" / "clitest.json").exists()
    again = subprocess.run([*cli, "status", "--name", "clitest"], env=env,
                           capture_output=True, text=True, check=False)
    assert again.returncode == 1 and "not running" in again.stdout
