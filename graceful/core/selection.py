"""Which policy, if any, a workload has opted into.

Why the annotation wins over selectors: the annotation is an explicit choice
made on the workload itself, so it is honoured even when the named policy does
not exist (that is a finding, ``PolicyNotFound``, and nothing is mutated: a
typo must not silently fall back to some other policy). Selectors are the
namespace owner's blanket rule; when several match, the first by name wins so
the result never depends on the order the API lists them in.

ClusterGracefulPolicies are the platform's defaults, so anything the
namespace says comes first. In order:

1. ``graceful.io/policy: NAME``: the GracefulPolicy NAME of the namespace;
   ``graceful.io/policy: cluster/NAME``: the ClusterGracefulPolicy NAME, if its
   ``namespaceSelector`` selects the namespace (else not found: a platform that
   scoped a policy to some namespaces meant it).
2. A GracefulPolicy of the namespace whose ``selector`` matches.
3. A ClusterGracefulPolicy whose ``namespaceSelector`` selects the namespace
   and whose ``selector`` matches the workload.

Why a prefix rather than looking NAME up in the namespace and then in the
cluster: with a lookup order, creating (or deleting) a GracefulPolicy in a
namespace would silently move every workload that named the cluster policy
onto another budget, and a typo could land on a cluster policy of that name.
``cluster/NAME`` says which object is meant in the value itself, can never be
a GracefulPolicy's name (``/`` is not allowed in one), and reads the same in a
``PolicyNotFound`` finding as in the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from graceful.core.names import ANNOTATION_POLICY, CLUSTER_POLICY_PREFIX, NAMESPACE_NAME_LABEL
from graceful.core.policy import ClusterPolicySpec, GracefulPolicy, LabelSelector


@dataclass(frozen=True)
class Selection:
    """The outcome of opting in."""

    opted_in: bool
    policy_name: str | None = None
    """How the policy is named in ``graceful.io/policy``: ``NAME`` or ``cluster/NAME``."""
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


def namespace_labels(namespace: str, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """A namespace's labels as the API server keeps them (its name label always set)."""
    found = dict(labels or {})
    if namespace:
        found[NAMESPACE_NAME_LABEL] = namespace
    return found


def serves(policy: GracefulPolicy, ns_labels: Mapping[str, str]) -> bool:
    """Is ``policy`` usable in a namespace with these labels? (always, for a namespaced one)."""
    if not policy.cluster:
        return True
    spec = policy.spec
    return isinstance(spec, ClusterPolicySpec) and selector_matches(spec.namespace_selector,
                                                                    ns_labels)


def select(annotations: Mapping[str, str], labels: Mapping[str, str],
           policies: Iterable[GracefulPolicy],
           ns_labels: Mapping[str, str] | None = None) -> Selection:
    """The policy a workload uses, in the order of the module docstring.

    ``policies`` holds the namespace's GracefulPolicies and the cluster's
    ClusterGracefulPolicies alike; ``ns_labels`` are the namespace's labels
    (None: nothing is known of the namespace, so no cluster policy selects it).
    """
    ordered = sorted(policies, key=lambda p: p.name)
    local = [p for p in ordered if not p.cluster]
    cluster = [p for p in ordered if p.cluster and ns_labels is not None
               and serves(p, ns_labels)]
    wanted = annotations.get(ANNOTATION_POLICY)
    if wanted is not None:
        if wanted.startswith(CLUSTER_POLICY_PREFIX):
            name = wanted.removeprefix(CLUSTER_POLICY_PREFIX)
            found = next((p for p in cluster if p.name == name), None)
        else:
            found = next((p for p in local if p.name == wanted), None)
        return Selection(opted_in=True, policy_name=wanted, policy=found)
    for policy in (*local, *cluster):
        if policy.spec.selector is not None and selector_matches(policy.spec.selector, labels):
            return Selection(opted_in=True, policy_name=policy.reference, policy=policy)
    return Selection(opted_in=False)
