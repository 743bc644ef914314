"""The proof's Kubernetes objects, built by functions the bench, the e2e test and the demo share.

Two variants of the same workloads, one namespace each:

- **plain**: the manifests as a user writes them today. The consumer's
  ``graceful_timeout`` lives in its code; the Deployment says nothing about
  it: ``terminationGracePeriodSeconds`` is Kubernetes' 30 s or what the user
  wrote (``Durations.grace``), and there is no preStop hook.
- **policy**: the same objects plus a GracefulPolicy in the namespace and the
  opt-in annotations: ``graceful.io/policy`` on both, and
  ``graceful.io/graceful-timeout`` on the consumer (the only way its G can
  reach the policy). The web service carries no timeout annotation: its G is
  read from uvicorn's ``--timeout-graceful-shutdown`` on the command line.
  The webhook, installed from ``manifests/``, does the rest at admission.

Both Deployments: 2 replicas, ``maxSurge: 1``, ``maxUnavailable: 0`` (the
rollout Kubernetes recommends for services that must stay up), the app code
from a ConfigMap, the journal on a hostPath directory of the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from graceful.core.names import ANNOTATION_POLICY, ANNOTATION_TIMEOUT
from testenv.proof import versions

Mode = Literal["plain", "policy"]
MODES: tuple[Mode, ...] = ("plain", "policy")
APPS = Path(__file__).parent / "apps"
APP_FILES = ("journal.py", "consumer.py", "web.py")
POLICY_NAME = "proof"
WEB_PORT = 8080
SERVICE_PORT = 80


@dataclass(frozen=True)
class Durations:
    """Every duration of one experiment, in seconds."""

    handler: float
    """How long the consumer's handler works on a message."""
    graceful_timeout: int
    """FastStream's ``graceful_timeout`` in the consumer's code (G)."""
    http_graceful_timeout: int
    """uvicorn's ``--timeout-graceful-shutdown`` (G of the web service)."""
    grace: int | None
    """``terminationGracePeriodSeconds`` as the user wrote it (both variants); None: unset,
    Kubernetes' 30 s. The webhook raises it to S + G + M in the policy variant."""
    pre_stop: int
    """The policy's S."""
    margin: int
    """The policy's M."""
    request_ms: int = 100
    """How long the web service takes per request."""


#: The facts of the issue at bench scale: handlers of 40 s, G = 50, default grace.
BENCH = Durations(handler=40, graceful_timeout=50, http_graceful_timeout=10, grace=None,
                  pre_stop=5, margin=5)
#: The same contrast in a CI budget: handlers of 8 s, G = 12, the plain manifest's grace 5 s.
SHORT = Durations(handler=8, graceful_timeout=12, http_graceful_timeout=5, grace=5,
                  pre_stop=3, margin=3)


def namespace_of(mode: Mode) -> str:
    return f"proof-{mode}"


def queue_of(mode: Mode) -> str:
    return f"proof-{mode}"


def _meta(name: str, mode: Mode, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace_of(mode),
            "labels": {"app.kubernetes.io/part-of": "graceful-proof", "app": name}, **extra}


def namespace(mode: Mode) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace_of(mode),
                         "labels": {"app.kubernetes.io/part-of": "graceful-proof"}}}


def app_config_map(mode: Mode) -> dict[str, Any]:
    """The app code (standard library + the image's packages only)."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("proof-apps", mode),
            "data": {name: (APPS / name).read_text() for name in APP_FILES}}


def policy(d: Durations) -> dict[str, Any]:
    """The GracefulPolicy of the policy namespace: S and M; G comes from each workload."""
    return {"apiVersion": "graceful.io/v1alpha1", "kind": "GracefulPolicy",
            "metadata": {"name": POLICY_NAME, "namespace": namespace_of("policy")},
            "spec": {"mode": "Enforce", "gracefulTimeoutSeconds": 30,
                     "drain": {"preStopSleepSeconds": d.pre_stop,
                               "safetyMarginSeconds": d.margin,
                               "maxGracePeriodSeconds": 3900}}}


def _deployment(name: str, mode: Mode, d: Durations, *, container: dict[str, Any],
                journal_dir: str, annotations: dict[str, str]) -> dict[str, Any]:
    container = {
        "image": versions.IMAGE, "imagePullPolicy": "IfNotPresent", **container,
        "volumeMounts": [{"name": "apps", "mountPath": "/app", "readOnly": True},
                         {"name": "journal", "mountPath": "/journal"}],
    }
    container["env"] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "PROOF_JOURNAL_DIR", "value": "/journal"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *container.get("env", []),
    ]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [
            {"name": "apps", "configMap": {"name": "proof-apps"}},
            {"name": "journal", "hostPath": {"path": journal_dir, "type": "DirectoryOrCreate"}},
        ],
    }
    if d.grace is not None:
        pod_spec["terminationGracePeriodSeconds"] = d.grace
    labels = {"app": name, "app.kubernetes.io/part-of": "graceful-proof"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(name, mode, annotations=annotations) if annotations else _meta(name,
                                                                                       mode),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def consumer(mode: Mode, d: Durations, *, amqp_url: str, journal_dir: str) -> dict[str, Any]:
    """The FastStream consumer; the policy variant declares its G in the annotation."""
    annotations = ({ANNOTATION_POLICY: POLICY_NAME,
                    ANNOTATION_TIMEOUT: str(d.graceful_timeout)} if mode == "policy" else {})
    container = {
        "name": "consumer",
        "command": ["python3", "/app/consumer.py"],
        "env": [{"name": "PROOF_AMQP_URL", "value": amqp_url},
                {"name": "PROOF_QUEUE", "value": queue_of(mode)},
                {"name": "PROOF_HANDLER_SECONDS", "value": f"{d.handler:g}"},
                {"name": "PROOF_GRACEFUL_TIMEOUT", "value": str(d.graceful_timeout)},
                {"name": "PROOF_PREFETCH", "value": "2"}],
    }
    return _deployment("consumer", mode, d, container=container, journal_dir=journal_dir,
                       annotations=annotations)


def web(mode: Mode, d: Durations, *, journal_dir: str) -> dict[str, Any]:
    """uvicorn with its graceful-timeout flag; the policy variant only opts in."""
    annotations = {ANNOTATION_POLICY: POLICY_NAME} if mode == "policy" else {}
    container = {
        "name": "web",
        "command": ["python3", "-m", "uvicorn", "--app-dir", "/app", "web:app",
                    "--host", "0.0.0.0", "--port", str(WEB_PORT),  # noqa: S104 - the Pod's netns
                    "--no-access-log",
                    "--timeout-graceful-shutdown", str(d.http_graceful_timeout)],
        "ports": [{"name": "http", "containerPort": WEB_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": WEB_PORT},
                           "periodSeconds": 2, "failureThreshold": 3},
    }
    return _deployment("web", mode, d, container=container, journal_dir=journal_dir,
                       annotations=annotations)


def service(mode: Mode) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta("web", mode),
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": SERVICE_PORT,
                                "targetPort": WEB_PORT}]}}


def objects(mode: Mode, d: Durations, *, amqp_url: str, journal_root: str,
            workloads: tuple[str, ...] = ("consumer", "web")) -> list[dict[str, Any]]:
    """Everything of one mode, in apply order (the policy before the workloads it mutates)."""
    journal_dir = f"{journal_root.rstrip('/')}/{mode}"
    out = [namespace(mode), app_config_map(mode)]
    if mode == "policy":
        out.append(policy(d))
    if "consumer" in workloads:
        out.append(consumer(mode, d, amqp_url=amqp_url, journal_dir=journal_dir))
    if "web" in workloads:
        out += [web(mode, d, journal_dir=journal_dir), service(mode)]
    return out
