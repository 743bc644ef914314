"""The proof's arithmetic: what counts as lost, duplicated and failed."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from testenv.proof.accounting import (
    Event,
    MessageTally,
    ModeFigures,
    Outcome,
    RequestTally,
    Stop,
    Totals,
    classify_error,
    classify_status,
    draw_stop,
    final_line,
    parse_journal,
    parse_outcomes,
    tally_messages,
    tally_requests,
    telling_stop,
    unfinished_in,
)


def ev(t: float, event: str, ident: str = "", pod: str = "a", redelivered: bool = False) -> Event:
    return Event(t=t, pod=pod, event=event, id=ident, redelivered=redelivered)


def test_a_clean_drain_loses_and_duplicates_nothing() -> None:
    events = [ev(1, "start", "m1"), ev(2, "start", "m2"), ev(5, "sigterm"),
              ev(9, "finish", "m1"), ev(9.1, "ack", "m1"), ev(9.2, "finish", "m2"),
              ev(9.3, "ack", "m2")]
    tally = tally_messages(["m1", "m2"], events)
    assert (tally.published, tally.processed, tally.acked, tally.lost, tally.duplicated) == (
        2, 2, 2, 0, 0)


def test_sigkill_mid_handler_is_a_duplicate_not_a_loss() -> None:
    events = [ev(1, "start", "m1", pod="old"),
              ev(40, "start", "m1", pod="new", redelivered=True),
              ev(80, "finish", "m1", pod="new"), ev(80.1, "ack", "m1", pod="new")]
    tally = tally_messages(["m1"], events)
    assert (tally.lost, tally.duplicated, tally.duplicated_ids) == (0, 1, ("m1",))
    assert tally.redelivered == 1


def test_ack_first_then_sigkill_is_a_loss() -> None:
    events = [ev(1, "ack", "m1", pod="old"), ev(1.01, "start", "m1", pod="old")]
    tally = tally_messages(["m1"], events)
    assert (tally.lost, tally.lost_ids, tally.acked, tally.duplicated) == (1, ("m1",), 1, 0)


def test_a_requeued_prefetched_message_flagged_redelivered_is_not_a_duplicate() -> None:
    # FastStream stopped taking deliveries; RabbitMQ requeued what it had sent ahead
    events = [ev(10, "start", "m3", pod="new", redelivered=True), ev(18, "finish", "m3", "new")]
    tally = tally_messages(["m3"], events)
    assert (tally.duplicated, tally.lost, tally.redelivered) == (0, 0, 1)


def test_ids_of_other_runs_are_ignored_and_unseen_ids_are_lost() -> None:
    events = [ev(1, "start", "other"), ev(1, "start", "other"), ev(2, "finish", "other")]
    tally = tally_messages(["mine"], events)
    assert (tally.published, tally.lost, tally.duplicated) == (1, 1, 0)


@given(st.lists(st.tuples(st.sampled_from(["m1", "m2", "m3"]),
                          st.sampled_from(["start", "finish", "ack"])), max_size=30))
def test_counts_stay_within_published(pairs: list[tuple[str, str]]) -> None:
    events = [ev(i, e, ident) for i, (ident, e) in enumerate(pairs)]
    tally = tally_messages(["m1", "m2", "m3"], events)
    assert 0 <= tally.lost <= tally.published == 3
    assert 0 <= tally.duplicated <= 3
    assert tally.lost + tally.processed == 3


def test_parse_journal_skips_a_torn_last_line_and_sorts_by_time() -> None:
    lines = [json.dumps({"t": 2, "pod": "p", "event": "finish", "id": "m"}),
             json.dumps({"t": 1, "pod": "p", "event": "start", "id": "m", "redelivered": True}),
             '{"t": 3, "pod": "p", "ev']
    events = parse_journal(lines)
    assert [e.event for e in events] == ["start", "finish"]
    assert events[0].redelivered is True


def test_unfinished_in_names_work_still_running_in_live_pods() -> None:
    events = [ev(1, "start", "m1", pod="a"), ev(2, "start", "m2", pod="b"),
              ev(3, "finish", "m2", pod="b"), ev(4, "start", "m3", pod="gone")]
    assert unfinished_in(events, ["a", "b"]) == {"m1"}


def test_errors_and_statuses_are_classified() -> None:
    assert classify_error(ConnectionRefusedError()) == "refused"
    assert classify_error(ConnectionResetError()) == "reset"
    assert classify_error(BrokenPipeError()) == "reset"
    assert classify_error(TimeoutError()) == "timeout"
    assert classify_error(OSError("no route")) == "other"
    assert [classify_status(s) for s in (200, 204, 503, 500, 404)] == [
        "ok", "ok", "5xx", "5xx", "other"]


def test_tally_requests_counts_each_failure_kind_with_its_time() -> None:
    outcomes = [Outcome(1.0, "ok", 0.1), Outcome(2.0, "refused", 0.0),
                Outcome(1.5, "5xx", 0.1), Outcome(3.0, "refused", 0.0)]
    tally = tally_requests(outcomes)
    assert (tally.sent, tally.failed) == (4, 3)
    assert dict(tally.by_kind) == {"refused": 2, "5xx": 1}
    assert tally.failure_times == (1.5, 2.0, 3.0)


def test_outcomes_round_trip_through_json_lines() -> None:
    outcome = Outcome(12.5, "timeout", 5.0, pod="", detail="TimeoutError")
    assert parse_outcomes([outcome.to_json(), "garbage", ""]) == [
        Outcome(12.5, "timeout", 5.0, "", "TimeoutError")]


def test_the_final_line_has_exactly_the_agreed_form() -> None:
    with_policy = Totals(0, 0, 12, 0, 2400) + Totals(0, 0, 12, 0, 2410)
    without = Totals(lost=0, duplicated=7, messages=24, failed=19, requests=4800)
    assert final_line(with_policy, without) == (
        "with policy: 0 lost, 0 duplicated of 24 messages, 0 failed of 4810 requests;"
        " without: 0 lost, 7 duplicated of 24 messages, 19 failed of 4800 requests")


def test_a_drained_stop_is_drawn_with_its_measured_events() -> None:
    stop = Stop(pod="web-1", workload="web", grace=13, pre_stop=3, deleted=100.0,
                sigterm=103.1, drained=103.6, exited=103.7, exit_code=0)
    lines = draw_stop(stop, "policy")
    assert lines[0] == "web Pod web-1 (policy, terminationGracePeriodSeconds 13s): exit 0"
    assert "preStop 3s" in lines[2] and "drain" in lines[2] and "killed" not in lines[2]
    assert "+  3.10s  SIGTERM (the app journals it)" in "\n".join(lines)
    assert lines[-1].endswith("SIGKILL due (terminationGracePeriodSeconds 13s)")


def test_a_killed_stop_is_drawn_as_cut() -> None:
    stop = Stop(pod="consumer-1", workload="consumer", grace=5, pre_stop=None, deleted=10.0,
                sigterm=10.02, exited=15.1, exit_code=137)
    lines = draw_stop(stop, "plain")
    assert lines[0].endswith("exit 137")
    assert "drain (killed)" in lines[2]
    assert "preStop" not in "\n".join(lines)



def test_the_measured_stop_marks_its_events_under_the_bar_like_explain() -> None:
    stop = Stop(pod="c-1", workload="consumer", grace=21, pre_stop=3, deleted=50.0,
                sigterm=53.0, drained=60.0, exited=60.2, exit_code=0)
    times, bar, marks = draw_stop(stop, "policy")[1:4]
    assert marks.startswith("  ^delete")
    assert marks.index("^SIGTERM") == bar.index("|===")   # SIGTERM where the drain starts
    assert marks.rstrip().endswith("^exit 0")
    assert marks.index("^exit 0") == len(bar) - 1          # the exit under the bar's end
    assert times.rstrip().endswith("10.2s")


def test_a_killed_stop_is_marked_sigkill_and_a_stop_without_prestop_at_the_delete() -> None:
    stop = Stop(pod="c-2", workload="consumer", grace=5, pre_stop=None, deleted=10.0,
                sigterm=10.01, exited=15.1, exit_code=137)
    marks = draw_stop(stop, "plain")[3]
    assert marks.startswith("  ^delete+SIGTERM")
    assert marks.rstrip().endswith("^SIGKILL: exit 137")


def test_the_telling_stop_is_a_killed_consumer_else_the_first_consumer() -> None:
    web = Stop(pod="w", workload="web", grace=5, pre_stop=None, exit_code=137)
    ok = Stop(pod="a", workload="consumer", grace=5, pre_stop=None, exit_code=0)
    killed = Stop(pod="b", workload="consumer", grace=5, pre_stop=None, exit_code=137)
    assert telling_stop([web, ok, killed]) is killed
    assert telling_stop([web, ok]) is ok
    assert telling_stop([web]) is web
    assert telling_stop([]) is None


def test_mode_figures_sum_the_rollouts_of_one_mode() -> None:
    figures = ModeFigures.of(
        [MessageTally(6, 6, 6, 2, 0, 2), None, MessageTally(6, 5, 5, 0, 1, 0)],
        [RequestTally(100, 3, {"refused": 2, "reset": 1}), RequestTally(90, 1, {"refused": 1})])
    assert (figures.published, figures.acked, figures.duplicated, figures.lost) == (12, 11, 2, 1)
    assert (figures.sent, figures.failed) == (190, 4)
    assert figures.failures() == "refused 3, reset 1"
    assert ModeFigures.of([], [RequestTally(5, 0)]).failures() == "-"
    assert not ModeFigures.of([None], []).has_messages
