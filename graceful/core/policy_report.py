"""The audit as ``wgpolicyk8s.io/v1alpha2`` PolicyReports, the format policy tools share.

Why: Kyverno, kube-bench, Falco and Trivy write PolicyReports, and Policy
Reporter draws them; a platform team reads every engine's results in one
place. This module decides what our results say; the operator only writes
them (``graceful.operator.policy_reports``).

Decisions, each taken here once:

- **One result per opted-in workload.** A workload that has not opted in was
  not checked, so it has no result (``skip`` would count every workload of the
  cluster). ``policy`` is the policy's reference as ``graceful.io/policy``
  names it (``NAME`` or ``cluster/NAME``); ``rule`` is the finding codes,
  comma-separated (``DrainBudget`` for a pass), so Policy Reporter groups by
  what is wrong; ``message`` is the findings' messages.
- **The outcome** (:func:`outcome`): ``error`` when the budget could not be
  checked at all (the policy is missing or unusable, the object or a timeout
  is unreadable, the kind is unsupported); else ``fail`` for any drain-budget
  finding; ``warn`` when all that is found is advisory (``StalePods``: the
  template is right and a rollout fixes the Pods; ``ReadinessWindowTooLong``:
  not a budget rule); ``pass`` when nothing is.
- **A result's timestamp** is when that result (outcome, rule, message) was
  first seen, carried over from the previous report: a report rewritten with
  the same results is byte-for-byte the same, so nothing churns.
- **Bounded reports.** etcd refuses objects above ~1.5 MB, and a namespace
  can hold 10,000 workloads. A namespace's results are spread over
  ``shards`` reports by a stable hash of kind and name (:func:`layout`), at
  most about :data:`RESULTS_PER_REPORT` each, so an edit rewrites one report
  of bounded size however large the namespace is.

Pure: no I/O, time passed in.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from graceful.core.findings import Finding, FindingCode, clip
from graceful.core.names import MANAGED_BY_LABEL, MANAGER

REPORT_API_VERSION: Final = "wgpolicyk8s.io/v1alpha2"
REPORT_KIND: Final = "PolicyReport"
REPORT_PLURAL: Final = "policyreports"
#: ``source`` of every result, and the ``managed-by`` label of every report we write.
SOURCE: Final = MANAGER
#: Selects the reports this product wrote (and nothing another engine wrote).
REPORT_SELECTOR: Final = f"{MANAGED_BY_LABEL}={SOURCE}"
CATEGORY: Final = "Graceful shutdown"
PASS_RULE: Final = "DrainBudget"  # noqa: S105 (a rule name)
#: Results per report on average: ~600 bytes each, so a report stays far below etcd's limit.
RESULTS_PER_REPORT: Final = 1000
MAX_MESSAGE: Final = 1024


class Outcome(StrEnum):
    """A result's ``result`` field (``skip`` is never used: see the module docstring)."""

    PASS = "pass"  # noqa: S105 (a result, not a password)
    FAIL = "fail"
    WARN = "warn"
    ERROR = "error"


#: The budget could not be checked: there is no answer, right or wrong, to give.
CHECK_FAILED: Final = frozenset({
    FindingCode.PolicyNotFound,
    FindingCode.PolicyInvalid,
    FindingCode.UnreadableWorkload,
    FindingCode.UnreadableTimeout,
    FindingCode.UnsupportedKind,
})
#: Advisory: the workload's own spec keeps the budget (or the rule is not a budget rule).
ADVISORY: Final = frozenset({FindingCode.StalePods, FindingCode.ReadinessWindowTooLong})

_SEVERITY: Final = {Outcome.FAIL: "high", Outcome.ERROR: "medium", Outcome.WARN: "low"}


def outcome(findings: Iterable[Finding]) -> Outcome:
    """``error`` > ``fail`` > ``warn`` > ``pass``, as the module docstring says."""
    codes = {f.code for f in findings}
    if codes & CHECK_FAILED:
        return Outcome.ERROR
    if codes - ADVISORY:
        return Outcome.FAIL
    return Outcome.WARN if codes else Outcome.PASS


@dataclass(frozen=True)
class Subject:
    """The workload a result is about."""

    namespace: str
    kind: str
    name: str
    api_version: str
    uid: str | None = None

    def reference(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name,
               "namespace": self.namespace}
        if self.uid:
            ref["uid"] = self.uid
        return ref


def timestamp(now: datetime) -> dict[str, int]:
    """A result's ``timestamp`` (whole seconds: the audit is not finer than that)."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return {"seconds": int(aware.timestamp()), "nanos": 0}


def _rule(findings: Sequence[Finding]) -> str:
    codes = list(dict.fromkeys(str(f.code) for f in findings))
    return ",".join(codes) if codes else PASS_RULE


def _message(findings: Sequence[Finding]) -> str:
    if not findings:
        return "keeps the drain budget"
    return clip("; ".join(f.message for f in findings), MAX_MESSAGE)


def result(subject: Subject, policy: str, findings: Sequence[Finding], *, now: datetime,
           previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The result of one opted-in workload.

    ``previous``: this workload's result in the last report; its ``timestamp`` is kept
    when nothing else changed.
    """
    verdict = outcome(findings)
    body: dict[str, Any] = {
        "source": SOURCE,
        "policy": policy,
        "rule": _rule(findings),
        "result": str(verdict),
        "message": _message(findings),
        "category": CATEGORY,
        "scored": True,
        "resources": [subject.reference()],
    }
    if verdict in _SEVERITY:
        body["severity"] = _SEVERITY[verdict]
    if previous is not None and same_result(body, previous):
        body["timestamp"] = dict(previous["timestamp"])
    else:
        body["timestamp"] = timestamp(now)
    return body


def same_result(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal but for the timestamp (which says since when, not what)."""
    keys = (a.keys() | b.keys()) - {"timestamp"}
    return (all(a.get(k) == b.get(k) for k in keys)
            and isinstance(b.get("timestamp"), Mapping))


def subject_key(result_body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the workload a result is about; None for a result not of ours."""
    resources = result_body.get("resources")
    if not isinstance(resources, list) or len(resources) != 1:
        return None
    ref = resources[0]
    if not isinstance(ref, Mapping):
        return None
    kind, name = ref.get("kind"), ref.get("name")
    return (kind, name) if isinstance(kind, str) and isinstance(name, str) else None


def layout(count: int, current: int = 1) -> int:
    """How many reports a namespace with ``count`` results is spread over (``current``:
    over how many it is now).

    A power of two, doubled when the reports would hold more than
    :data:`RESULTS_PER_REPORT` each on average, halved only once they would hold less
    than a quarter of it: a namespace that hovers around a boundary does not move
    every result back and forth.
    """
    shards = max(1, current)
    while shards * RESULTS_PER_REPORT < count:
        shards *= 2
    while shards > 1 and count <= shards * RESULTS_PER_REPORT // 4:
        shards //= 2
    return shards


def shard_of(kind: str, name: str, shards: int) -> int:
    """The report (0-based) a workload's result goes to: stable across processes."""
    if shards == 1:
        return 0
    return zlib.crc32(f"{kind}/{name}".encode()) % shards


def report_name(index: int, shards: int) -> str:
    """``graceful-operator``, or ``graceful-operator-N-I`` for report I of N.

    The count is in the name so that a layout change writes new reports and deletes
    the old ones instead of leaving a result in two of them.
    """
    return SOURCE if shards == 1 else f"{SOURCE}-{shards}-{index + 1}"


def summary(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    for body in results:
        counts[str(body["result"])] += 1
    return counts


def report(namespace: str, name: str, results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One PolicyReport: ``results`` sorted by kind and name, with their summary."""
    ordered = sorted(results, key=lambda r: subject_key(r) or ("", ""))
    return {
        "apiVersion": REPORT_API_VERSION,
        "kind": REPORT_KIND,
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {MANAGED_BY_LABEL: SOURCE}},
        "results": ordered,
        "summary": summary(ordered),
    }
