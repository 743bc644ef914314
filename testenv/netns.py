"""The network namespace a local node lives in.

Why a namespace of its own: the machines this project runs on may send
traffic only to loopback or into namespaces the project creates. A node
needs more than loopback (a node IP the Pods can reach, a bridge for Pod IPs,
Service ClusterIPs rewritten by kube-proxy), so every process of a cluster
with a node, and every process that talks to it (the test run, the webhook,
``graceful cluster exec``), runs inside one namespace made for it:

- ``lo``, up;
- a veth pair whose first end holds the node IP (the kernel here has no dummy
  driver; a veth's carrier is up once both ends are);
- the CNI bridge for Pod IPs, created later by the bridge plugin;
- a route for Service ClusterIPs on the veth, so that a process of the node
  (the API server calling a webhook Service) can connect at all: the route is
  looked up before kube-proxy's rules rewrite the address to a Pod's;
- a ``blackhole`` default route, so a packet for any other address is
  dropped inside the namespace instead of leaving it.

A process joins with :func:`enter` (``setns`` on the calling thread, so call
it before any other thread starts); threads and children created afterwards
inherit the namespace.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: The node's address inside its namespace, and the network it sits on.
NODE_IP = "10.200.0.2"
NODE_PREFIX = 24
#: Pod IPs, handed out by the CNI bridge plugin's host-local IPAM.
POD_CIDR = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
#: Service ClusterIPs (kube-apiserver's --service-cluster-ip-range).
SERVICE_CIDR = "10.0.0.0/24"

_NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000


class NetnsError(RuntimeError):
    """A namespace could not be created, joined or removed."""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")


def path_of(name: str) -> Path:
    return _NETNS_DIR / name


def exists(name: str) -> bool:
    return path_of(name).exists()


@dataclass(frozen=True)
class NetworkNamespace:
    """A named namespace under ``/run/netns`` (what ``ip netns`` manages)."""

    name: str

    @property
    def path(self) -> Path:
        return path_of(self.name)

    @classmethod
    def create(cls, name: str) -> NetworkNamespace:
        """Create and wire the namespace; raise :class:`NetnsError` if it exists."""
        if os.geteuid() != 0:
            raise NetnsError("a node needs root: creating a network namespace is privileged")
        if exists(name):
            raise NetnsError(f"network namespace {name!r} already exists")
        _ip("netns", "add", name)
        ns = cls(name)
        try:
            ns._wire()
        except BaseException:
            ns.delete()
            raise
        return ns

    def _wire(self) -> None:
        n = self.name
        _ip("-n", n, "link", "set", "lo", "up")
        _ip("-n", n, "link", "add", "node0", "type", "veth", "peer", "name", "node0-peer")
        _ip("-n", n, "addr", "add", f"{NODE_IP}/{NODE_PREFIX}", "dev", "node0")
        _ip("-n", n, "link", "set", "node0", "up")
        _ip("-n", n, "link", "set", "node0-peer", "up")
        _ip("-n", n, "route", "add", SERVICE_CIDR, "dev", "node0")
        _ip("-n", n, "route", "add", "blackhole", "default")
        # Per-namespace settings: Pod traffic is routed between the bridge and the
        # node, and bridged packets go through kube-proxy's iptables rules. Both
        # files are the namespace's own; the host's values never change.
        self.write_sysctl("net/ipv4/ip_forward", "1")
        bridged = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
        if bridged.exists():
            self.write_sysctl("net/bridge/bridge-nf-call-iptables", "1")

    def write_sysctl(self, key: str, value: str) -> None:
        """Write a per-namespace ``/proc/sys/net`` file from inside the namespace."""
        if not key.startswith("net/"):
            raise NetnsError(f"refusing to write {key}: only net/ sysctls are per namespace")
        proc = subprocess.run(
            ["nsenter", f"--net={self.path}", "sh", "-c", f"echo {value} > /proc/sys/{key}"],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise NetnsError(f"could not set {key}={value} in {self.name}: {proc.stderr.strip()}")

    def enter(self) -> None:
        """Move the calling thread into the namespace (see the module docstring)."""
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise NetnsError(f"setns({self.path}) failed: {os.strerror(errno)}")
        finally:
            os.close(fd)

    def delete(self) -> None:
        """Remove the namespace; its interfaces, routes and iptables rules go with it."""
        if exists(self.name):
            _ip("netns", "delete", self.name)


def current_is(name: str) -> bool:
    """Whether this thread is already inside namespace ``name``."""
    try:
        here = os.stat("/proc/thread-self/ns/net")
        there = os.stat(path_of(name))
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
