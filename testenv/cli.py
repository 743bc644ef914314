"""``graceful cluster up|down|status|kubeconfig``: the local control plane for a person.

``up`` starts a cluster that outlives the command and records its PIDs in a
state file (``${XDG_STATE_HOME:-~/.local/state}/graceful/clusters/NAME.json``);
``down`` stops exactly those processes and removes the cluster's temporary
directory and the state file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from testenv.build import BuildError
from testenv.controlplane import ControlPlane
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


def up(name: str) -> int:
    state = load_state(name)
    if state is not None:
        if all(_alive(state).values()):
            print(f"cluster {name!r} is already running at {state['server']}", file=sys.stderr)
            print(f"export KUBECONFIG={state['kubeconfig']}")
            return 0
        _err(f"cluster {name!r} is partly down; run `graceful cluster down --name {name}` first")
        return 1
    started = time.monotonic()
    plane = ControlPlane(name=name, tied_to_parent=False,
                         progress=lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    try:
        plane.start()
    except (BuildError, ComponentError) as exc:
        _err(str(exc))
        return 1
    plane.write_state(state_file(name))
    print(f"cluster {name!r} ready at {plane.server} in {time.monotonic() - started:.1f}s",
          file=sys.stderr)
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def down(name: str) -> int:
    state = load_state(name)
    if state is None:
        print(f"cluster {name!r} is not running", file=sys.stderr)
        return 0
    ControlPlane.from_state(state).stop()
    state_file(name).unlink(missing_ok=True)
    print(f"cluster {name!r} stopped; removed {state['root']}", file=sys.stderr)
    return 0


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
    parser.add_argument("action", choices=["up", "down", "status", "kubeconfig"],
                        help="up: start (prints the export KUBECONFIG line); down: stop and "
                             "clean up; status: component health; kubeconfig: print its path")
    parser.add_argument("--name", default="graceful",
                        help="cluster name, to run several side by side (default: graceful)")


def run(args: argparse.Namespace) -> int:
    action: str = args.action
    name: str = args.name
    if action == "up":
        return up(name)
    if action == "down":
        return down(name)
    if action == "status":
        return status(name)
    return show_kubeconfig(name)
