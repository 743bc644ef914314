"""``graceful cluster up [--node]|down|status|kubeconfig|exec``: the local cluster for a person.

``up`` starts a cluster that outlives the command and records its PIDs in a
state file (``${XDG_STATE_HOME:-~/.local/state}/graceful/clusters/NAME.json``);
``down`` stops exactly those processes and removes the cluster's temporary
directory and the state file.

``up --node`` adds a real node (kubelet, containerd, CNI, kube-proxy) and
loads the product image; everything then lives in the network namespace
``graceful-NAME``, so the API server is reached from inside it:
``graceful cluster exec -- kubectl get nodes``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testenv import netns
from testenv.build import BuildError
from testenv.controlplane import ControlPlane
from testenv.node import NodeError, leftovers
from testenv.nodecluster import enter_new_netns, node_images
from testenv.process import ComponentError, is_ours


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "graceful" / "clusters"


def state_file(name: str) -> Path:
    return state_dir() / f"{name}.json"


def load_state(name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(state_file(name).read_text())
    except (OSError, ValueError):
        return None
    return data


def _err(message: str) -> None:
    print(f"graceful cluster: {message}", file=sys.stderr)


def _alive(state: dict[str, Any]) -> dict[str, bool]:
    return {name: is_ours(int(info["pid"]), state["root"])
            for name, info in state["components"].items()}


def netns_name(name: str) -> str:
    return f"graceful-{name}"


def up(name: str, *, node: bool = False) -> int:
    state = load_state(name)
    if state is not None:
        if all(_alive(state).values()):
            print(f"cluster {name!r} is already running at {state['server']}", file=sys.stderr)
            print(f"export KUBECONFIG={state['kubeconfig']}")
            return 0
        _err(f"cluster {name!r} is partly down; run `graceful cluster down --name {name}` first")
        return 1
    started = time.monotonic()

    def progress(msg: str) -> None:
        print(f"... {msg}", file=sys.stderr, flush=True)

    plane = ControlPlane(name=name, tied_to_parent=False, progress=progress, node=node)
    namespace: netns.NetworkNamespace | None = None
    try:
        if node:
            plane.images = node_images(progress)
            namespace = enter_new_netns(netns_name(name))
            plane.netns = namespace.name
        plane.start()
    except (BuildError, ComponentError, NodeError, netns.NetnsError, OSError) as exc:
        if namespace is not None:
            namespace.delete()
        _err(str(exc))
        return 1
    plane.write_state(state_file(name))
    print(f"cluster {name!r} ready at {plane.server} in {time.monotonic() - started:.1f}s",
          file=sys.stderr)
    if node:
        print(f"node {plane.node_name} is Ready; the cluster lives in network namespace "
              f"{plane.netns}: run `graceful cluster exec --name {name} -- kubectl get pods -A`",
              file=sys.stderr)
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def down(name: str) -> int:
    state = load_state(name)
    if state is None:
        print(f"cluster {name!r} is not running", file=sys.stderr)
        return 0
    plane = ControlPlane.from_state(state)
    plane.stop()
    if plane.netns is not None:
        netns.NetworkNamespace(plane.netns).delete()
    state_file(name).unlink(missing_ok=True)
    left = leftovers(Path(state["root"]), plane.netns)
    if left:
        _err("stopped, but these are left behind:\n  " + "\n  ".join(left))
        return 1
    print(f"cluster {name!r} stopped; removed {state['root']}", file=sys.stderr)
    return 0


def exec_in(name: str, command: list[str]) -> int:
    """Run ``command`` where the cluster is reachable, with ``KUBECONFIG`` set."""
    state = load_state(name)
    if state is None:
        _err(f"cluster {name!r} is not running; start it with `graceful cluster up --node`")
        return 1
    if not command:
        _err("nothing to run: graceful cluster exec -- CMD ARGS...")
        return 2
    env = {**os.environ, "KUBECONFIG": state["kubeconfig"]}
    argv = command
    if state.get("netns"):
        argv = ["nsenter", f"--net={netns.path_of(state['netns'])}", "--", *command]
    try:
        return subprocess.run(argv, env=env, check=False).returncode
    except FileNotFoundError as exc:
        _err(f"cannot run {command[0]!r}: {exc.strerror}")
        return 127


def status(name: str) -> int:
    state = load_state(name)
    if state is None:
        print(f"cluster {name!r}: not running")
        return 1
    alive = _alive(state)
    print(f"cluster {name!r}: {state['server']}  kubeconfig {state['kubeconfig']}")
    for component, ok in alive.items():
        pid = state["components"][component]["pid"]
        print(f"  {component:<24} pid {pid:<8} {'running' if ok else 'DOWN'}")
    return 0 if all(alive.values()) else 1


def show_kubeconfig(name: str) -> int:
    state = load_state(name)
    if state is None:
        _err(f"cluster {name!r} is not running; start it with `graceful cluster up`")
        return 1
    print(state["kubeconfig"])
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status", "kubeconfig", "exec"],
                        help="up: start (prints the export KUBECONFIG line); down: stop and "
                             "clean up; status: component health; kubeconfig: print its path; "
                             "exec -- CMD ARGS...: run CMD where the cluster is reachable, "
                             "with KUBECONFIG set")
    parser.add_argument("--name", default="graceful",
                        help="cluster name, to run several side by side (default: graceful)")
    parser.add_argument("--node", action="store_true",
                        help="with up: add a real node (kubelet, containerd, CNI, kube-proxy) "
                             "in the network namespace graceful-NAME; needs root")


def run(args: argparse.Namespace) -> int:
    action: str = args.action
    name: str = args.name
    command: list[str] = list(getattr(args, "passthrough", []))
    if action == "exec":
        return exec_in(name, command)
    if command:
        _err(f"unexpected arguments for {action}: {' '.join(command)}")
        return 2
    if action == "up":
        return up(name, node=args.node)
    if action == "down":
        return down(name)
    if action == "status":
        return status(name)
    return show_kubeconfig(name)
