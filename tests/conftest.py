"""Shared fixtures: a real Kubernetes API server for every e2e test.

Backends, chosen once per session:

- default: the project's own local control plane (``testenv``),
  built from Go modules and started on loopback;
- ``GRACEFUL_TEST_KUBECONFIG=/path``: an existing cluster (kind, k3d, minikube
  or a real one); nothing is started or stopped;
- ``GRACEFUL_TEST_BACKEND=kind``: a cluster from pytest-kind, where installed.

Each test that asks for ``namespace`` gets a fresh namespace, deleted after.

Tests marked ``node`` run on a cluster with a real node (``node_cluster``):
kubelet, containerd, CNI and kube-proxy in a network namespace of its own.
When such tests are collected, the session builds the node's images (they
need the package registries, so first), then moves this process into a new
network namespace before any test runs, so that every test, every cluster
and every process they start share it; it is removed at the end. The node
needs root: without it the node tests fail with that reason, never skip.

A node test that needs images of its own names their builders with
``pytest.mark.node_images.with_args(build, ...)`` (``with_args``: pytest
takes a mark called with one callable as decorating it): each ``build(progress)`` returns an
image; they are built with the node's images, before the namespace is
entered (they may need the package registries too), and the node loads them.
"""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testenv import ControlPlane
from testenv.build import find_helm, find_kubectl
from testenv.netns import NetworkNamespace

_NODE_NETNS = pytest.StashKey[NetworkNamespace]()
_NODE_IMAGES = pytest.StashKey[list[object]]()
_NODE_ERROR = pytest.StashKey[str]()


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


def _external_backend() -> bool:
    return bool(os.environ.get("GRACEFUL_TEST_KUBECONFIG")) or (
        os.environ.get("GRACEFUL_TEST_BACKEND") == "kind")


def _extra_image_builders(items: list[pytest.Item]) -> list[Callable[..., object]]:
    """The builders named by ``node_images`` markers of the collected items, each once, in order."""
    builders: list[Callable[..., object]] = []
    for item in items:
        for marker in item.iter_markers("node_images"):
            for build in marker.args:
                if not callable(build):
                    raise pytest.UsageError(f"{item.nodeid}: node_images takes image builders,"
                                            f" got {build!r}")
                if build not in builders:
                    builders.append(build)
    return builders


def pytest_collection_finish(session: pytest.Session) -> None:
    """Prepare the node (images, network namespace) once, if a node test was collected."""
    if session.config.option.collectonly or not any(
            item.get_closest_marker("node") for item in session.items):
        return
    stash = session.config.stash
    if _external_backend():
        stash[_NODE_ERROR] = ("node tests run on the local node only; unset "
                              "GRACEFUL_TEST_KUBECONFIG / GRACEFUL_TEST_BACKEND or deselect "
                              "them with -m 'not node'")
        return
    if os.geteuid() != 0:
        stash[_NODE_ERROR] = "node tests need root (containerd, kubelet, network namespaces)"
        return
    if threading.active_count() != 1:
        others = sorted(t.name for t in threading.enumerate() if t is not threading.main_thread())
        stash[_NODE_ERROR] = ("a thread started before the node's network namespace was entered"
                              f" (started while collecting: {', '.join(others)})")
        return
    from testenv.nodecluster import enter_new_netns, node_images  # noqa: PLC0415

    def progress(msg: str) -> None:
        print(f"node images: {msg}", flush=True)

    try:
        if any("helm" in getattr(item, "fixturenames", ()) for item in session.items):
            find_helm(progress)  # built (if need be) while the Go module proxy is reachable
        stash[_NODE_IMAGES] = node_images(progress) + [
            build(progress) for build in _extra_image_builders(session.items)]
        # Keep a handle on the host's namespace: the few steps that need a package
        # index (building a pip image) run there with `nsenter --net=$GRACEFUL_HOST_NETNS`.
        host = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        os.environ["GRACEFUL_HOST_NETNS"] = f"/proc/{os.getpid()}/fd/{host}"
        stash[_NODE_NETNS] = enter_new_netns(f"graceful-pytest-{os.getpid()}")
    except Exception as exc:  # reported by the node fixture, so every node test fails with it
        stash[_NODE_ERROR] = f"could not prepare the node: {exc}"


def pytest_unconfigure(config: pytest.Config) -> None:
    namespace = config.stash.get(_NODE_NETNS, None)
    if namespace is not None:
        namespace.delete()


@pytest.fixture(scope="session")
def node_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A cluster with one real node, shared by the session's node tests."""
    stash = request.config.stash
    error = stash.get(_NODE_ERROR, None)
    if error is not None:
        pytest.fail(error)
    if _NODE_NETNS not in stash:
        pytest.fail("node_cluster is for tests marked `node` (@pytest.mark.node)")
    yield from _running(ControlPlane(name="pytest-node", node=True,
                                     netns=stash[_NODE_NETNS].name,
                                     images=stash[_NODE_IMAGES]))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def node_kubectl(node_cluster: Cluster) -> Kubectl:
    """kubectl against the node cluster."""
    return _kubectl_for(node_cluster)


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
    yield from _running(ControlPlane(name=f"pytest-{worker}"))


def _running(plane: ControlPlane) -> Iterator[Cluster]:
    """Start ``plane``, hand out its :class:`Cluster`, and stop it however the session ends."""
    plane.start()
    try:
        yield Cluster(kubeconfig=plane.kubeconfig, server=plane.server, plane=plane)
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Kubectl:
    """Run kubectl against the test cluster, the way a user would."""
    return _kubectl_for(cluster)


def _kubectl_for(cluster: Cluster) -> Kubectl:
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


class Helm:
    """The pinned helm (built from Go modules), with a private home and an optional cluster.

    helm keeps repositories, plugins and caches under its home directories; a
    directory of the session keeps the machine's own configuration out of the
    tests and the tests out of it.
    """

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.home = home

    def __call__(self, *args: str, kubeconfig: Path | None = None, check: bool = True,
                 timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "HELM_CONFIG_HOME": str(self.home / "config"),
               "HELM_CACHE_HOME": str(self.home / "cache"),
               "HELM_DATA_HOME": str(self.home / "data")}
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                              env=env, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm at the release pinned in testenv/versions.py (built once per machine)."""
    return Helm(find_helm(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    return find_kubectl()


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)
