"""What is wrong with a workload, as data.

Why findings are separate from the patch: the webhook turns them into
admission warnings, the operator into status lines and Events, and the audit
CLI into an exit code. All three must agree on what "compliant" means, so the
engine produces one list and each adapter only formats it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from graceful.core.names import WARNING_LIMIT


class FindingCode(StrEnum):
    """Why a workload does not meet its policy's drain budget."""

    #: ``terminationGracePeriodSeconds`` is shorter than S + G + M (capped).
    GracePeriodBelowBudget = "GracePeriodBelowBudget"
    #: An app container has no preStop hook, so it gets SIGTERM while still in the endpoints.
    PreStopMissing = "PreStopMissing"
    #: A preStop sleep we can read is shorter than the policy's S.
    PreStopTooShort = "PreStopTooShort"
    #: readiness ``periodSeconds * failureThreshold`` exceeds S.
    ReadinessWindowTooLong = "ReadinessWindowTooLong"
    #: The timeout annotation or a command-line flag could not be read.
    UnreadableTimeout = "UnreadableTimeout"
    #: ``maxGracePeriodSeconds`` cuts into S + G + M: the app may be killed mid-drain.
    BudgetCapped = "BudgetCapped"
    #: The ``graceful.io/policy`` annotation names a policy that does not exist.
    PolicyNotFound = "PolicyNotFound"
    #: Running Pods predate the workload's compliant spec (reported by the operator).
    StalePods = "StalePods"
    #: The object is not a shape the engine can read (e.g. ``containers`` is not a list).
    UnreadableWorkload = "UnreadableWorkload"


@dataclass(frozen=True)
class Finding:
    """One reason a workload is not compliant, with the container it concerns."""

    code: FindingCode
    message: str
    container: str | None = None


def clip(text: str, limit: int = 40) -> str:
    """``text`` made printable and at most ``limit`` characters, for messages."""
    printable = text if text.isprintable() else "".join(
        ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."


def warning(text: str) -> str:
    """An admission warning: prefixed, printable, below the API server's limit."""
    message = text if text.startswith("graceful: ") else f"graceful: {text}"
    return clip(message, WARNING_LIMIT - 1)
