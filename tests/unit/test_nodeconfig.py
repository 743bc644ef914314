"""The node's configuration files: every path under the cluster, the known blockers fixed."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml

from testenv import nodeconfig
from testenv.netns import NODE_IP, POD_CIDR
from testenv.nodeconfig import NodePaths

ROOT = Path("/tmp/graceful-x-abc")


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_containerd_config_is_valid_toml_with_everything_under_the_cluster() -> None:
    config = tomllib.loads(nodeconfig.containerd_config(NodePaths(ROOT)))
    assert config["version"] == 2
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == nodeconfig.PAUSE_IMAGE
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    paths = [s for s in _strings(config) if s.startswith("/")]
    outside = [p for p in paths if not Path(p).is_relative_to(ROOT) and p != "/usr/lib/cni"]
    assert outside == []
    assert config["grpc"]["address"] == str(NodePaths(ROOT).containerd_socket)


def test_cni_config_keeps_ipam_state_in_the_cluster() -> None:
    conf = json.loads(nodeconfig.cni_config(NodePaths(ROOT)))
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["hairpinMode"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": POD_CIDR}]]
    assert Path(bridge["ipam"]["dataDir"]).is_relative_to(ROOT)


def test_kubelet_config_never_touches_host_settings() -> None:
    config = yaml.safe_load(nodeconfig.kubelet_config(
        NodePaths(ROOT), ca_file=ROOT / "ca.crt", serving_cert=ROOT / "k.crt",
        serving_key=ROOT / "k.key", cgroup_root="/graceful-x-abc", healthz_port=1234))
    assert config["cgroupDriver"] == "cgroupfs" and config["failCgroupV1"] is False
    assert config["cgroupRoot"] == "/graceful-x-abc"
    assert config["address"] == NODE_IP
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["imageGCHighThresholdPercent"] == 100   # a deleted image cannot be pulled again
    assert Path(config["resolvConf"]).is_relative_to(ROOT)
    assert Path(config["volumePluginDir"]).is_relative_to(ROOT)


def test_kube_proxy_leaves_global_conntrack_sysctls_alone() -> None:
    config = yaml.safe_load(nodeconfig.kube_proxy_config(
        kubeconfig=ROOT / "kp", node_name="n", healthz_port=1, metrics_port=2))
    assert config["conntrack"]["maxPerCore"] == 0
    assert config["conntrack"]["tcpEstablishedTimeout"] == "0s"
    assert config["mode"] == "iptables"


def test_mount_setup_binds_every_sysctl_kubelet_checks() -> None:
    env = nodeconfig.mount_setup_env(NodePaths(ROOT))
    entries = dict(item.split("=") for item in env["SYSCTLS"].split())
    assert sorted(entries.values()) == sorted(nodeconfig.KUBELET_SYSCTLS)
    assert {"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic",
            "kernel/panic_on_oops"} <= set(entries.values())
    assert "mount -t tmpfs" in nodeconfig.MOUNT_SETUP and "/run" in nodeconfig.MOUNT_SETUP
