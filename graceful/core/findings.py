"""What is wrong with a workload, as data.

Why findings are separate from the patch: the webhook turns them into
admission warnings, the operator into status lines and Events, and the audit
CLI into an exit code. All three must agree on what "compliant" means, so the
engine produces one list and each adapter only formats it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from graceful.core.names import WARNING_LIMIT


class FindingCode(StrEnum):
    """Why a workload does not meet its policy's drain budget."""

    #: ``terminationGracePeriodSeconds`` is shorter than S + G + M (capped).
    GracePeriodBelowBudget = "GracePeriodBelowBudget"
    #: An app container has no preStop hook, so it gets SIGTERM while still in the endpoints.
    PreStopMissing = "PreStopMissing"
    #: A preStop sleep we can read is shorter than the policy's S.
    PreStopTooShort = "PreStopTooShort"
    #: A readiness probe's ``periodSeconds * failureThreshold`` exceeds the policy's
    #: ``readiness`` window, and the policy may shorten it (not a drain-budget rule: the
    #: endpoints drop the Pod at deletion; this only speeds up the ``serving`` flip).
    ReadinessWindowTooLong = "ReadinessWindowTooLong"
    #: The timeout or hook-length annotation, or a command-line flag, could not be read.
    UnreadableTimeout = "UnreadableTimeout"
    #: ``maxGracePeriodSeconds`` cuts into S + G + M: the app may be killed mid-drain.
    BudgetCapped = "BudgetCapped"
    #: The ``graceful.io/policy`` annotation names a policy that does not exist.
    PolicyNotFound = "PolicyNotFound"
    #: The annotation names a policy that exists but cannot be used (its status says why).
    PolicyInvalid = "PolicyInvalid"
    #: Running Pods predate the workload's compliant spec (reported by the operator).
    StalePods = "StalePods"
    #: The object is not a shape the engine can read (e.g. ``containers`` is not a list).
    UnreadableWorkload = "UnreadableWorkload"
    #: A grace period set above ``maxGracePeriodSeconds`` (kept under ``Keep``): the ceiling
    #: exists so that a typo cannot hold a node drain for days.
    GracePeriodAboveCeiling = "GracePeriodAboveCeiling"
    #: A preStop hook the engine cannot read (a script, an httpGet) and whose length no
    #: ``graceful.io/prestop-seconds`` declares: it may eat the app's drain.
    PreStopDurationUnknown = "PreStopDurationUnknown"
    #: A preStop hook the kubelet does not run (``tcpSocket``): the app gets SIGTERM at once.
    PreStopInvalid = "PreStopInvalid"
    #: A liveness or startup probe without its own ``terminationGracePeriodSeconds`` on a
    #: long grace period: a hung container waits all of T before it is restarted.
    ProbeGracePeriodMissing = "ProbeGracePeriodMissing"
    #: S + G + M exceeds a platform limit the policy declares (``drain.platformLimits``):
    #: that shutdown (a node drain, a spot notice) kills the app mid-drain whatever T is.
    PlatformLimitBelowBudget = "PlatformLimitBelowBudget"
    #: The object opted in but is of a kind the engine does not handle: never silence.
    UnsupportedKind = "UnsupportedKind"
    #: A mesh proxy injected as an ordinary container leaves before the app's S + G is over
    #: (Istio's ``terminationDrainDuration``, Linkerd's ``proxy-wait-before-exit-seconds``):
    #: the app loses the network in the middle of its drain.
    ProxyDrainTooShort = "ProxyDrainTooShort"


@dataclass(frozen=True)
class Finding:
    """One reason a workload is not compliant, with the container it concerns."""

    code: FindingCode
    message: str
    container: str | None = None


#: Findings the webhook's patch cannot remove: they need the user (a value to declare or
#: fix, a ceiling to raise) or a rollout. Every other finding is gone once the object is
#: admitted under an ``Enforce`` policy.
NEEDS_USER: Final = frozenset({
    FindingCode.BudgetCapped,
    FindingCode.UnreadableTimeout,
    FindingCode.PolicyNotFound,
    FindingCode.StalePods,
    FindingCode.UnreadableWorkload,
    FindingCode.GracePeriodAboveCeiling,
    FindingCode.PreStopDurationUnknown,
    FindingCode.PreStopInvalid,
    FindingCode.ProbeGracePeriodMissing,
    FindingCode.PlatformLimitBelowBudget,
    FindingCode.UnsupportedKind,
    FindingCode.ProxyDrainTooShort,
})


def is_compliant(opted_in: bool, policy_found: bool, findings: Iterable[Finding]) -> bool:
    """The one definition of compliance: opted in, its policy exists, and nothing is found.

    The webhook's decision, the operator's status, ``graceful audit`` and
    ``graceful explain`` all ask this function, so they cannot disagree.
    """
    return opted_in and policy_found and not any(True for _ in findings)


def clip(text: str, limit: int = 40) -> str:
    """``text`` made printable and at most ``limit`` characters, for messages."""
    printable = text if text.isprintable() else "".join(
        ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


def warning(text: str) -> str:
    """An admission warning: prefixed, printable, below the API server's limit."""
    message = text if text.startswith("graceful: ") else f"graceful: {text}"
    return clip(message, WARNING_LIMIT - 1)
