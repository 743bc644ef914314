"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Why a real API server and not a fake: what this project does happens inside
the API server (CRD schema and CEL validation, the admission chain calling the
webhook over TLS, watches, status subresources, RBAC). A fake would test our
beliefs about Kubernetes instead of Kubernetes.

Why no kubelet: there is no container runtime on CI machines, and none is
needed. kube-controller-manager turns Deployments into ReplicaSets and Pods, so
Pods exist as API objects (Pending), which is everything admission and audit
look at.

Every cluster lives in its own temporary directory (certificates, etcd data,
logs, kubeconfig) with ports chosen at start, so several clusters can run at
once. :meth:`ControlPlane.stop` ends exactly the processes it started, by PID,
and removes the directory.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testenv import kubeconfig as kubeconfigs
from testenv import pki
from testenv.build import Binaries, Progress, ensure_binaries
from testenv.ports import free_port, is_listening
from testenv.process import Component, ComponentError, stop_together

SERVICE_CIDR = "10.0.0.0/24"
#: The controllers a workload needs, and nothing that needs a kubelet or a cloud.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    # admin/edit/view are aggregated ClusterRoles: without this they grant nothing.
    "clusterrole-aggregation-controller",
)
ADMISSION_PLUGINS = (
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "DefaultTolerationSeconds",
    "ResourceQuota",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
)
_BIND_FAILURE_HINTS = ("address already in use", "bind: ")
_START_ATTEMPTS = 3


class PortInUseError(ComponentError):
    """A component could not bind its port."""


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    @classmethod
    def choose(cls) -> Ports:
        chosen: set[int] = set()
        while len(chosen) < 4:
            chosen.add(free_port())
        a, b, c, d = sorted(chosen)
        return cls(a, b, c, d)


@dataclass
class ControlPlane:
    """One local cluster. Use :func:`running` in tests, or start()/stop() by hand.

    ``tied_to_parent`` makes Linux stop the components when this Python process
    dies (right for tests); ``graceful cluster up`` turns it off so the cluster
    outlives the command.
    """

    name: str = "graceful"
    binaries: Binaries | None = None
    ports: Ports | None = None
    tied_to_parent: bool = True
    progress: Progress = field(default=lambda _msg: None)
    root: Path = field(default_factory=Path)
    components: dict[str, Component] = field(default_factory=dict)

    # -- paths ---------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in group ``system:masters``)."""
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        assert self.ports is not None
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 90.0) -> ControlPlane:
        """Start every component and wait until the cluster can run workloads."""
        binaries = self.binaries or ensure_binaries(self.progress)
        self.binaries = binaries
        fixed_ports = self.ports is not None
        for attempt in range(1, _START_ATTEMPTS + 1):
            if not fixed_ports:
                self.ports = Ports.choose()
            self.root = Path(tempfile.mkdtemp(prefix=f"graceful-{self.name}-"))
            try:
                self._start_once(timeout)
                return self
            except PortInUseError:
                self.stop()
                if fixed_ports or attempt == _START_ATTEMPTS:
                    raise
                self.progress(f"a port was taken while starting; retrying ({attempt})")
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        assert self.ports is not None and self.binaries is not None
        deadline = time.monotonic() + timeout
        self._write_pki()
        self.progress("starting etcd")
        self._launch("etcd", self._etcd_argv())
        self._wait(deadline, "etcd", self._etcd_healthy)
        self.progress("starting kube-apiserver")
        self._launch("kube-apiserver", self._apiserver_argv())
        self._wait(deadline, "kube-apiserver", self._apiserver_ready)
        self.progress("starting kube-controller-manager")
        self._launch("kube-controller-manager", self._controller_manager_argv())
        self._wait(deadline, "kube-controller-manager", self._controllers_working)

    def stop(self) -> None:
        """Stop the components (reverse order) and remove the cluster's directory."""
        # Clients of etcd first (together), etcd last, so nothing logs a lost backend.
        clients = [c for name, c in self.components.items() if name != "etcd"]
        stop_together(clients)
        if "etcd" in self.components:
            self.components["etcd"].stop()
        self.components.clear()
        if self.root != Path() and self.root.name.startswith(f"graceful-{self.name}-"):
            shutil.rmtree(self.root, ignore_errors=True)

    def restart_apiserver(self, *, down_for: float = 0.0, timeout: float = 60.0) -> None:
        """Stop kube-apiserver, keep it down for ``down_for`` seconds, start it again.

        Clients see exactly what a control-plane upgrade looks like: connections
        drop, watches end, and the same endpoint comes back with the same data.
        """
        component = self.components["kube-apiserver"]
        component.stop()
        time.sleep(down_for)
        self._launch("kube-apiserver", self._apiserver_argv())
        self._wait(time.monotonic() + timeout, "kube-apiserver", self._apiserver_ready)

    def check(self) -> None:
        """Raise :class:`ComponentError` with its log tail if any component died."""
        for component in self.components.values():
            component.check()

    # -- internals -----------------------------------------------------------

    def _launch(self, name: str, argv: list[str]) -> None:
        component = Component(
            name=name,
            argv=argv,
            log=self.root / "logs" / f"{name}.log",
            marker=str(self.root),
            tied_to_parent=self.tied_to_parent,
        )
        component.start()
        self.components[name] = component

    def _wait(self, deadline: float, name: str, ready: Any) -> None:
        component = self.components[name]
        while time.monotonic() < deadline:
            code = component.exit_code()
            if code is not None:
                error = ComponentError(name, f"exited with status {code} while starting",
                                       component.log)
                if any(h in error.tail for h in _BIND_FAILURE_HINTS):
                    raise PortInUseError(name, f"could not bind its port (exit {code})",
                                         component.log)
                raise error
            if ready():
                return
            time.sleep(0.1)
        raise ComponentError(name, "did not become ready in time", component.log)

    def _write_pki(self) -> None:
        ca = pki.CertificateAuthority.create(f"graceful-{self.name}-ca")
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(ca.cert_pem)
        ca.issue(
            "kube-apiserver",
            hosts=["127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default",
                   "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
            server=True,
        ).write(self.pki_dir, "apiserver")
        admin = ca.issue("graceful-admin", organizations=["system:masters"], client=True)
        admin.write(self.pki_dir, "admin")
        kcm = ca.issue("system:kube-controller-manager", client=True)
        pki.service_account_keys().write(self.pki_dir, "sa")
        (self.pki_dir / "sa.crt").rename(self.pki_dir / "sa.pub")
        self.kubeconfig.write_text(kubeconfigs.render(
            name=f"graceful-{self.name}", server=self.server, ca_pem=ca.cert_pem,
            cert_pem=admin.cert_pem, key_pem=admin.key_pem, user="graceful-admin",
        ))
        self.kubeconfig.chmod(0o600)
        kcm_config = self.root / "kube-controller-manager.kubeconfig"
        kcm_config.write_text(kubeconfigs.render(
            name=f"graceful-{self.name}", server=self.server, ca_pem=ca.cert_pem,
            cert_pem=kcm.cert_pem, key_pem=kcm.key_pem, user="system:kube-controller-manager",
        ))
        kcm_config.chmod(0o600)

    def _client(self) -> kubeconfigs.ApiClient:
        return kubeconfigs.ApiClient(
            self.server, self.ca_file, self.pki_dir / "admin.crt", self.pki_dir / "admin.key"
        )

    def _etcd_argv(self) -> list[str]:
        assert self.ports is not None and self.binaries is not None
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        return [
            str(self.binaries.etcd),
            "--name=default",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _etcd_healthy(self) -> bool:
        assert self.ports is not None
        return is_listening(self.ports.etcd_client)

    def _apiserver_argv(self) -> list[str]:
        assert self.ports is not None and self.binaries is not None
        p = self.pki_dir
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--cert-dir={self.root / 'apiserver'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]

    def _apiserver_ready(self) -> bool:
        status, body = self._client().get("/readyz")
        return status == 200 and body.strip() == "ok"

    def _controller_manager_argv(self) -> list[str]:
        assert self.ports is not None and self.binaries is not None
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={self.root / 'kube-controller-manager.kubeconfig'}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
            f"--root-ca-file={self.ca_file}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.controller_manager}",
            f"--cert-dir={self.root / 'controller-manager'}",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ]

    def _controllers_working(self) -> bool:
        """The serviceaccount controller has created ``default/default``."""
        found = self._client().get_json("/api/v1/namespaces/default/serviceaccounts/default")
        return found is not None

    # -- state for `graceful cluster` -----------------------------------------

    def to_state(self) -> dict[str, Any]:
        assert self.ports is not None
        return {
            "name": self.name,
            "root": str(self.root),
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "ports": vars(self.ports),
            "components": {n: {"pid": c.pid, "log": str(c.log)}
                           for n, c in self.components.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ControlPlane:
        plane = cls(name=state["name"], ports=Ports(**state["ports"]), tied_to_parent=False,
                    root=Path(state["root"]))
        for name, info in state["components"].items():
            plane.components[name] = Component(
                name=name, argv=(), log=Path(info["log"]), marker=state["root"],
                tied_to_parent=False, pid=int(info["pid"]),
            )
        return plane

    def write_state(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_state(), indent=2))


@contextlib.contextmanager
def running(name: str = "test", progress: Progress = lambda _m: None,
            ports: Ports | None = None) -> Iterator[ControlPlane]:
    """A started control plane for the duration of a ``with`` block."""
    plane = ControlPlane(name=name, progress=progress, ports=ports)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()
