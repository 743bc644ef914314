"""``graceful demo --node``'s report: the side-by-side table and one old Pod per mode."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from testenv.demo import Console, demo
from testenv.proof.accounting import MessageTally, RequestTally, Stop
from testenv.proof.demo import cluster_state_of, report, run
from testenv.proof.run import RolloutResult


def _rows(lines: list[str]) -> dict[str, list[str]]:
    return {parts[0]: parts[1:] for parts in (re.split(r"\s{2,}", line.strip())
                                              for line in lines) if len(parts) == 3}


def test_the_demo_table_puts_both_modes_side_by_side() -> None:
    killed = Stop(pod="consumer-a", workload="consumer", grace=5, pre_stop=None, deleted=1.0,
                  sigterm=1.0, exited=6.1, exit_code=137)
    clean = Stop(pod="consumer-b", workload="consumer", grace=5, pre_stop=None, deleted=1.0,
                 sigterm=1.0, exited=3.0, exit_code=0)
    drained = Stop(pod="consumer-c", workload="consumer", grace=21, pre_stop=3, deleted=1.0,
                   sigterm=4.0, drained=9.0, exited=9.2, exit_code=0)
    plain = RolloutResult("plain", MessageTally(6, 5, 6, 4, 0, 4),
                          RequestTally(300, 9, {"refused": 9}), 12.5, [clean, killed])
    policy = RolloutResult("policy", MessageTally(6, 6, 6, 0, 0, 2), RequestTally(310, 0), 20.0,
                           [drained])
    lines = report(plain, policy)
    rows = _rows(lines)
    header = next(line for line in lines if "with policy" in line and "without" in line)
    assert header.index("with policy") < header.index("without")
    assert rows["messages published"] == ["6", "6"]
    assert rows["acked"] == ["6", "5"]
    assert rows["processed twice"] == ["0", "4"]
    assert rows["lost"] == ["0", "0"]
    assert rows["requests sent"] == ["310", "300"]
    assert rows["requests failed"] == ["0", "9 (refused 9)"]
    assert rows["old consumers' exit codes"] == ["0", "0 137"]
    text = "\n".join(lines)
    # the Pod drawn without the policy is the killed one, not the first
    assert "consumer Pod consumer-a (plain, terminationGracePeriodSeconds 5s): exit 137" in text
    assert "consumer Pod consumer-c (policy, terminationGracePeriodSeconds 21s): exit 0" in text
    assert text.index("one old Pod, with policy") < text.index("one old Pod, without policy")
    assert lines[-2] == ("with policy: 0 lost, 0 duplicated of 6 messages,"
                         " 0 failed of 310 requests")
    assert lines[-1].startswith("without:     0 lost, 4 duplicated")


def test_a_mode_without_messages_shows_dashes() -> None:
    plain = RolloutResult("plain", None, RequestTally(10, 1, {"reset": 1}), 3.0, [])
    policy = RolloutResult("policy", None, RequestTally(10, 0), 3.0, [])
    rows = _rows(report(plain, policy))
    assert rows["lost"] == ["-", "-"]
    assert rows["requests failed"] == ["0", "1 (reset 1)"]


def _answering(answer: str, asked: list[str]) -> Callable[[str], str]:
    def ask(question: str) -> str:
        asked.append(question)
        return answer
    return ask


def _state(directory: Path, name: str, kubeconfig: Path, netns: str | None) -> None:
    clusters = directory / "graceful" / "clusters"
    clusters.mkdir(parents=True, exist_ok=True)
    (clusters / f"{name}.json").write_text(json.dumps(
        {"name": name, "kubeconfig": str(kubeconfig), "netns": netns, "root": "/nowhere",
         "server": "https://127.0.0.1:1"}))


def test_the_node_demo_finds_the_cluster_up_node_state_of_a_kubeconfig(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with_node, without_node = tmp_path / "a" / "kubeconfig", tmp_path / "b" / "kubeconfig"
    _state(tmp_path / "state", "a", with_node, "graceful-a")
    _state(tmp_path / "state", "b", without_node, None)  # `graceful cluster up` without --node
    found = cluster_state_of(with_node)
    assert found is not None and found["netns"] == "graceful-a"
    assert cluster_state_of(without_node) is None
    assert cluster_state_of(tmp_path / "elsewhere") is None


def test_the_node_demo_refuses_a_cluster_it_cannot_stand_next_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    out = io.StringIO()
    asked: list[str] = []
    code = run(Console(out=out), kubeconfig=kubeconfig, ask=_answering("y", asked))
    assert code == 2
    assert "is not a cluster started by `graceful cluster up --node`" in out.getvalue()
    assert asked == []  # refused before asking: nothing would have been changed


def test_the_node_demo_asks_before_changing_a_cluster_and_stops_at_no(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    kubeconfig = tmp_path / "kubeconfig"
    _state(tmp_path / "state", "mine", kubeconfig, "graceful-mine")
    out = io.StringIO()
    asked: list[str] = []
    code = run(Console(out=out), kubeconfig=kubeconfig, ask=_answering("n", asked))
    assert code == 1 and asked == ["Continue? [y/N] "]
    text = out.getvalue()
    assert "will change the cluster at https://127.0.0.1:1" in text
    assert "create namespace proof-plain" in text and "create namespace proof-policy" in text
    assert text.rstrip().endswith("nothing changed")


def _node_args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {"node": True, "kubeconfig": None, "yes": False, "keep": False,
                                 "webhook_host": "127.0.0.1", **overrides}
    return argparse.Namespace(**values)


def test_the_node_demo_refuses_keep_and_a_user_without_root(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo(_node_args(keep=True), Console(out=io.StringIO())) == 2
    assert capsys.readouterr().err == ("graceful demo: --keep is for the fast demo; --node ends"
                                       " with its report\n")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert demo(_node_args(), Console(out=io.StringIO())) == 2
    assert "--node needs root" in capsys.readouterr().err
