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

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
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


def _where(out: str) -> tuple[Path, str]:
    """The cluster directory and network namespace the demo says it started."""
    where = re.search(r"\(directory (\S+), network namespace (\S+)\)", out)
    assert where, out
    return Path(where[1]), where[2]


def _assert_nothing_left(root: Path, netns_name: str, scratch: Path) -> None:
    """No process, mount, cgroup, directory or network namespace of the run is left."""
    assert leftovers(root, netns_name) == []
    assert not Path(f"/run/netns/{netns_name}").exists()
    assert _processes_mentioning(str(scratch)) == []
    assert sorted(p.name for p in scratch.glob("graceful-*")) == []
    assert sorted(p.name for p in scratch.glob("proof-*")) == []


def _assert_nothing_lost_with_the_policy(rows: dict[str, tuple[str, str]]) -> None:
    assert rows["messages published"][0] == "6"
    assert rows["acked"][0] == "6"
    assert rows["processed twice"][0] == "0"
    assert rows["lost"][0] == "0"
    assert int(rows["requests sent"][0]) > 0
    assert rows["requests failed"][0] == "0"
    assert rows["old consumers' exit codes"][0] == "0 0"


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

        root, netns_name = _where(out)
        assert root.parent == scratch and netns_name == f"graceful-proof-{pid}"

        # the table: both modes side by side, nothing lost, run twice or failed with the policy
        header = next(line for line in out.splitlines()
                      if "with policy" in line and "without" in line and "---" not in line)
        assert header.index("with policy") < header.index("without")
        rows = _table(out)
        _assert_nothing_lost_with_the_policy(rows)
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

        _assert_nothing_left(root, netns_name, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_ctrl_c_during_a_rollout_stops_everything_it_started() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="gdn-", dir="/tmp"))
    lines: list[str] = []
    try:
        # its own process group, signalled as a terminal signals its foreground group
        proc = subprocess.Popen([sys.executable, "-m", "graceful.cli", "demo", "--node"],
                                env={**os.environ, "TMPDIR": str(scratch)}, cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("==> rollout 1 of 2"):  # messages and requests in flight
                    break
            assert lines and lines[-1].startswith("==> rollout 1 of 2"), "".join(lines)
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(1.0)  # a person pressing Ctrl-C again: it must not cut the clean-up
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            rest, err = proc.communicate(timeout=600)  # a guard against a hang, not a bound
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        print("".join(lines) + rest)
        print(err, file=sys.stderr)
        assert proc.returncode == 130, err[-2000:]
        assert "interrupted; stopping everything it started" in err
        assert "interrupted; everything it started is stopped" in err
        assert "--- the same rollout" not in rest
        root, netns_name = _where("".join(lines))
        _assert_nothing_left(root, netns_name, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _graceful(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graceful.cli", *args], env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=1800, check=False)


def test_demo_node_on_a_cluster_from_cluster_up_node_removes_what_it_added(
        tmp_path: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="gdn-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(scratch), "XDG_STATE_HOME": str(tmp_path / "state")}
    name = f"demo{os.getpid()}"
    try:
        up = _graceful("cluster", "up", "--node", "--name", name, env=env)
        assert up.returncode == 0, up.stderr
        state = json.loads((tmp_path / "state" / "graceful" / "clusters" / f"{name}.json")
                           .read_text())
        try:
            demo = _graceful("demo", "--node", "--kubeconfig", state["kubeconfig"], "--yes",
                             env=env)
            print(demo.stdout)
            print(demo.stderr, file=sys.stderr)
            assert demo.returncode == 0, demo.stderr[-2000:]
            assert f"will change the cluster at {state['server']}" in demo.stdout
            _assert_nothing_lost_with_the_policy(_table(demo.stdout))
            assert "--- one old Pod, with policy" in demo.stdout

            # the cluster is still there, without what the demo added to it
            listed = _graceful("cluster", "exec", "--name", name, "--", "kubectl", "get",
                               "namespaces", "-o", "json", env=env)
            assert listed.returncode == 0, listed.stderr
            names = {n["metadata"]["name"] for n in json.loads(listed.stdout)["items"]}
            assert "default" in names
            assert not names & {"proof-plain", "proof-policy", "graceful-system"}, names
            for started in ("graceful-rabbitmq-", "graceful-proof-journal-", "proof-load-"):
                assert _processes_mentioning(str(scratch / started)) == []
                assert list(scratch.glob(started + "*")) == []
        finally:
            down = _graceful("cluster", "down", "--name", name, env=env)
        assert down.returncode == 0, down.stderr
        _assert_nothing_left(Path(state["root"]), state["netns"], scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
