"""The configuration files of a local node: containerd, CNI, kubelet, kube-proxy.

Pure functions of a :class:`NodePaths` and a few names, so that every choice
is visible in one place and unit-tested without starting anything. The
choices that are not Kubernetes' defaults, and why:

- containerd's root, state, sockets and runc's root live under the cluster's
  directory, and ``restrict_oom_score_adj`` is on: root here lacks
  ``CAP_SYS_RESOURCE``, so nothing may lower an ``oom_score_adj`` (without it
  every sandbox fails with ``can't get final child's PID from pipe: EOF``).
- the sandbox ("pause") image is a local one: there is no registry.
- kubelet: ``cgroupDriver: cgroupfs`` on these cgroup v1 machines with
  ``failCgroupV1: false``; a ``cgroupRoot`` of its own per cluster so two
  nodes on one machine never clean up each other's Pods; image garbage
  collection off (an image deleted here cannot be pulled again); eviction
  thresholds low (a test machine's disk is not a production node's); Pods
  resolve through ``nameserver 127.0.0.1``, their own loopback, never the
  host's resolver.
- kube-proxy: iptables mode inside the node's namespace; it leaves the
  conntrack sysctls alone (they are global, not the namespace's) and
  masquerades Service traffic, so replies between two Pods on the one bridge
  return through the node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testenv.netns import NODE_IP, POD_CIDR

#: The Pod sandbox image; built locally and loaded before kubelet starts.
PAUSE_IMAGE = "graceful.local/pause:1"
#: What kubelet checks in ``/proc/sys`` and rewrites when it differs. The node's
#: private mount namespace shows it these values, so the host's never change.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


@dataclass(frozen=True)
class NodePaths:
    """Every file and directory of one node, all under the cluster's directory."""

    root: Path

    @property
    def base(self) -> Path:
        return self.root / "node"

    @property
    def containerd_root(self) -> Path:
        return self.base / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.base / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.base / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.base / "containerd" / "config.toml"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.base / "cni" / "ipam"

    @property
    def cni_cache_dir(self) -> Path:
        return self.base / "cni" / "cache"

    @property
    def kubelet_root(self) -> Path:
        return self.base / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.base / "kubelet-config.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.base / "kube-proxy-config.yaml"

    @property
    def var_log(self) -> Path:
        """Shown as ``/var/log`` to the node: Pod logs and their symlinks land here."""
        return self.base / "var-log"

    @property
    def resolv_conf(self) -> Path:
        return self.base / "resolv.conf"

    @property
    def sysctl_dir(self) -> Path:
        return self.base / "sysctl"

    @property
    def mount_ns_dir(self) -> Path:
        return self.base / "ns"

    @property
    def mount_ns(self) -> Path:
        """The node's mount namespace, kept alive by a bind mount on this file."""
        return self.mount_ns_dir / "mnt"

    @property
    def host_path_dir(self) -> Path:
        """A directory tests may mount into Pods as a hostPath."""
        return self.base / "hostpath"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def containerd_config(paths: NodePaths) -> str:
    """containerd 1.6's ``config.toml`` (version 2)."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    sections: list[tuple[str | None, dict[str, Any]]] = [
        (None, {
            "version": 2,
            "root": str(paths.containerd_root),
            "state": str(paths.containerd_state),
            "oom_score": 0,
            "disabled_plugins": [
                "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
            ],
        }),
        ("grpc", {"address": str(paths.containerd_socket)}),
        ("ttrpc", {"address": str(paths.containerd_socket) + ".ttrpc"}),
        ("metrics", {"address": ""}),
        ('plugins."io.containerd.internal.v1.opt"',
         {"path": str(paths.base / "containerd" / "opt")}),
        (cri, {
            "sandbox_image": PAUSE_IMAGE,
            "restrict_oom_score_adj": True,
            "disable_apparmor": True,
            "enable_selinux": False,
            "stream_server_address": "127.0.0.1",
            "stream_server_port": "0",
            "max_container_log_line_size": 16384,
        }),
        (f"{cri}.containerd", {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "discard_unpacked_layers": False,
        }),
        (f"{cri}.containerd.runtimes.runc", {"runtime_type": "io.containerd.runc.v2"}),
        (f"{cri}.containerd.runtimes.runc.options", {
            "Root": str(paths.runc_root),
            "SystemdCgroup": False,
        }),
        (f"{cri}.cni", {
            "bin_dir": "/usr/lib/cni",
            "conf_dir": str(paths.cni_conf_dir),
            "max_conf_num": 1,
        }),
    ]
    lines: list[str] = []
    for header, values in sections:
        if header is not None:
            lines.append(f"\n[{header}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def cni_config(paths: NodePaths) -> str:
    """A bridge network with host-local IPAM whose state stays under the cluster's directory."""
    conf = {
        "cniVersion": "1.0.0",
        "name": "graceful",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


def kubelet_config(paths: NodePaths, *, ca_file: Path, serving_cert: Path, serving_key: Path,
                   cgroup_root: str, healthz_port: int) -> str:
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "oomScoreAdj": 0,
        "resolvConf": str(paths.resolv_conf),
        "clusterDomain": "cluster.local",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 110,
        # Defaults outside the cluster's directory would be created on the host.
        "volumePluginDir": str(paths.kubelet_root / "volume-plugins"),
    }
    return yaml.safe_dump(config, sort_keys=False)


def kube_proxy_config(*, kubeconfig: Path, node_name: str, healthz_port: int,
                      metrics_port: int) -> str:
    config: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "iptables": {"masqueradeAll": True, "syncPeriod": "5s", "minSyncPeriod": "0s"},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    return yaml.safe_dump(config, sort_keys=False)


#: Run inside the fresh mount namespace (``unshare --mount``) before anything
#: starts in it. Everything mounted here is private to the node and goes away
#: with the namespace: a tmpfs on /run (containerd's shim sockets, the Pod
#: network namespaces, iptables' lock), the cluster's own /var/log and
#: /var/lib/cni, and the sysctl values kubelet expects.
MOUNT_SETUP = """set -eu
mount --make-rprivate /
mount -t tmpfs -o mode=0755 graceful-node-run /run
mkdir -p /run/netns /run/containerd
mount --bind "$VAR_LOG" /var/log
mount --bind "$CNI_CACHE" /var/lib/cni
for entry in $SYSCTLS; do
  mount --bind "$SYSCTL_DIR/${entry%%=*}" "/proc/sys/${entry#*=}"
done
"""


def mount_setup_env(paths: NodePaths) -> dict[str, str]:
    """The variables :data:`MOUNT_SETUP` reads (file name in ``sysctl_dir`` = key)."""
    return {
        "VAR_LOG": str(paths.var_log),
        "CNI_CACHE": str(paths.cni_cache_dir),
        "SYSCTL_DIR": str(paths.sysctl_dir),
        "SYSCTLS": " ".join(f"{key.replace('/', '.')}={key}" for key in KUBELET_SYSCTLS),
    }
