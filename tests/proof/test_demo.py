"""``graceful demo --node``'s report: the side-by-side table and one old Pod per mode."""

from __future__ import annotations

import re

from testenv.proof.accounting import MessageTally, RequestTally, Stop
from testenv.proof.demo import report
from testenv.proof.run import RolloutResult


def test_the_demo_table_puts_both_modes_side_by_side() -> None:
    stop = Stop(pod="consumer-a", workload="consumer", grace=5, pre_stop=None, deleted=1.0,
                sigterm=1.0, exited=6.1, exit_code=137)
    plain = RolloutResult("plain", MessageTally(6, 6, 6, 4, 0, 4),
                          RequestTally(300, 9, {"refused": 9}), 12.5, [stop, stop])
    policy = RolloutResult("policy", MessageTally(6, 6, 6, 0, 0, 2), RequestTally(310, 0), 20.0,
                           [])
    lines = report(plain, policy)
    rows = {parts[0]: parts[1:] for parts in (re.split(r"\s{2,}", line.strip())
                                              for line in lines) if len(parts) == 3}
    assert rows["processed twice"] == ["4", "0"]
    assert rows["requests failed"] == ["9 (refused 9)", "0"]
    assert rows["old consumers' exit codes"] == ["137 137", "-"]
    assert any("one old Pod, without policy" in line for line in lines)
    assert any(line.endswith("exit 137") for line in lines)
