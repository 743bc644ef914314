"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

Why a real API server and not a fake: what this project does happens inside
the API server (CRD schema and CEL validation, the admission chain calling the
webhook over TLS, watches, status subresources, RBAC). A fake would test our
beliefs about Kubernetes instead of Kubernetes.

Without a node (the default) there is no kubelet: kube-controller-manager
turns Deployments into ReplicaSets and Pods, so Pods exist as API objects
(Pending), which is everything admission and audit look at, and nothing needs
root. With ``node=True`` the cluster also gets kube-scheduler, containerd, CNI,
kube-proxy and a kubelet (:mod:`testenv.node`), all inside a network
namespace of its own (:mod:`testenv.netns`) that the calling process must
already have entered; Pods then really run, and really stop.

Every cluster lives in its own temporary directory (certificates, etcd data,
logs, kubeconfig) with ports chosen at start, so several clusters can run at
once. :meth:`ControlPlane.stop` ends exactly the processes it started, by PID,
and removes the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testenv import kubeconfig as kubeconfigs
from testenv import netns, pki
from testenv.build import Binaries, Progress, ensure_binaries
from testenv.netns import NODE_IP, SERVICE_CIDR
from testenv.node import Image, Node, NodeError, load_images
from testenv.ports import free_port, is_listening
from testenv.process import Component, ComponentError, stop_together

#: The ``kubernetes`` Service's ClusterIP: the first address of SERVICE_CIDR.
KUBERNETES_SERVICE_IP = "10.0.0.1"
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
#: What a node needs on top: the not-ready taint lifted (node-lifecycle), the CA
#: every service-account token volume mounts (root-ca publisher), Service
#: endpoints, finished Pods collected, PodDisruptionBudgets, Jobs and CronJobs.
NODE_CONTROLLERS = (
    "node-lifecycle-controller",
    "root-ca-certificate-publisher-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "pod-garbage-collector-controller",
    "ttl-controller",
    "disruption-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
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
#: With a node, kubelets may change only their own Node and Pods.
NODE_ADMISSION_PLUGINS = ("NodeRestriction",)
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
    scheduler: int = 0
    kubelet_healthz: int = 0
    proxy_healthz: int = 0
    proxy_metrics: int = 0

    @classmethod
    def choose(cls) -> Ports:
        chosen: set[int] = set()
        while len(chosen) < 8:
            chosen.add(free_port())
        return cls(*sorted(chosen))


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
    #: Start a node too; the calling thread must be inside network namespace ``netns``.
    node: bool = False
    netns: str | None = None
    #: Loaded into the node's containerd before kubelet starts (the sandbox image first).
    images: Sequence[Image] = ()
    node_part: Node | None = None

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
    def node_name(self) -> str:
        return f"{self.name}-node"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 90.0) -> ControlPlane:
        """Start every component and wait until the cluster can run workloads."""
        if self.node:  # loading images and starting a kubelet on a loaded machine take longer
            timeout = max(timeout, 300.0)
        binaries = self.binaries or ensure_binaries(self.progress, node=self.node)
        self.binaries = binaries
        if self.node:
            self._check_node_prerequisites()
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
        if self.node:
            self._start_node(deadline)

    def _check_node_prerequisites(self) -> None:
        if os.geteuid() != 0:
            raise NodeError("a cluster with a node needs root (containerd, kubelet, mounts)")
        if self.netns is None or not netns.current_is(self.netns):
            raise NodeError(
                f"a cluster with a node must be started from inside its network namespace "
                f"({self.netns!r}); create it with testenv.netns.NetworkNamespace.create() "
                "and enter() it first")
        missing = [tool for tool in ("containerd", "containerd-shim-runc-v2", "runc", "ctr",
                                     "iptables", "nsenter", "unshare")
                   if shutil.which(tool) is None]
        if not Path("/usr/lib/cni/bridge").exists():
            missing.append("/usr/lib/cni/bridge")
        if missing:
            raise NodeError(
                f"the node needs {', '.join(missing)}: apt-get install -y containerd runc "
                "containernetworking-plugins iptables util-linux (./scripts/bootstrap does it)")

    def _start_node(self, deadline: float) -> None:
        assert self.ports is not None and self.binaries is not None
        assert self.binaries.kubelet is not None and self.binaries.kube_proxy is not None
        assert self.binaries.kube_scheduler is not None
        node = Node(root=self.root, name=self.node_name)
        self.node_part = node
        node.prepare(
            ca_file=self.ca_file, serving_cert=self.pki_dir / "kubelet-serving.crt",
            serving_key=self.pki_dir / "kubelet-serving.key",
            node_kubeconfig=self.root / "kubelet.kubeconfig",
            proxy_kubeconfig=self.root / "kube-proxy.kubeconfig",
            healthz_port=self.ports.kubelet_healthz,
            proxy_ports=(self.ports.proxy_healthz, self.ports.proxy_metrics),
        )
        self.progress("starting kube-scheduler")
        self._launch("kube-scheduler", self._scheduler_argv())
        self.progress("starting containerd")
        node.start_containerd(self._launch)
        self._wait(deadline, "containerd", node.containerd_ready)
        if self.images:
            self.progress(f"loading {len(self.images)} images into containerd")
            load_images(self.images, node)
        self.progress("starting kube-proxy")
        node.start_kube_proxy(self._launch, self.binaries.kube_proxy)
        self.progress("starting kubelet")
        node.start_kubelet(self._launch, self.binaries.kubelet)
        self._wait(deadline, "kubelet", self._node_ready)

    def _node_ready(self) -> bool:
        """The Node is Ready and node-lifecycle-controller has lifted its not-ready taint."""
        found = self._client().get_json(f"/api/v1/nodes/{self.node_name}")
        if found is None:
            return False
        conditions = {c.get("type"): c.get("status")
                      for c in found.get("status", {}).get("conditions", [])}
        taints = [t.get("key") for t in found.get("spec", {}).get("taints", []) or []]
        return conditions.get("Ready") == "True" and not any(
            str(key).startswith("node.kubernetes.io/") for key in taints)

    def stop(self) -> None:
        """Stop the components (reverse order) and remove the cluster's directory."""
        # Clients of etcd first (together), etcd last, so nothing logs a lost backend.
        clients = [c for name, c in self.components.items() if name != "etcd"]
        if self.node_part is not None or self.node:
            node = self.node_part or Node(root=self.root, name=self.node_name)
            for name in ("containerd", "kubelet", "kube-proxy"):
                if name in self.components:
                    node.components[name] = self.components[name]
            clients = [c for c in clients if c not in node.components.values()]
            node.stop(others=clients)
            clients = []
            self.node_part = None
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

    def _launch(self, name: str, argv: list[str]) -> Component:
        component = Component(
            name=name,
            argv=argv,
            log=self.root / "logs" / f"{name}.log",
            marker=str(self.root),
            tied_to_parent=self.tied_to_parent,
        )
        component.start()
        self.components[name] = component
        return component

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
        node_hosts = [NODE_IP] if self.node else []
        ca.issue(
            "kube-apiserver",
            hosts=["127.0.0.1", "localhost", KUBERNETES_SERVICE_IP, *node_hosts, "kubernetes",
                   "kubernetes.default", "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local"],
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
        if self.node:
            self._write_node_pki(ca)

    def _write_node_pki(self, ca: pki.CertificateAuthority) -> None:
        """Identities of a node: kubelet (serving and as ``system:node:NAME``), the
        scheduler, kube-proxy, and the API server's client for kubelet's API."""
        ca.issue("kube-apiserver-kubelet-client", organizations=["system:masters"],
                 client=True).write(self.pki_dir, "apiserver-kubelet-client")
        ca.issue(self.node_name, hosts=[NODE_IP, self.node_name], server=True).write(
            self.pki_dir, "kubelet-serving")
        for stem, user, groups in (
            ("kubelet", f"system:node:{self.node_name}", ["system:nodes"]),
            ("kube-scheduler", "system:kube-scheduler", []),
            ("kube-proxy", "system:kube-proxy", []),
        ):
            pair = ca.issue(user, organizations=groups, client=True)
            path = self.root / f"{stem}.kubeconfig"
            path.write_text(kubeconfigs.render(
                name=f"graceful-{self.name}", server=self.server, ca_pem=ca.cert_pem,
                cert_pem=pair.cert_pem, key_pem=pair.key_pem, user=user,
            ))
            path.chmod(0o600)

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
        plugins = ADMISSION_PLUGINS + (NODE_ADMISSION_PLUGINS if self.node else ())
        if self.node:
            # Pods reach the API server through the `kubernetes` Service, whose
            # endpoint is the advertised node IP; kubectl logs/exec reach kubelet.
            reachable = [
                "--bind-address=0.0.0.0",
                f"--advertise-address={NODE_IP}",
                "--authorization-mode=Node,RBAC",
                "--endpoint-reconciler-type=lease",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={self.ca_file}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        else:
            reachable = [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--authorization-mode=RBAC",
                "--endpoint-reconciler-type=none",
            ]
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            *reachable,
            f"--secure-port={self.ports.apiserver}",
            f"--cert-dir={self.root / 'apiserver'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--enable-admission-plugins={','.join(plugins)}",
            "--allow-privileged=true",
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
            f"--controllers={','.join(CONTROLLERS + (NODE_CONTROLLERS if self.node else ()))}",
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

    def _scheduler_argv(self) -> list[str]:
        assert self.ports is not None and self.binaries is not None
        assert self.binaries.kube_scheduler is not None
        kubeconfig = self.root / "kube-scheduler.kubeconfig"
        return [
            str(self.binaries.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.scheduler}",
            f"--cert-dir={self.root / 'scheduler'}",
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
            "node": self.node,
            "netns": self.netns,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ControlPlane:
        plane = cls(name=state["name"], ports=Ports(**state["ports"]), tied_to_parent=False,
                    root=Path(state["root"]), node=bool(state.get("node")),
                    netns=state.get("netns"))
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
