"""``graceful demo --node`` as a person runs it: the proof's table and timelines, then nothing left.

The demo starts its own cluster with a node, in a network namespace of its
own, from inside this session's namespace (as ``graceful cluster up --node``
does in ``test_cluster_cli_node``). Its temporary directories go under a
``TMPDIR`` made for the test, so that whatever it might leave behind (a
process, a mount, a directory) names that directory and is found.

What the run without the policy shows is printed, not asserted here:
``test_proof_rollout`` asserts the loss on the same workloads and durations.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from testenv.node import leftovers
from testenv.proof.session import proof_image

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.node_images.with_args(proof_image)]

ROOT = Path(__file__).resolve().parents[3]


def _processes_mentioning(marker: str) -> list[str]:
    """Live processes whose command line or environment names ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if state != "Z" and (marker.encode() in cmdline or marker.encode() in environ):
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {command[:120]}")
    return found


def _run_demo(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "graceful.cli", "demo", "--node"], env=env,
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=1800)  # a guard against a hang, not a bound
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the demo's own clean-up, as a person's Ctrl-C
        out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def _table(out: str) -> dict[str, tuple[str, str]]:
    """The side-by-side table's rows: label -> (with policy, without)."""
    rows = {}
    for line in out.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == 3:
            rows[parts[0]] = (parts[1], parts[2])
    return rows


def test_demo_node_shows_the_proof_and_leaves_nothing_running() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="gdn-", dir="/tmp"))  # short: socket paths
    try:
        proc, pid = _run_demo({**os.environ, "TMPDIR": str(scratch)})
        print(proc.stdout)
        print(proc.stderr, file=sys.stderr)
        out = proc.stdout
        assert proc.returncode == 0, proc.stderr[-2000:]

        # where it ran, as it says
        where = re.search(r"\(directory (\S+), network namespace (\S+)\)", out)
        assert where, out
        root, netns_name = Path(where[1]), where[2]
        assert root.parent == scratch and netns_name == f"graceful-proof-{pid}"

        # the table: both modes side by side, nothing lost, run twice or failed with the policy
        header = next(line for line in out.splitlines()
                      if "with policy" in line and "without" in line and "---" not in line)
        assert header.index("with policy") < header.index("without")
        rows = _table(out)
        assert rows["messages published"][0] == "6"
        assert rows["acked"][0] == "6"
        assert rows["processed twice"][0] == "0"
        assert rows["lost"][0] == "0"
        assert int(rows["requests sent"][0]) > 0
        assert rows["requests failed"][0] == "0"
        assert rows["old consumers' exit codes"][0] == "0 0"
        for label in ("messages published", "acked", "processed twice", "lost",
                      "requests sent"):
            int(rows[label][1])  # the run without the policy is measured too
        assert re.search(r"^with policy: 0 lost, 0 duplicated of 6 messages, 0 failed of \d+"
                         r" requests$", out, re.M)
        assert re.search(r"^without: +\d+ lost, \d+ duplicated of 6 messages, \d+ failed of"
                         r" \d+ requests$", out, re.M)

        # one old Pod of each mode, drawn as graceful explain draws: bar, ^ marks, events
        policy_part = out.split("--- one old Pod, with policy", 1)[1].split(
            "--- one old Pod, without policy", 1)
        assert len(policy_part) == 2, out
        with_policy, without = policy_part
        assert re.search(r"^consumer Pod \S+ \(policy, terminationGracePeriodSeconds \d+s\):"
                         r" exit 0$", with_policy, re.M)
        assert re.search(r"^  \|-+ preStop \d+s -+\|=+ drain =+\|", with_policy, re.M)
        assert re.search(r"^  \^delete +\^SIGTERM +\^exit 0$", with_policy, re.M)
        for event in ("delete (the watch sees it)", "preStop sleep", "SIGTERM (the app"
                      " journals it)", "drained: in-flight work done", "exit 0"):
            assert event in with_policy, event
        assert re.search(r"^consumer Pod \S+ \(plain, terminationGracePeriodSeconds 5s\):"
                         r" exit \d+$", without, re.M)
        # SIGTERM at the delete (no preStop), or as soon as the kubelet acts on it
        assert re.search(r"^  \^delete(\+SIGTERM| +\^SIGTERM) +\^(exit \d+|SIGKILL: exit 137)$",
                         without, re.M)
        assert "preStop" not in without.split("demo finished")[0]

        # nothing left: processes, mounts, cgroups, directories, the network namespace
        assert leftovers(root, netns_name) == []
        assert not Path(f"/run/netns/{netns_name}").exists()
        assert _processes_mentioning(str(scratch)) == []
        assert sorted(p.name for p in scratch.glob("graceful-*")) == []
        assert sorted(p.name for p in scratch.glob("proof-*")) == []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
