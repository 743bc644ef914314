"""``graceful demo --node``: the proof for a person, in about two minutes.

One short rollout of each mode (``manifests.SHORT``: handlers of 8 s, the
manifest's grace period 5 s) on a real node, then the side-by-side table and
the measured stop of one old consumer Pod in each mode. The default
``graceful demo`` stays the fast one, on API objects only.
"""

from __future__ import annotations

from collections.abc import Callable

from testenv.proof.accounting import draw_stop
from testenv.proof.manifests import SHORT
from testenv.proof.run import ExperimentError, RolloutResult


def side_by_side(plain: RolloutResult, with_policy: RolloutResult) -> list[str]:
    """The table a person reads: the same rollout without and with the policy."""

    def cells(r: RolloutResult) -> list[str]:
        m, q = r.messages, r.requests
        consumers = [s for s in r.stops if s.workload == "consumer"]
        return [
            str(m.published) if m else "-",
            str(m.duplicated) if m else "-",
            str(m.lost) if m else "-",
            str(q.sent) if q else "-",
            (f"{q.failed}" + (" (" + ", ".join(f"{k} {v}" for k, v in q.by_kind.items()) + ")"
                              if q.by_kind else "")) if q else "-",
            " ".join("?" if s.exit_code is None else str(s.exit_code) for s in consumers) or "-",
            f"{r.seconds:.1f}",
        ]

    labels = ["messages published", "processed twice", "lost", "requests sent",
              "requests failed", "old consumers' exit codes", "rollout seconds"]
    left, right = cells(plain), cells(with_policy)
    width = max(len(label) for label in labels)
    col = max(len("without policy"), *(len(c) for c in left))
    lines = [f"  {'':{width}}  {'without policy':>{col}}   with policy",
             f"  {'-' * width}  {'-' * col}   {'-' * 11}"]
    lines += [f"  {label:{width}}  {a:>{col}}   {b}"
              for label, a, b in zip(labels, left, right, strict=True)]
    return lines


def report(plain: RolloutResult, with_policy: RolloutResult) -> list[str]:
    lines = ["", "--- the same rollout, without and with the policy " + "-" * 26, "",
             *side_by_side(plain, with_policy)]
    for result in (plain, with_policy):
        stops = [s for s in result.stops if s.workload == "consumer"] or result.stops
        if stops:
            mode = "without policy" if result.mode == "plain" else "with policy"
            lines += ["", f"--- one old Pod, {mode} " + "-" * (56 - len(mode)), "",
                      *draw_stop(stops[0], result.mode)]
    return lines


def run(step: Callable[[str], None], text: Callable[[str], None]) -> int:
    """Start the node, roll out both modes once, print the report; everything is stopped."""
    from testenv.proof.session import node_ip, proof_session, start_node  # noqa: PLC0415

    try:
        with start_node(step) as plane, proof_session(
                plane.kubeconfig, node_ip(), SHORT, messages=6, rate=40.0,
                progress=step) as experiment:
            plain = experiment.rollout("plain", 0)
            with_policy = experiment.rollout("policy", 1)
    except ExperimentError as exc:
        text(f"graceful demo --node: {exc}")
        return 1
    for line in report(plain, with_policy):
        text(line)
    return 0
