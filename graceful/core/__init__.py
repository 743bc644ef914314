"""graceful.core: the pure drain-budget engine shared by the webhook and the operator.

Nothing here performs I/O or imports a Kubernetes client or a web framework
(an import-linter contract enforces it), so every decision can be tested as a
plain function and both adapters are guaranteed to agree. Start with
:func:`evaluate`; the budget model is explained in ``docs/shutdown-budget.md``.
"""

from graceful.core.budget import Budget
from graceful.core.duration import MAX_SECONDS, DurationError, parse_seconds
from graceful.core.evaluate import Decision, evaluate
from graceful.core.findings import NEEDS_USER, Finding, FindingCode, is_compliant
from graceful.core.names import (
    ANNOTATION_POLICY,
    ANNOTATION_TIMEOUT,
    API_VERSION,
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    CLUSTER_POLICY_PREFIX,
    CLUSTER_SHORT_NAME,
    CLUSTER_SINGULAR,
    DEFAULT_OPERATOR_NAMESPACE,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    VERSION,
    WORKLOAD_KINDS,
)
from graceful.core.patch import Pointer, escape
from graceful.core.plan import ContainerPlan, Plan, ReadinessPlan
from graceful.core.podspec import is_bare_pod
from graceful.core.policy import (
    ClusterPolicySpec,
    Drain,
    GracefulPolicy,
    LabelSelector,
    LabelSelectorRequirement,
    PlatformLimit,
    PolicyError,
    PolicySpec,
    PolicyStatus,
    Readiness,
    invalid_policy_message,
)
from graceful.core.report import WorkloadResult, summarize, summarize_cluster
from graceful.core.rollout import Rollout, rollout_of
from graceful.core.selection import namespace_labels, selector_matches, serves
from graceful.core.stale import stale_pods
from graceful.core.timeout_sources import Timeout

__all__ = [
    "ANNOTATION_POLICY",
    "ANNOTATION_TIMEOUT",
    "API_VERSION",
    "CLUSTER_KIND",
    "CLUSTER_PLURAL",
    "CLUSTER_POLICY_PREFIX",
    "CLUSTER_SHORT_NAME",
    "CLUSTER_SINGULAR",
    "DEFAULT_OPERATOR_NAMESPACE",
    "GROUP",
    "KIND",
    "MAX_SECONDS",
    "NEEDS_USER",
    "PLURAL",
    "SHORT_NAME",
    "SINGULAR",
    "VERSION",
    "WORKLOAD_KINDS",
    "Budget",
    "ClusterPolicySpec",
    "ContainerPlan",
    "Decision",
    "Drain",
    "DurationError",
    "Finding",
    "FindingCode",
    "GracefulPolicy",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Plan",
    "PlatformLimit",
    "Pointer",
    "PolicyError",
    "PolicySpec",
    "PolicyStatus",
    "Readiness",
    "ReadinessPlan",
    "Rollout",
    "Timeout",
    "WorkloadResult",
    "escape",
    "evaluate",
    "invalid_policy_message",
    "is_bare_pod",
    "is_compliant",
    "namespace_labels",
    "parse_seconds",
    "rollout_of",
    "selector_matches",
    "serves",
    "stale_pods",
    "summarize",
    "summarize_cluster",
]
