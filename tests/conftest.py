"""Shared fixtures: a real Kubernetes API server for every e2e test.

Backends, chosen once per session:

- default: the project's own local control plane (``testenv``),
  built from Go modules and started on loopback;
- ``GRACEFUL_TEST_KUBECONFIG=/path``: an existing cluster (kind, k3d, minikube
  or a real one); nothing is started or stopped;
- ``GRACEFUL_TEST_BACKEND=kind``: a cluster from pytest-kind, where installed.

Each test that asks for ``namespace`` gets a fresh namespace, deleted after.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testenv import ControlPlane
from testenv.build import find_kubectl


@dataclass
class Cluster:
    """What a test needs to reach the API server."""

    kubeconfig: Path
    server: str
    plane: ControlPlane | None = None

    def restart_apiserver(self, down_for: float = 0.0) -> None:
        if self.plane is None:
            pytest.fail("restarting kube-apiserver needs the local testenv backend")
        self.plane.restart_apiserver(down_for=down_for)

    def env(self) -> dict[str, str]:
        """The environment for a subprocess that should talk to this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


def _server_of(kubeconfig: Path) -> str:
    out = subprocess.run(
        [str(find_kubectl()), "--kubeconfig", str(kubeconfig), "config", "view", "--minify",
         "-o", "jsonpath={.clusters[0].cluster.server}"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    existing = os.environ.get("GRACEFUL_TEST_KUBECONFIG")
    if existing:
        path = Path(existing)
        yield Cluster(kubeconfig=path, server=_server_of(path))
        return
    if os.environ.get("GRACEFUL_TEST_BACKEND") == "kind":
        kind_cluster = request.getfixturevalue("kind_cluster")  # from pytest-kind
        path = Path(kind_cluster.kubeconfig_path)
        yield Cluster(kubeconfig=path, server=_server_of(path))
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    plane = ControlPlane(name=f"pytest-{worker}")
    plane.start()
    try:
        yield Cluster(kubeconfig=plane.kubeconfig, server=plane.server, plane=plane)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    """Run kubectl against the test cluster, the way a user would."""
    binary = str(find_kubectl())

    def run(*args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [binary, "--kubeconfig", str(cluster.kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)
