"""The product's fixed names, in one place.

Why a module of constants: the API group, the annotations and the kinds are
shared by the CRD, the webhook, the operator, the docs and the tests. A typo in
any one of them is a silent no-op in Kubernetes (an annotation nobody reads),
so every layer imports them from here instead of spelling them again.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "graceful.io"
VERSION: Final = "v1alpha1"
KIND: Final = "GracefulPolicy"
PLURAL: Final = "gracefulpolicies"
SINGULAR: Final = "gracefulpolicy"
SHORT_NAME: Final = "gp"
API_VERSION: Final = f"{GROUP}/{VERSION}"
#: The cluster-scoped policy: the same spec plus a namespaceSelector.
CLUSTER_KIND: Final = "ClusterGracefulPolicy"
CLUSTER_PLURAL: Final = "clustergracefulpolicies"
CLUSTER_SINGULAR: Final = "clustergracefulpolicy"
CLUSTER_SHORT_NAME: Final = "cgp"
#: ``graceful.io/policy: cluster/NAME`` names a ClusterGracefulPolicy. A ``/``
#: is never part of an object name, so the value cannot be mistaken for a
#: GracefulPolicy of the namespace.
CLUSTER_POLICY_PREFIX: Final = "cluster/"
#: The label the API server puts on every Namespace (its name): a
#: namespaceSelector can always use it, even for a namespace we know nothing else of.
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"

ANNOTATION_POLICY: Final = "graceful.io/policy"
ANNOTATION_TIMEOUT: Final = "graceful.io/graceful-timeout"
#: The length of a preStop hook the engine cannot read: ``"20"``, or ``"app=20,nginx=5"``.
ANNOTATION_PRESTOP_SECONDS: Final = "graceful.io/prestop-seconds"

DEFAULT_OPERATOR_NAMESPACE: Final = "graceful-system"
#: What the operator writes carries ``MANAGED_BY_LABEL: MANAGER`` (its Events, its
#: PolicyReports, the webhook's Secret): it finds its own objects again by that label.
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGER: Final = "graceful-operator"

WORKLOAD_KINDS: Final = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
#: Containers that meshes and cloud SDKs inject next to the app: proxies, not the app.
PROXY_CONTAINERS: Final = frozenset({"istio-proxy", "linkerd-proxy", "cloud-sql-proxy"})
#: Kinds whose Pods run to completion: no endpoints to leave, so no preStop by default.
BATCH_KINDS: Final = ("Job", "CronJob")

#: Kubernetes' own default for ``terminationGracePeriodSeconds``.
KUBERNETES_DEFAULT_GRACE_SECONDS: Final = 30
#: Kubernetes' defaults for a readiness probe's timing fields.
KUBERNETES_DEFAULT_PROBE_PERIOD: Final = 10
KUBERNETES_DEFAULT_PROBE_FAILURE_THRESHOLD: Final = 3
KUBERNETES_DEFAULT_PROBE_TIMEOUT: Final = 1
#: Admission warnings should stay below this length (the API server truncates).
WARNING_LIMIT: Final = 120
