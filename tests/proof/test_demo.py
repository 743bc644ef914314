"""``graceful demo --node``'s report: the side-by-side table and one old Pod per mode."""

from __future__ import annotations

import re

from testenv.proof.accounting import MessageTally, RequestTally, Stop
from testenv.proof.demo import report
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
