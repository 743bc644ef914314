"""The GracefulPolicy, as typed Python that mirrors ``crds/gracefulpolicy.yaml``.

A ClusterGracefulPolicy (``crds/clustergracefulpolicy.yaml``) is the same
model with ``kind`` set and one more spec field, ``namespaceSelector``: the
engine decides with either, and :mod:`graceful.core.selection` alone decides
which one a workload gets.

Why mirror the CRD instead of trusting the API server: the webhook and the
operator also build policies from objects that never went through validation
(a cache primed from a file, a test, ``graceful audit -f``). The models repeat
the schema's bounds and its CEL rules with the same messages, and a unit test
compares the two schemas field by field, so the Python side cannot drift from
what ``kubectl apply`` accepts.

The numbers are the drain budget of ``docs/shutdown-budget.md``: S (the preStop
sleep), G (the app's graceful timeout), M (a safety margin) and the ceiling
for ``terminationGracePeriodSeconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graceful.core.duration import MAX_SECONDS
from graceful.core.names import API_VERSION, CLUSTER_KIND, CLUSTER_POLICY_PREFIX, KIND

Mode = Literal["Enforce", "Audit"]
PreStopAction = Literal["Sleep", "Exec"]
UserValues = Literal["Keep", "Overwrite"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]

#: A container name: a DNS-1123 label, as Kubernetes requires.
ContainerName = Annotated[
    str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
]
LabelValue = Annotated[str, Field(max_length=63)]
#: The largest count the status reports; a namespace never holds more workloads.
MAX_COUNT = 1_000_000
MAX_MISMATCHES = 50

_M = TypeVar("_M", bound=BaseModel)

#: Strict like the API server: "30" is not an integer, unknown fields are errors.
_SPEC = ConfigDict(populate_by_name=True, extra="forbid", frozen=True, strict=True)


class PolicyError(ValueError):
    """A policy object that cannot be used; the message names the offending field."""


#: Longest message an invalid policy's Ready condition carries.
INVALID_MESSAGE_LIMIT = 1024


def invalid_policy_message(error: str) -> str:
    """Why a policy cannot be used (a :class:`PolicyError`'s text), on one line.

    The operator writes it into the policy's ``Ready`` condition, and a workload
    that names the policy is told the same words (``evaluate(..., invalid=...)``):
    one function, so the two places never explain it differently.
    """
    return " ".join(error.split())[:INVALID_MESSAGE_LIMIT] or "invalid policy"


class LabelSelectorRequirement(BaseModel):
    """One ``matchExpressions`` entry of a metav1.LabelSelector."""

    model_config = _SPEC

    key: Annotated[str, Field(min_length=1, max_length=317)]
    """The label key the requirement applies to."""
    operator: Operator
    """``In``/``NotIn`` need ``values``; ``Exists``/``DoesNotExist`` must have none."""
    values: Annotated[list[LabelValue], Field(max_length=64)] = []
    """The label values for ``In`` and ``NotIn``."""

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(MESSAGES["selector_values"])
        return self


class LabelSelector(BaseModel):
    """A metav1.LabelSelector over the workload's own labels."""

    model_config = _SPEC

    match_labels: Annotated[dict[str, LabelValue], Field(max_length=64)] = Field(
        default={}, alias="matchLabels", max_length=64
    )
    """Labels the workload must carry, all of them."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=16)] = Field(
        default=[], alias="matchExpressions", max_length=16
    )
    """Set-based requirements, all of which must hold."""

    @model_validator(mode="after")
    def _not_empty(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError(MESSAGES["selector_empty"])
        return self


class PlatformLimit(BaseModel):
    """A limit outside the Pod that cuts its grace period short, declared by the policy.

    The platform, not the Pod, decides how long some shutdowns may take:
    cluster-autoscaler's ``--max-graceful-termination-sec`` (default 600 s),
    graceful node shutdown (``shutdownGracePeriod - shutdownGracePeriodCriticalPods``),
    a Karpenter NodePool's ``terminationGracePeriod``, a spot interruption notice
    (30 s to 2 minutes). A budget above such a limit is cut there, whatever T says.
    """

    model_config = _SPEC

    name: Annotated[str, Field(min_length=1, max_length=63)]
    """What imposes it, as the warnings name it (``cluster-autoscaler``, ``spot notice``)."""
    seconds: int = Field(ge=1, le=MAX_SECONDS)
    """The longest shutdown it allows, in seconds."""


class Drain(BaseModel):
    """How the pod leaves: preStop sleep S, margin M, the ceiling for T."""

    model_config = _SPEC

    pre_stop_sleep_seconds: int = Field(default=5, ge=0, le=3600, alias="preStopSleepSeconds")
    """S: the preStop sleep, long enough for endpoint removal to reach every load balancer."""
    safety_margin_seconds: int = Field(default=5, ge=0, le=3600, alias="safetyMarginSeconds")
    """M: time after the app's own timeout, and its native sidecars' stop, before SIGKILL."""
    max_grace_period_seconds: int = Field(
        default=3900, ge=1, le=MAX_SECONDS, alias="maxGracePeriodSeconds"
    )
    """The ceiling for terminationGracePeriodSeconds; a cut is a finding, never silent."""
    pre_stop_action: PreStopAction = Field(default="Sleep", alias="preStopAction")
    """``Sleep``: the native sleep action (Kubernetes >= 1.30); ``Exec``: runs ``sleep S``."""
    batch_pre_stop: bool = Field(default=False, alias="batchPreStop")
    """Also give Jobs' and CronJobs' Pods the preStop sleep (they have no endpoints to
    leave, so by default T = G + M for them)."""
    set_proxy_drain: bool = Field(default=False, alias="setProxyDrain")
    """Set a mesh proxy's own drain (Istio's ``terminationDrainDuration`` in
    ``proxy.istio.io/config``, Linkerd's ``proxy-wait-before-exit-seconds``) on the pod
    template when it is shorter than the app's S + G; off: a finding and a warning only."""
    platform_limits: Annotated[list[PlatformLimit], Field(max_length=8)] = Field(
        default=[], alias="platformLimits", max_length=8)
    """Limits of the platform that cut T on some shutdowns (node drains, spot notices);
    a budget above the shortest is a warning and a finding naming it, never silent."""

    def shortest_limit(self) -> PlatformLimit | None:
        """The platform limit that cuts first, if any is declared."""
        return min(self.platform_limits, key=lambda limit: limit.seconds, default=None)

    @model_validator(mode="after")
    def _sleep_needs_seconds(self) -> Drain:
        if self.pre_stop_action == "Sleep" and self.pre_stop_sleep_seconds < 1:
            raise ValueError(MESSAGES["sleep_action"])
        return self


class Readiness(BaseModel):
    """Readiness probe timing, so a pod that turns not-ready on SIGTERM stops ``serving`` soon.

    Not a drain-budget rule: the endpoints mark a terminating Pod not ready
    because of its deletion timestamp, whatever its probe says.
    """

    model_config = _SPEC

    period_seconds: int = Field(default=1, ge=1, le=300, alias="periodSeconds")
    """The probe period set where the window is too long (never below ``timeoutSeconds``)."""
    failure_threshold: int = Field(default=3, ge=1, le=100, alias="failureThreshold")
    """Failures before not-ready."""

    @property
    def window(self) -> int:
        """Seconds from the first failed probe to not-ready."""
        return self.period_seconds * self.failure_threshold


class PolicySpec(BaseModel):
    """The declared drain budget (``spec`` of a GracefulPolicy)."""

    model_config = _SPEC

    mode: Mode = "Enforce"
    """``Enforce``: mutate at admission and audit; ``Audit``: report only."""
    selector: LabelSelector | None = None
    """Matches workloads of the namespace that do not carry the policy annotation."""
    graceful_timeout_seconds: int = Field(
        default=30, ge=0, le=MAX_SECONDS, alias="gracefulTimeoutSeconds"
    )
    """G when neither the annotation nor a command-line flag gives the app's timeout."""
    drain: Drain = Drain()
    """S, M and the ceiling."""
    readiness: Readiness | None = None
    """Under ``Overwrite``, existing readiness probes get this timing (``Keep`` only warns
    about a longer window); it shortens the ``serving`` flip, not the drain."""
    containers: Annotated[list[ContainerName], Field(max_length=32)] = []
    """Container names the policy applies to; empty means every app container."""
    proxy_containers: Annotated[list[ContainerName], Field(max_length=32)] = Field(
        default=[], alias="proxyContainers", max_length=32)
    """Names of proxies injected as ordinary containers, besides ``istio-proxy``,
    ``linkerd-proxy`` and ``cloud-sql-proxy``: not the app, so they get neither the preStop
    sleep nor a G of their own (an explicit ``containers`` list still wins)."""
    user_values: UserValues = Field(default="Keep", alias="userValues")
    """``Keep``: never lower a user value above the budget; ``Overwrite``: set exactly."""

    @model_validator(mode="after")
    def _budget_fits(self) -> PolicySpec:
        drain = self.drain
        needed = (drain.pre_stop_sleep_seconds + self.graceful_timeout_seconds
                  + drain.safety_margin_seconds)
        if needed > drain.max_grace_period_seconds:
            raise ValueError(MESSAGES["ceiling"])
        if len(set(self.containers)) != len(self.containers):
            raise ValueError(MESSAGES["containers_unique"])
        return self

    def budget_seconds(self, timeout: int | None = None) -> int:
        """S + G + M for an app with ``timeout`` (the policy default when None)."""
        g = self.graceful_timeout_seconds if timeout is None else timeout
        return self.drain.pre_stop_sleep_seconds + g + self.drain.safety_margin_seconds

    def default_grace_period(self) -> int:
        """T for an app with the default timeout: ``min(S + G + M, ceiling)``."""
        return min(self.budget_seconds(), self.drain.max_grace_period_seconds)


class ClusterPolicySpec(PolicySpec):
    """``spec`` of a ClusterGracefulPolicy: a GracefulPolicy's plus the namespaces it serves."""

    namespace_selector: LabelSelector = Field(alias="namespaceSelector")
    """The namespaces (by their labels) the policy is a default for. Required and never
    empty, like ``selector``: a budget for every namespace of the cluster is written
    out (``kubernetes.io/metadata.name Exists``), never implied."""


PolicyKind = Literal["GracefulPolicy", "ClusterGracefulPolicy"]


class Mismatch(BaseModel):
    """One workload that does not meet the policy, in the status."""

    model_config = _SPEC

    kind: Literal["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"]
    name: Annotated[str, Field(min_length=1, max_length=253)]
    reasons: Annotated[list[Annotated[str, Field(max_length=256)]], Field(max_length=16)] = []


class Condition(BaseModel):
    """A metav1.Condition (only ``Ready`` is written)."""

    model_config = _SPEC

    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: Literal["True", "False", "Unknown"]
    observed_generation: int = Field(default=0, ge=0, alias="observedGeneration")
    last_transition_time: str = Field(alias="lastTransitionTime", max_length=64)
    reason: Annotated[str, Field(min_length=1, max_length=1024)]
    message: Annotated[str, Field(max_length=32768)] = ""


class ClusterMismatch(Mismatch):
    """A mismatched workload in a ClusterGracefulPolicy's status: it also says where."""

    namespace: Annotated[str, Field(min_length=1, max_length=63)]


class PolicyStatus(BaseModel):
    """What the operator reports (``status`` of a GracefulPolicy)."""

    model_config = _SPEC

    observed_generation: int = Field(default=0, ge=0, alias="observedGeneration")
    grace_period_seconds: int = Field(default=0, ge=0, le=MAX_SECONDS,
                                      alias="gracePeriodSeconds")
    matched: int = Field(default=0, ge=0, le=MAX_COUNT)
    compliant: int = Field(default=0, ge=0, le=MAX_COUNT)
    mismatched: int = Field(default=0, ge=0, le=MAX_COUNT)
    mismatches: Annotated[list[Mismatch], Field(max_length=MAX_MISMATCHES)] = []
    mismatches_omitted: int = Field(default=0, ge=0, le=MAX_COUNT, alias="mismatchesOmitted")
    conditions: Annotated[list[Condition], Field(max_length=8)] = []


#: Narrowed in a subclass, as pydantic intends; mypy sees only list invariance.
_ClusterMismatches = Annotated[list[ClusterMismatch], Field(max_length=MAX_MISMATCHES)]


class ClusterPolicyStatus(PolicyStatus):
    """``status`` of a ClusterGracefulPolicy: the counts over every namespace it serves."""

    # narrowing a field in a subclass is what pydantic means here; mypy sees list invariance
    mismatches: _ClusterMismatches = []  # type: ignore[assignment]


class GracefulPolicy(BaseModel):
    """A GracefulPolicy object: its identity and its spec (and status, if read back)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    name: str
    namespace: str = ""
    generation: int = 0
    labels: dict[str, str] = {}
    spec: PolicySpec = PolicySpec()
    status: PolicyStatus | None = None
    kind: PolicyKind = KIND
    """ClusterGracefulPolicy objects carry a :class:`ClusterPolicySpec`."""

    @property
    def cluster(self) -> bool:
        """A ClusterGracefulPolicy (cluster-scoped)."""
        return self.kind == CLUSTER_KIND

    @property
    def reference(self) -> str:
        """How ``graceful.io/policy`` names this policy: ``NAME`` or ``cluster/NAME``."""
        return f"{CLUSTER_POLICY_PREFIX}{self.name}" if self.cluster else self.name

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> GracefulPolicy:
        """Build a policy from the dict the API returns; :class:`PolicyError` if unusable."""
        if not isinstance(obj, Mapping):
            raise PolicyError("policy: not an object")
        if obj.get("apiVersion", API_VERSION) != API_VERSION:
            raise PolicyError(f"apiVersion: expected {API_VERSION}")
        kind = obj.get("kind", KIND)
        if kind not in (KIND, CLUSTER_KIND):
            raise PolicyError(f"kind: expected {KIND} or {CLUSTER_KIND}")
        metadata = obj.get("metadata")
        if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
            raise PolicyError("metadata.name: required")
        spec_model: type[PolicySpec] = ClusterPolicySpec if kind == CLUSTER_KIND else PolicySpec
        spec = _validate(spec_model, obj.get("spec"), "spec")
        status_model = ClusterPolicyStatus if kind == CLUSTER_KIND else PolicyStatus
        raw_status = obj.get("status")
        status = None if raw_status is None else _validate(status_model, raw_status, "status")
        try:
            return cls(
                name=metadata["name"],
                kind=kind,
                namespace="" if kind == CLUSTER_KIND else metadata.get("namespace") or "",
                generation=metadata.get("generation") or 0,
                labels=metadata.get("labels") or {},
                spec=spec,
                status=status,
            )
        except ValidationError as exc:
            raise PolicyError(_describe(exc, "metadata")) from None

    def to_object(self) -> dict[str, Any]:
        """The policy as an API object (spec with every default filled in)."""
        obj: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {"name": self.name},
            "spec": _without_empty(self.spec.model_dump(by_alias=True, exclude_none=True)),
        }
        if self.namespace and not self.cluster:
            obj["metadata"]["namespace"] = self.namespace
        if self.labels:
            obj["metadata"]["labels"] = dict(self.labels)
        return obj


#: Messages shared by the CEL rules in the CRD and the validators above.
MESSAGES: dict[str, str] = {
    "ceiling": "maxGracePeriodSeconds must be at least preStopSleepSeconds"
               " + gracefulTimeoutSeconds + safetyMarginSeconds",
    "sleep_action": "preStopSleepSeconds must be at least 1 when preStopAction is Sleep",
    "containers_unique": "containers must not repeat a name",
    "selector_values": "values must be non-empty for In and NotIn, and empty for"
                       " Exists and DoesNotExist",
    "selector_empty": "selector must set matchLabels or matchExpressions"
                      " (an empty selector would match every workload)",
}

#: The field each cross-field rule is reported on, relative to the model it lives in.
_FIELD_OF_MESSAGE = {
    MESSAGES["ceiling"]: "drain.maxGracePeriodSeconds",
    MESSAGES["sleep_action"]: "preStopSleepSeconds",
    MESSAGES["containers_unique"]: "containers",
    MESSAGES["selector_values"]: "values",
    MESSAGES["selector_empty"]: "",
}


def _without_empty(value: Any) -> Any:
    """Drop empty lists and maps below the top level, as the API server stores them."""
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v not in ([], {})}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def _validate(model: type[_M], value: Any, root: str) -> _M:
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError as exc:
        raise PolicyError(_describe(exc, root)) from None


def _describe(exc: ValidationError, root: str) -> str:
    """The validation errors (the first three) as ``spec.field.path: message``."""
    parts = []
    for error in exc.errors()[:3]:
        message = str(error["msg"]).removeprefix("Value error, ")
        path = root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        extra = _FIELD_OF_MESSAGE.get(message)
        if extra:
            path += f".{extra}"
        parts.append(f"{path}: {message}")
    return "; ".join(parts)
