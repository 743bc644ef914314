"""bench.rollout_loss without a cluster: block order, totals, the report, the final line."""

from __future__ import annotations

import pytest

from bench import rollout_loss
from testenv.proof.accounting import MessageTally, RequestTally, Stop, final_line
from testenv.proof.manifests import SHORT
from testenv.proof.run import RolloutResult


def _result(mode: str, lost: int, dup: int, failed: int, code: int) -> RolloutResult:
    return RolloutResult(
        mode, MessageTally(published=6, acked=6 - lost, processed=6 - lost, duplicated=dup,
                           lost=lost, redelivered=dup),
        RequestTally(sent=400, failed=failed, by_kind={"refused": failed} if failed else {}),
        seconds=42.0,
        stops=[Stop(pod="consumer-a", workload="consumer", grace=5, pre_stop=None,
                    deleted=1.0, sigterm=1.01, exited=6.1, exit_code=code)])  # type: ignore[arg-type]


def test_blocks_alternate_so_each_mode_goes_first_half_the_time() -> None:
    assert rollout_loss.block_order(3) == ["plain", "policy", "policy", "plain", "plain",
                                           "policy"]
    assert rollout_loss.block_order(1) == ["plain", "policy"]


def test_totals_and_the_final_line_sum_every_rollout_of_a_mode() -> None:
    plain = [_result("plain", 0, 4, 7, 137), _result("plain", 0, 2, 3, 137)]
    policy = [_result("policy", 0, 0, 0, 0), _result("policy", 0, 0, 0, 0)]
    line = final_line(rollout_loss.totals(policy), rollout_loss.totals(plain))
    assert line == ("with policy: 0 lost, 0 duplicated of 12 messages, 0 failed of 800 requests;"
                    " without: 0 lost, 6 duplicated of 12 messages, 10 failed of 800 requests")


@pytest.mark.parametrize("mode", ["plain", "policy"])
def test_the_report_has_both_modes_and_a_timeline(mode: str) -> None:
    results = {"plain": [_result("plain", 1, 4, 7, 137)], "policy": [_result("policy", 0, 0, 0, 0)]}
    lines = rollout_loss.report(results, rollout_loss.Setup(SHORT, 6, 40.0, 1),  # type: ignore[arg-type]
                                {"plain": 50.0, "policy": 60.0})
    text = "\n".join(lines)
    assert "| with policy | 6 | 6 | 0 | 0 | 400 | 0 | - |" in text
    assert "| without | 6 | 5 | 4 | 1 | 400 | 7 | refused 7 |" in text
    assert f"One old Pod, {mode}:" in text
    assert "exit 137" in text
