"""One pure function from a workload and its namespace's policies to a decision.

Why one function for both adapters: the webhook mutates with the patch and
the operator reports the findings. If they computed "compliant" separately
they would drift, and a workload the webhook just fixed would show up as a
mismatch (or the reverse). Both call :func:`evaluate`.

The findings describe the object *as given*; the patch and the plan describe
it *after* the mutation. Admitting the patched object again yields an empty
patch (idempotence), which is what lets the webhook run on every update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from graceful.core import prestop, proxies, timeout_sources
from graceful.core.budget import Budget
from graceful.core.findings import Finding, FindingCode, clip, is_compliant, warning
from graceful.core.names import (
    ANNOTATION_PRESTOP_SECONDS,
    BATCH_KINDS,
    CLUSTER_POLICY_PREFIX,
    GROUP,
    KUBERNETES_DEFAULT_GRACE_SECONDS,
    KUBERNETES_DEFAULT_PROBE_FAILURE_THRESHOLD,
    KUBERNETES_DEFAULT_PROBE_PERIOD,
    KUBERNETES_DEFAULT_PROBE_TIMEOUT,
    PROXY_CONTAINERS,
)
from graceful.core.patch import PatchBuilder, Pointer
from graceful.core.plan import ContainerPlan, Plan, PreStopChange, ReadinessPlan
from graceful.core.podspec import (
    ContainerView,
    UnreadableObject,
    UnsupportedKind,
    annotations_of,
    labels_of,
    metadata_of,
    pod_annotations,
    read_pod_spec,
    string_map,
    template_path,
)
from graceful.core.policy import GracefulPolicy, PolicySpec, invalid_policy_message
from graceful.core.selection import select


@dataclass(frozen=True)
class Decision:
    """What the engine decided for one workload."""

    opted_in: bool
    """The policy annotation is present or a policy's selector matched."""
    policy_name: str | None = None
    """The policy asked for (even when it does not exist)."""
    policy: GracefulPolicy | None = None
    """The policy found."""
    plan: Plan | None = None
    """The settings the budget needs; None when nothing could be planned."""
    patch: list[dict[str, Any]] = field(default_factory=list)
    """RFC 6902 operations for the object as given; empty in Audit mode."""
    warnings: list[str] = field(default_factory=list)
    """Admission warnings, each under 120 characters."""
    findings: list[Finding] = field(default_factory=list)
    """Why the object as given does not meet the policy."""
    admitted: Mapping[str, Any] | None = None
    """The object as it will be stored: ``patch`` applied (the object itself when the patch
    is empty; None only when the input was not an object). It shares unchanged parts with
    the input, so consumers must not modify it; they need not apply the patch again."""

    @property
    def compliant(self) -> bool:
        """Opted in, policy found, and no findings (:func:`is_compliant`)."""
        return is_compliant(self.opted_in, self.policy is not None, self.findings)


def evaluate(obj: Mapping[str, Any], policies: Iterable[GracefulPolicy],
             invalid: Mapping[str, str] | None = None, *,
             previous: Mapping[str, Any] | None = None,
             ns_labels: Mapping[str, str] | None = None) -> Decision:
    """Decide the shutdown settings of ``obj`` under the policies of its namespace.

    ``invalid`` maps the names of the namespace's policies that exist but cannot
    be used to their :class:`PolicyError` text, so that a workload naming one is
    told it is invalid and why, not that it is missing.

    ``policies`` may include ClusterGracefulPolicies; they apply only where
    ``ns_labels`` (the namespace's labels, see
    :func:`graceful.core.selection.namespace_labels`) match their
    ``namespaceSelector``. ``invalid`` names an invalid cluster policy
    ``cluster/NAME``, as a workload's annotation does.

    ``previous`` is the stored object of an UPDATE. When its pod template and
    its ``graceful.io/*`` annotations equal ``obj``'s, nothing is mutated (an
    unrelated ``kubectl annotate``, or a GitOps sync after a policy edit, must
    not roll the workload): the findings still say what differs, the audit
    reports the drift, and the next template change applies the policy.

    Never raises on a malformed object: it returns a decision with a warning
    (and, when the object opted in, an ``UnreadableWorkload`` finding).
    """
    decision = _evaluate(obj, policies, invalid, ns_labels)
    if previous is None or not decision.patch or not same_template(previous, obj):
        return decision
    return replace(decision, patch=[], admitted=obj, warnings=_unique([
        warning("pod template unchanged: not mutated (no rollout); the next template"
                " change applies the policy"),
        *(w for w in decision.warnings if not w.startswith("graceful: budget "))]))


def _template_of(obj: Mapping[str, Any]) -> Any:
    node: Any = obj
    for part in template_path(obj).parts:
        node = node.get(str(part)) if isinstance(node, Mapping) else None
    return node


def _graceful_annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    try:
        annotations = string_map(metadata_of(obj).get("annotations"), "/metadata/annotations")
    except UnreadableObject:
        return {}
    return {k: v for k, v in annotations.items() if k.startswith(f"{GROUP}/")}


def same_template(previous: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Whether an UPDATE leaves the pod template and the ``graceful.io/*`` annotations alone.

    Only then can the webhook's patch be the one thing that changes the
    template, i.e. the one thing that starts a rollout. A bare Pod's spec is
    immutable, so for Pods this is never asked.
    """
    template = _template_of(obj)
    return (template is not None and template == _template_of(previous)
            and _graceful_annotations(obj) == _graceful_annotations(previous))


def _evaluate(obj: Mapping[str, Any], policies: Iterable[GracefulPolicy],
              invalid: Mapping[str, str] | None,
              ns_labels: Mapping[str, str] | None) -> Decision:
    try:
        annotations = annotations_of(obj)
        labels = labels_of(obj)
    except UnreadableObject as exc:
        return Decision(opted_in=False, warnings=[warning(f"cannot read the object: {exc}")],
                        admitted=obj if isinstance(obj, Mapping) else None)
    selection = select(annotations, labels, policies, ns_labels)
    if not selection.opted_in:
        return Decision(opted_in=False, admitted=obj)
    name = selection.policy_name or ""
    if selection.policy is None:
        return _unusable(name, (invalid or {}).get(name), obj)
    try:
        return _Planner(obj, annotations, selection.policy).decide()
    except UnsupportedKind as exc:
        return Decision(
            opted_in=True, policy_name=name, policy=selection.policy,
            warnings=[warning(f"{exc}; not mutated")],
            findings=[Finding(FindingCode.UnsupportedKind, f"{exc}: not handled")],
            admitted=obj,
        )
    except UnreadableObject as exc:
        return Decision(
            opted_in=True, policy_name=name, policy=selection.policy,
            warnings=[warning(f"cannot read {exc}; not mutated")],
            findings=[Finding(FindingCode.UnreadableWorkload, f"cannot read {exc}")],
            admitted=obj,
        )


def _unusable(name: str, error: str | None, obj: Mapping[str, Any]) -> Decision:
    """The decision for an annotation naming a policy that is missing, or there but invalid."""
    if error is None:
        code, message = FindingCode.PolicyNotFound, f"policy {clip(name)!r} not found"
        if name.startswith(CLUSTER_POLICY_PREFIX):
            message += " or not for this namespace"
    else:
        code = FindingCode.PolicyInvalid
        message = f"policy {clip(name)!r} is invalid: {invalid_policy_message(error)}"
    return Decision(opted_in=True, policy_name=name, warnings=[warning(message)],
                    findings=[Finding(code, message)], admitted=obj)


def _whole(probe: Mapping[str, Any], key: str, default: int, where: Pointer) -> int:
    """``probe[key]``, a positive whole number (``default`` when absent)."""
    value = probe.get(key)
    if value is None:
        return default
    if type(value) is not int or value < 1:
        raise UnreadableObject(f"{where / key} is not a positive whole number")
    return value


class _Planner:
    """The steps of one evaluation, sharing the patch builder and the findings."""

    def __init__(self, obj: Mapping[str, Any], annotations: Mapping[str, str],
                 policy: GracefulPolicy) -> None:
        self.obj = obj
        self.annotations = annotations
        self.policy = policy
        self.spec: PolicySpec = policy.spec
        self.builder = PatchBuilder(obj)
        self.findings: list[Finding] = []
        self.warnings: list[str] = []
        self.declared = prestop.Declared()

    def decide(self) -> Decision:
        spec = self.spec
        pod = read_pod_spec(self.obj)
        annotation, found = timeout_sources.from_annotation(self.annotations)
        self._note(found)
        self.declared, found = prestop.declared(self.annotations)
        self._note(found)
        wanted = set(spec.containers)
        # An injected proxy in ``containers`` is not the app: it must not get the app's
        # sleep and G (an explicit ``spec.containers`` list still wins).
        proxy_names = PROXY_CONTAINERS | set(spec.proxy_containers)
        selected = [c for c in pod.containers
                    if (c.name in wanted if wanted else c.name not in proxy_names)]
        names = {c.name for c in pod.containers}
        for missing in spec.containers:
            if missing not in names:
                self.warnings.append(warning(f"policy container {clip(missing)!r} not in the pod"))
        plans = tuple(self._container(c, annotation) for c in selected)
        if plans:
            budget = max(plans, key=lambda p: p.budget.required).budget
            if budget.pre_stop_known and not all(p.pre_stop_known for p in plans):
                budget = replace(budget, pre_stop_known=False)
        else:
            timeout, _ = timeout_sources.resolve(annotation, None, spec.graceful_timeout_seconds)
            budget = self._budget(spec.drain.pre_stop_sleep_seconds, timeout.seconds)
        unknown = [p.name for p in plans if not p.pre_stop_known]
        app_end = max((p.budget.pre_stop + p.budget.timeout for p in plans),
                      default=budget.pre_stop + budget.timeout)
        budget = self._sidecars(pod.sidecar_containers, budget, app_end, unknown)
        # By identity: a view's equality compares its whole container, once per pair.
        chosen = {id(c) for c in selected}
        others = [c for c in pod.containers if id(c) not in chosen]
        self._mesh_proxies(others, app_end)
        grace = self._grace(pod.path, pod.grace, budget, unknown)
        self._restart_grace(selected, pod.grace, grace)
        untouched = tuple(c.name for c in others) + pod.sidecars
        plan = Plan(pod_spec_path=str(pod.path), budget=budget, grace_period_seconds=grace,
                    containers=plans, untouched=untouched)
        patch = self.builder.ops
        admitted: Mapping[str, Any] = self.builder.doc if patch else self.obj
        if spec.mode == "Audit":
            patch, admitted = [], self.obj
            self.warnings.insert(0, warning(f"policy {clip(self.policy.name)!r} audits only;"
                                            " not mutated"))
            self.warnings.extend(warning(f"audit: {f.message}") for f in self.findings
                                 if f.code is not FindingCode.UnreadableTimeout)
        elif patch:
            self.warnings.insert(0, warning(budget.explain()))
        return Decision(opted_in=True, policy_name=self.policy.reference, policy=self.policy,
                        plan=plan, patch=patch, warnings=_unique(self.warnings),
                        findings=self.findings, admitted=admitted)

    def _note(self, findings: list[Finding]) -> None:
        """Record findings that also deserve an admission warning."""
        if not findings:  # the usual case, once per container
            return
        self.findings.extend(findings)
        self.warnings.extend(warning(f.message) for f in findings)

    def _budget(self, pre_stop: int, timeout: int, *, pre_stop_known: bool = True) -> Budget:
        drain = self.spec.drain
        return Budget(pre_stop=pre_stop, timeout=timeout, margin=drain.safety_margin_seconds,
                      ceiling=drain.max_grace_period_seconds, pre_stop_known=pre_stop_known)

    def _container(self, container: ContainerView,
                   annotation: timeout_sources.Timeout | None) -> ContainerPlan:
        timeout, found = timeout_sources.resolve(annotation, container.raw,
                                                 self.spec.graceful_timeout_seconds)
        self._note(found)
        change, pre_stop = self._pre_stop(container)
        readiness = self._readiness(container)
        budget = self._budget(pre_stop, timeout.seconds,
                              pre_stop_known=change != "keep-unknown")
        return ContainerPlan(name=container.name, timeout=timeout, pre_stop=change,
                             pre_stop_seconds=pre_stop, readiness=readiness, budget=budget)

    def _pre_stop(self, container: ContainerView) -> tuple[PreStopChange, int]:
        """Add, raise or keep the preStop hook; returns the change and the sleep it counts.

        A Job's or CronJob's Pod has no endpoints to leave, so it gets no sleep
        (T = G + M) unless the policy asks with ``drain.batchPreStop``.
        """
        drain = self.spec.drain
        wanted = drain.pre_stop_sleep_seconds
        if self.obj.get("kind") in BATCH_KINDS and not drain.batch_pre_stop:
            wanted = 0
        lifecycle = container.raw.get("lifecycle")
        if lifecycle is not None and not isinstance(lifecycle, Mapping):
            raise UnreadableObject(f"{container.path}/lifecycle is not an object")
        existing = prestop.read(lifecycle.get("preStop") if lifecycle else None)
        hook_path = Pointer((*container.path.parts, "lifecycle", "preStop"))
        name = clip(container.name)
        if existing.shape == "none":
            if wanted == 0:
                return "none", 0
            self.findings.append(Finding(FindingCode.PreStopMissing,
                                         f"container {name}: no preStop hook", container.name))
            self.builder.set(hook_path, prestop.hook_for(drain.pre_stop_action, wanted))
            return "add", wanted
        if existing.shape == "invalid":
            self._invalid_hook(container)
            return "keep-invalid", 0
        if existing.shape == "unknown" or existing.seconds is None:
            length = self.declared.for_container(container.name)
            if length is not None:
                return "keep-declared", length
            self._unknown_hook(container)
            return "keep-unknown", wanted
        if existing.seconds < wanted:
            self.findings.append(Finding(
                FindingCode.PreStopTooShort,
                f"container {name}: preStop sleep {existing.seconds}s < {wanted}s",
                container.name))
            self._set_sleep(hook_path, existing, wanted)
            return "raise", wanted
        if existing.seconds > wanted and self.spec.user_values == "Overwrite":
            self._set_sleep(hook_path, existing, wanted)
            return "lower", wanted
        return "keep", existing.seconds

    def _hook_length(self, container: ContainerView) -> tuple[int, bool]:
        """How long a container's existing preStop runs, never mutated; and whether known."""
        lifecycle = container.raw.get("lifecycle")
        if lifecycle is not None and not isinstance(lifecycle, Mapping):
            raise UnreadableObject(f"{container.path}/lifecycle is not an object")
        existing = prestop.read(lifecycle.get("preStop") if lifecycle else None)
        if existing.shape == "none":
            return 0, True
        if existing.shape == "invalid":
            self._invalid_hook(container)
            return 0, True
        if existing.seconds is not None:
            return existing.seconds, True
        length = self.declared.for_container(container.name)
        if length is not None:
            return length, True
        self._unknown_hook(container)
        return 0, False

    def _invalid_hook(self, container: ContainerView) -> None:
        """A preStop the kubelet never runs (tcpSocket): kept as it is, and said."""
        self._note([Finding(
            FindingCode.PreStopInvalid,
            f"container {clip(container.name)}: preStop tcpSocket is never run by the kubelet;"
            " use sleep, exec or httpGet", container.name)])

    def _unknown_hook(self, container: ContainerView) -> None:
        """A preStop whose length cannot be read is never counted as S: kept, warned, reported."""
        self.warnings.append(warning(
            f"kept existing preStop on container {clip(container.name, 32)}"
            " (duration unknown)"))
        self.findings.append(Finding(
            FindingCode.PreStopDurationUnknown,
            f"container {clip(container.name)}: preStop hook of unknown length; declare it with"
            f" {ANNOTATION_PRESTOP_SECONDS}", container.name))

    def _sidecars(self, sidecars: tuple[ContainerView, ...], budget: Budget, app_end: int,
                  unknown: list[str]) -> Budget:
        """Count the native sidecars' stop, which comes after the app's, in the budget.

        Every preStop hook starts with the shutdown, but a sidecar gets SIGTERM only
        once the app and the sidecars declared after it have exited; then it drains
        for as long as its program says (a flag of a known program, or an Istio
        proxy's ``terminationDrainDuration``). Sidecars are never mutated.
        """
        if not sidecars:
            return budget
        pod_annotations_ = pod_annotations(self.obj)[1]
        stops = []
        for sidecar in sidecars:
            pre_stop, known = self._hook_length(sidecar)
            if not known:
                unknown.append(sidecar.name)
                budget = replace(budget, pre_stop_known=False)
            mesh = proxies.mesh_of(sidecar.name)
            if mesh == "istio":
                drain = self._mesh_drain(mesh, pod_annotations_)
                seconds = 0 if drain is None else drain.seconds
            else:
                timeout, found = timeout_sources.resolve(None, sidecar.raw, 0)
                self._note(found)
                seconds = timeout.seconds
            stops.append(proxies.SidecarStop(sidecar.name, pre_stop, seconds))
        return replace(budget, sidecars=proxies.sidecars_end(app_end, tuple(stops)) - app_end)

    def _mesh_drain(self, mesh: proxies.Mesh,
                    annotations: Mapping[str, str]) -> proxies.MeshDrain | None:
        try:
            return proxies.mesh_drain(mesh, annotations)
        except proxies.ProxyConfigError as exc:
            self._note([Finding(FindingCode.UnreadableTimeout, f"unreadable {exc}")])
            return None

    def _mesh_proxies(self, others: list[ContainerView], app_end: int) -> None:
        """Check that a mesh proxy run as an ordinary container outlives the app's drain.

        It gets SIGTERM when the shutdown starts and leaves after its own drain
        setting, while the app needs the network for S + G. The fix is an annotation
        of the Pod, which the policy sets itself with ``drain.setProxyDrain``.
        """
        found: tuple[Pointer, dict[str, str]] | None = None
        for container in others:
            mesh = proxies.mesh_of(container.name)
            if mesh is None:
                continue
            if found is None:  # read once, and only for a pod with a mesh proxy
                found = pod_annotations(self.obj)
            where, annotations = found
            drain = self._mesh_drain(mesh, annotations)
            if drain is None:
                continue
            seconds = drain.seconds
            # Linkerd's injector renders its annotation as a preStop sleep of the proxy:
            # an already injected proxy (``linkerd inject``) keeps the sleep it was given.
            hook = container.raw.get("lifecycle")
            existing = prestop.read(hook.get("preStop") if isinstance(hook, Mapping) else None)
            if mesh == "linkerd" and existing.seconds is not None:
                seconds = max(seconds, existing.seconds)
            if seconds >= app_end:
                continue
            name = clip(container.name)
            self.findings.append(Finding(
                FindingCode.ProxyDrainTooShort,
                f"container {name} leaves {seconds}s after the shutdown starts, before the"
                f" app's {app_end}s", container.name))
            if self.spec.drain.set_proxy_drain and self.spec.mode == "Enforce":
                key, value = proxies.drain_setting(mesh, annotations, app_end)
                self.builder.set(where / key, value)
                if mesh == "linkerd" and existing.seconds is not None:
                    self._set_sleep(container.path / "lifecycle" / "preStop", existing, app_end)
                self.warnings.append(warning(f"set {proxies.how_to_set(mesh, app_end)}"))
            else:
                self.warnings.append(warning(
                    f"{name} leaves at {seconds}s < app's {app_end}s:"
                    f" set {proxies.how_to_set(mesh, app_end)}"))

    def _set_sleep(self, hook_path: Pointer, existing: prestop.PreStop, seconds: int) -> None:
        relative, value = existing.value_for(seconds)
        self.builder.set(hook_path.join(relative), value)

    def _readiness(self, container: ContainerView) -> ReadinessPlan | None:
        """Shorten an existing readiness probe's window to the policy's, if it asks.

        Not part of the drain budget: the endpoints drop a terminating Pod because
        of its deletion timestamp, and SIGTERM comes only after the preStop, so a
        readiness flip on SIGTERM changes only the EndpointSlice ``serving``
        condition (which a few load balancers use for terminating endpoints).
        Only under ``Overwrite``: the API server fills in the probe's defaults
        before any mutating webhook sees it, so every value looks like one the
        user wrote, and ``Keep`` never lowers one (a longer window is a warning).
        No period is set below the probe's timeout; an exec probe that would run
        more often is a warning.
        """
        probe = container.raw.get("readinessProbe")
        if probe is None:
            return None
        where = container.path / "readinessProbe"
        if type(probe) is not dict and not isinstance(probe, Mapping):  # the ABC check is slow
            raise UnreadableObject(f"{where} is not an object")
        period = _whole(probe, "periodSeconds", KUBERNETES_DEFAULT_PROBE_PERIOD, where)
        threshold = _whole(probe, "failureThreshold", KUBERNETES_DEFAULT_PROBE_FAILURE_THRESHOLD,
                           where)
        probe_timeout = _whole(probe, "timeoutSeconds", KUBERNETES_DEFAULT_PROBE_TIMEOUT, where)
        current = ReadinessPlan(period, threshold)
        tuning = self.spec.readiness
        if tuning is None:
            return current
        target_period = max(tuning.period_seconds, probe_timeout)
        if self.spec.user_values == "Overwrite":
            target = ReadinessPlan(target_period, tuning.failure_threshold)
        else:
            target = current
        name = clip(container.name)
        if target == current:
            if current.window > tuning.window:
                self.warnings.append(warning(
                    f"kept readiness probe of container {name}: window {current.window}s"
                    f" > policy's {tuning.window}s"))
            return current
        if current.window > tuning.window:
            self.findings.append(Finding(
                FindingCode.ReadinessWindowTooLong,
                f"container {name}: readiness window {current.window}s"
                f" ({period}s x {threshold}) > policy's {tuning.window}s", container.name))
        if target.period_seconds != period:
            self.builder.set(where / "periodSeconds", target.period_seconds)
            if isinstance(probe.get("exec"), Mapping):
                self.warnings.append(warning(
                    f"container {name}: exec readiness probe now runs every"
                    f" {target.period_seconds}s (was {period}s)"))
        if target.failure_threshold != threshold:
            self.builder.set(where / "failureThreshold", target.failure_threshold)
        return target

    def _restart_grace(self, containers: list[ContainerView], current: int | None,
                       new: int) -> None:
        """Keep restarts after a failed liveness or startup probe as fast as before.

        The kubelet restarts such a container with the Pod's grace period unless
        the probe sets its own ``terminationGracePeriodSeconds`` (GA in 1.27): a
        hung app under a one-hour T would wait an hour. Where the policy raises T,
        each such probe without its own value gets the Pod's previous effective
        grace period (30 s when unset); a long T without it is a finding.
        """
        previous = KUBERNETES_DEFAULT_GRACE_SECONDS if current is None else current
        for container in containers:
            for kind in ("livenessProbe", "startupProbe"):
                probe = container.raw.get(kind)
                if probe is None:  # the usual case, decided before the slow Mapping check
                    continue
                if not isinstance(probe, Mapping) or probe.get(
                        "terminationGracePeriodSeconds") is not None:
                    continue
                if previous > KUBERNETES_DEFAULT_GRACE_SECONDS:
                    self.findings.append(Finding(
                        FindingCode.ProbeGracePeriodMissing,
                        f"container {clip(container.name)}: {kind} has no"
                        f" terminationGracePeriodSeconds: a failed probe restarts after"
                        f" {previous}s", container.name))
                if new > previous:
                    self.builder.set(container.path / kind / "terminationGracePeriodSeconds",
                                     max(previous, 1))

    def _grace(self, pod_path: Pointer, current: int | None, budget: Budget,
               unknown: list[str]) -> int:
        """Raise the grace period to the budget; lower it only under Overwrite.

        Never lower it for a pod with a hook of unknown length, whatever the
        policy says: that hook may need every second of it (``nodetool drain``).
        """
        effective = KUBERNETES_DEFAULT_GRACE_SECONDS if current is None else current
        target = budget.grace
        if effective < target:
            self.findings.append(Finding(FindingCode.GracePeriodBelowBudget,
                                         f"grace period {effective}s < budget {target}s"))
        if budget.capped and effective < budget.required:
            self.findings.append(Finding(
                FindingCode.BudgetCapped,
                f"budget {budget.required}s capped at {budget.ceiling}s"
                " by maxGracePeriodSeconds"))
        above = effective > budget.ceiling
        if above:
            self.findings.append(Finding(
                FindingCode.GracePeriodAboveCeiling,
                f"grace period {effective}s > maxGracePeriodSeconds {budget.ceiling}s"))
        new = effective
        if effective < target:
            new = target
        elif self.spec.user_values == "Overwrite" and effective > target and unknown:
            self.warnings.append(warning(
                f"kept terminationGracePeriodSeconds {effective}s: preStop of container"
                f" {clip(unknown[0], 32)} has unknown length"))
        elif self.spec.user_values == "Overwrite":
            new = target
        elif above:
            self.warnings.append(warning(
                f"kept terminationGracePeriodSeconds {effective}s above maxGracePeriodSeconds"
                f" {budget.ceiling}s: a node drain waits that long"))
        elif effective > target and effective != KUBERNETES_DEFAULT_GRACE_SECONDS:
            # The API server writes 30 s into every pod template that sets nothing, before
            # the webhook sees it: 30 cannot be told from "unset", and "kept" would name a
            # choice nobody made. Only another value is the user's own, worth a warning.
            self.warnings.append(warning(
                f"kept terminationGracePeriodSeconds {effective}s above budget {target}s"))
        if new != effective:
            self.builder.set(pod_path / "terminationGracePeriodSeconds", new)
        if budget.capped and new < budget.required:
            self.warnings.append(warning(
                f"capped at {new}s by maxGracePeriodSeconds {budget.ceiling}s:"
                f" budget {budget.required}s is {budget.required - new}s short"))
        limit = self.spec.drain.shortest_limit()
        if limit is not None and budget.required > limit.seconds:
            message = (f"{clip(limit.name, 40)} allows {limit.seconds}s: budget"
                       f" {budget.required}s is cut {budget.required - limit.seconds}s short")
            self.findings.append(Finding(FindingCode.PlatformLimitBelowBudget, message))
            self.warnings.append(warning(message))
        return new


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
