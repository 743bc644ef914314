"""A real node for the local cluster: containerd, runc, CNI, kube-proxy and a kubelet.

Why a real node: the product's promise is about what happens when a container
stops (preStop, SIGTERM, SIGKILL at the end of the grace period, probes,
sidecar order). Only a kubelet does those things, so the tests that are about
them watch a kubelet do them.

How it stays off the host:

- every process runs in the cluster's network namespace (:mod:`testenv.netns`);
- containerd, kubelet and kube-proxy share one private mount namespace,
  kept alive by a bind mount under the cluster's directory. kubelet and
  containerd must share it (kubelet mounts Pod volumes that containerd then
  binds into containers); in it, ``/run`` is a fresh tmpfs, ``/var/log`` and
  ``/var/lib/cni`` are the cluster's own directories, and the ``/proc/sys``
  files kubelet insists on rewriting show the values it wants, so the host's
  settings never change (see :data:`nodeconfig.KUBELET_SYSCTLS`);
- kubelet puts Pods under a cgroup root named after the cluster, which
  :meth:`Node.stop` removes in every hierarchy once their processes are gone;
- containerd's root, state and sockets and runc's root are under the
  cluster's directory; no system service is started.

:meth:`Node.stop` kills what the node left running (containers and their
shims outlive containerd by design) before it stops containerd, unmounts the
namespace and removes the cgroups.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from testenv import nodeconfig
from testenv.netns import NODE_IP
from testenv.nodeconfig import NodePaths
from testenv.process import Component, ComponentError, is_ours, stop_together

_CGROUP_BASE = Path("/sys/fs/cgroup")
_HOST_CNI_CACHE = Path("/var/lib/cni")

Launch = Callable[[str, list[str]], Component]


class Image(Protocol):
    """A locally built image: the name Pods use and its docker-archive tarball."""

    @property
    def name(self) -> str: ...

    @property
    def archive(self) -> Path: ...


class NodeError(RuntimeError):
    """The node could not be set up or torn down; the message says what to do."""


def _run(cmd: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise NodeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                        f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return proc.stdout


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, named ones, and cgroup2)."""
    found: list[Path] = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _dev, target, fstype, *_ = line.split()
        if fstype in ("cgroup", "cgroup2") and Path(target).is_relative_to(_CGROUP_BASE):
            found.append(Path(target))
    return found


def cgroup_dirs(name: str) -> list[Path]:
    """The cluster's cgroup directories that exist now, deepest first."""
    dirs: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name
        if top.is_dir():
            dirs.extend(p for p in top.rglob("*") if p.is_dir())
            dirs.append(top)
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for directory in cgroup_dirs(name):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
    return pids


def alive(pid: int) -> bool:
    """Running, not a zombie (this machine's PID 1 reaps orphans late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def kill_all(pids: Iterable[int], timeout: float = 10.0) -> None:
    pending = {pid for pid in pids if alive(pid)}
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if alive(pid)}
        time.sleep(0.05)


def processes_naming(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (the cluster's directory)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            pid = int(entry.name)
            if is_ours(pid, marker):
                found.append(pid)
    return found


def mounts_under(root: Path) -> list[Path]:
    """Mount points in this mount namespace at or under ``root``, deepest first."""
    points: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = Path(line.split()[4].replace("\\040", " "))
        if target == root or target.is_relative_to(root):
            points.append(target)
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def remove_cgroups(name: str, timeout: float = 15.0) -> None:
    """Kill what is left in the cluster's cgroups, then remove them leaf first."""
    deadline = time.monotonic() + timeout
    while True:
        kill_all(cgroup_pids(name), timeout=2.0)
        left = []
        for directory in cgroup_dirs(name):
            try:
                directory.rmdir()
            except OSError:
                left.append(directory)
        if not left:
            return
        if time.monotonic() > deadline:
            raise NodeError(f"could not remove cgroups {[str(p) for p in left[:5]]}")
        time.sleep(0.2)


@dataclass
class Node:
    """The node half of a cluster; :class:`testenv.controlplane.ControlPlane` drives it."""

    root: Path
    name: str
    paths: NodePaths = field(init=False)
    components: dict[str, Component] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = NodePaths(self.root)

    @property
    def cgroup_name(self) -> str:
        """The cgroup root of this node's Pods: the cluster directory's unique name."""
        return self.root.name

    # -- set-up ---------------------------------------------------------------

    def prepare(self, *, ca_file: Path, serving_cert: Path, serving_key: Path,
                node_kubeconfig: Path, proxy_kubeconfig: Path,
                healthz_port: int, proxy_ports: tuple[int, int]) -> None:
        """Write the configuration, create the cgroup root and the mount namespace."""
        p = self.paths
        for directory in (p.containerd_root, p.containerd_state, p.runc_root, p.cni_conf_dir,
                          p.cni_ipam_dir, p.cni_cache_dir, p.kubelet_root, p.var_log,
                          p.sysctl_dir, p.mount_ns_dir, p.host_path_dir):
            directory.mkdir(parents=True, exist_ok=True)
        p.containerd_config.write_text(nodeconfig.containerd_config(p))
        (p.cni_conf_dir / "10-graceful.conflist").write_text(nodeconfig.cni_config(p))
        p.resolv_conf.write_text("nameserver 127.0.0.1\noptions ndots:1\n")
        p.kubelet_config.write_text(nodeconfig.kubelet_config(
            p, ca_file=ca_file, serving_cert=serving_cert, serving_key=serving_key,
            cgroup_root=f"/{self.cgroup_name}", healthz_port=healthz_port,
        ))
        p.kube_proxy_config.write_text(nodeconfig.kube_proxy_config(
            kubeconfig=proxy_kubeconfig, node_name=self.name,
            healthz_port=proxy_ports[0], metrics_port=proxy_ports[1],
        ))
        self._node_kubeconfig = node_kubeconfig
        for key, value in nodeconfig.KUBELET_SYSCTLS.items():
            (p.sysctl_dir / key.replace("/", ".")).write_text(value + "\n")
        self._create_cgroup_root()
        self._create_mount_namespace()

    def _create_cgroup_root(self) -> None:
        for hierarchy in cgroup_hierarchies():
            top = hierarchy / self.cgroup_name
            top.mkdir(exist_ok=True)
            if (hierarchy / "cpuset.cpus").exists():  # a v1 cpuset starts empty: inherit
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (top / knob).write_text((hierarchy / knob).read_text())

    def _create_mount_namespace(self) -> None:
        p = self.paths
        _HOST_CNI_CACHE.mkdir(parents=True, exist_ok=True)  # a mount point; left empty
        # A namespace can be kept alive by a bind mount only on a private mount.
        _run(["mount", "--bind", str(p.mount_ns_dir), str(p.mount_ns_dir)])
        _run(["mount", "--make-private", str(p.mount_ns_dir)])
        p.mount_ns.touch()
        _run(["unshare", f"--mount={p.mount_ns}", "--propagation", "private",
              "sh", "-c", nodeconfig.MOUNT_SETUP], env=nodeconfig.mount_setup_env(p))

    def in_mount_ns(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the node's mount namespace."""
        return ["nsenter", f"--mount={self.paths.mount_ns}", "--", *argv]

    # -- start ----------------------------------------------------------------

    def start_containerd(self, launch: Launch) -> None:
        self.components["containerd"] = launch("containerd", self.in_mount_ns(
            ["containerd", "--config", str(self.paths.containerd_config), "--log-level", "warn"]))

    def containerd_ready(self) -> bool:
        if not self.paths.containerd_socket.exists():
            return False
        proc = subprocess.run(self.ctr("version"), capture_output=True, check=False)
        return proc.returncode == 0

    def ctr(self, *args: str) -> list[str]:
        """A ``ctr`` command line against this node's containerd, namespace ``k8s.io``."""
        return ["ctr", "--address", str(self.paths.containerd_socket), "--namespace", "k8s.io",
                *args]

    def start_kube_proxy(self, launch: Launch, binary: Path) -> None:
        self.components["kube-proxy"] = launch("kube-proxy", self.in_mount_ns(
            [str(binary), f"--config={self.paths.kube_proxy_config}", "--v=1"]))

    def start_kubelet(self, launch: Launch, binary: Path) -> None:
        self.components["kubelet"] = launch("kubelet", self.in_mount_ns([
            str(binary),
            f"--config={self.paths.kubelet_config}",
            f"--kubeconfig={self._node_kubeconfig}",
            f"--root-dir={self.paths.kubelet_root}",
            f"--cert-dir={self.paths.kubelet_root / 'pki'}",
            f"--hostname-override={self.name}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ]))

    # -- stop -----------------------------------------------------------------

    def stop(self, others: Sequence[Component] = ()) -> None:
        """Stop kubelet, kill the Pods' processes and shims, stop the rest, clean up.

        ``others`` are control-plane components to stop together with the
        node's own after the Pods are gone (so no controller reacts to it).
        """
        marker = str(self.root)
        kubelet = self.components.pop("kubelet", None)
        if kubelet is not None:
            kubelet.stop()
        kill_all(cgroup_pids(self.cgroup_name))
        shims = [pid for pid in processes_naming(marker)
                 if "containerd-shim" in _cmdline(pid)]
        kill_all(shims)
        stop_together([*self.components.values(), *others])
        self.components.clear()
        kill_all(processes_naming(marker))  # anything still naming the cluster
        self._remove_mount_namespace()
        remove_cgroups(self.cgroup_name)

    def _remove_mount_namespace(self) -> None:
        for point in mounts_under(self.paths.base):
            subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)

    def to_state(self) -> dict[str, Any]:
        return {"name": self.name}


def load_images(images: Sequence[Image], node: Node) -> None:
    """Import the images into the node's containerd, where the CRI sees them.

    There is no registry: Pods use these with ``imagePullPolicy: IfNotPresent``
    or ``Never``.
    """
    from testenv.images import load  # noqa: PLC0415 - image tools only with a node

    load(images, address=node.paths.containerd_socket)  # type: ignore[arg-type]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def leftovers(root: Path, netns_name: str | None) -> list[str]:
    """Everything a stopped cluster may have left behind; empty when it left nothing."""
    found: list[str] = []
    marker = str(root)
    found += [f"process {pid}: {_cmdline(pid)[:120]}" for pid in processes_naming(marker)]
    found += [f"mount {point}" for point in mounts_under(root)]
    found += [f"cgroup {d}" for d in cgroup_dirs(root.name)]
    if root.exists():
        found.append(f"directory {root}")
    if netns_name is not None and Path(f"/run/netns/{netns_name}").exists():
        found.append(f"network namespace {netns_name}")
    return found


def wait_ready(check: Callable[[], bool], *, what: str, timeout: float,
               component: Component | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component is not None:
            code = component.exit_code()
            if code is not None:
                raise ComponentError(component.name, f"exited with status {code} while starting",
                                     component.log)
        if check():
            return
        time.sleep(0.1)
    if component is not None:
        raise ComponentError(component.name, f"{what}: not ready in {timeout:.0f}s",
                             component.log)
    raise NodeError(f"{what}: not ready in {timeout:.0f}s")
