"""``graceful cluster up --node`` / ``exec`` / ``down`` for a person, and what ``down`` leaves.

A second cluster, with its own name, network namespace and node, is started
by the CLI as a person would; ``exec`` reaches it; ``down`` must leave no
process, mount, network namespace, cgroup or directory behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testenv.node import cgroup_dirs, leftovers, mounts_under, processes_naming

pytestmark = [pytest.mark.e2e, pytest.mark.node]


def graceful(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graceful.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_up_node_exec_down_leaves_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    name = f"cli{os.getpid()}"
    up = graceful("cluster", "up", "--node", "--name", name, env=env)
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "state" / "graceful" / "clusters" / f"{name}.json")
                       .read_text())
    root = Path(state["root"])
    try:
        nodes = graceful("cluster", "exec", "--name", name, "--", "kubectl", "get", "nodes",
                         "-o", "json", env=env)
        assert nodes.returncode == 0, nodes.stderr
        (item,) = json.loads(nodes.stdout)["items"]
        ready = {c["type"]: c["status"] for c in item["status"]["conditions"]}
        assert ready["Ready"] == "True"
        images = graceful("cluster", "exec", "--name", name, "--", "sh", "-c",
                          "test -n \"$KUBECONFIG\" && exit 7", env=env)
        assert images.returncode == 7   # exec passes the exit code through
        assert processes_naming(str(root)) and mounts_under(root) and cgroup_dirs(root.name)
    finally:
        down = graceful("cluster", "down", "--name", name, env=env)
    assert down.returncode == 0, down.stderr
    assert leftovers(root, state["netns"]) == []
    assert not Path(f"/run/netns/{state['netns']}").exists()
