"""Which policy, if any, a workload has opted into.

Why the annotation wins over selectors: the annotation is an explicit choice
made on the workload itself, so it is honoured even when the named policy does
not exist (that is a finding, ``PolicyNotFound``, and nothing is mutated: a
typo must not silently fall back to some other policy). Selectors are the
namespace owner's blanket rule; when several match, the first by name wins so
the result never depends on the order the API lists them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from graceful.core.names import ANNOTATION_POLICY
from graceful.core.policy import GracefulPolicy, LabelSelector


@dataclass(frozen=True)
class Selection:
    """The outcome of opting in."""

    opted_in: bool
    policy_name: str | None = None
    policy: GracefulPolicy | None = None


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every label and every expression must hold."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
        if req.operator == "In" and (not present or labels[req.key] not in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
    return True


def select(annotations: Mapping[str, str], labels: Mapping[str, str],
           policies: Iterable[GracefulPolicy]) -> Selection:
    """The annotation's policy, else the first policy by name whose selector matches."""
    ordered = sorted(policies, key=lambda p: p.name)
    wanted = annotations.get(ANNOTATION_POLICY)
    if wanted is not None:
        found = next((p for p in ordered if p.name == wanted), None)
        return Selection(opted_in=True, policy_name=wanted, policy=found)
    for policy in ordered:
        if policy.spec.selector is not None and selector_matches(policy.spec.selector, labels):
            return Selection(opted_in=True, policy_name=policy.name, policy=policy)
    return Selection(opted_in=False)
