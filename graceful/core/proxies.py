"""Mesh proxies next to the app, and the native sidecars that stop after it.

Why a proxy's own drain setting matters: a proxy injected as an ordinary
container (``istio-proxy``, ``linkerd-proxy``) gets SIGTERM at the start of the
shutdown, at the same time as the app's preStop hook, and then leaves after
its own drain setting: Istio's ``terminationDrainDuration`` (5 s by default,
read by the proxy's agent from the pod annotation ``proxy.istio.io/config``),
Linkerd's ``config.alpha.linkerd.io/proxy-wait-before-exit-seconds`` (0 by
default). The app still needs the network for S + G: it serves during the
preStop sleep and drains after SIGTERM, often through the mesh (a broker, a
database). A proxy that leaves earlier cuts the app's drain while T says all is
well, so a shorter setting is a finding naming the annotation and the value to
set, or (``drain.setProxyDrain``) the value is set on the pod template.

Why native sidecars add to the budget: the kubelet runs every container's
preStop hook at once, when the shutdown starts, but sends a native sidecar
(an init container with ``restartPolicy: Always``) SIGTERM only after every
app container and every sidecar declared after it has exited
(``kuberuntime_termination_order.go``). Each sidecar's drain therefore comes
out of what is left of T, one after the other in reverse order of
declaration, and a sidecar's own preStop hook delays its SIGTERM only when it
outlasts what it waits for.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import yaml

from graceful.core.duration import MAX_SECONDS

Mesh = Literal["istio", "linkerd"]

ISTIO_PROXY: Final = "istio-proxy"
LINKERD_PROXY: Final = "linkerd-proxy"
#: The pod annotation holding Istio's per-pod ProxyConfig (YAML or JSON).
ISTIO_CONFIG: Final = "proxy.istio.io/config"
ISTIO_DRAIN_KEY: Final = "terminationDrainDuration"
#: Istio's default ``terminationDrainDuration``.
ISTIO_DEFAULT_DRAIN: Final = 5
#: The pod annotation from which Linkerd's injector gives its proxy a preStop sleep.
LINKERD_WAIT: Final = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds"
#: Longest ``proxy.istio.io/config`` read; a longer one is reported, not parsed.
MAX_CONFIG_LENGTH: Final = 16384

_GO_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:h|m|s|ms|us|µs|ns))+")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)")
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class ProxyConfigError(ValueError):
    """A mesh drain setting that cannot be read; the message quotes what is wrong."""


@dataclass(frozen=True)
class MeshDrain:
    """A mesh proxy's drain after SIGTERM, and where it is set."""

    mesh: Mesh
    seconds: int
    """Whole seconds (rounded down: a drain of 34.5 s does not cover 35 s)."""
    explicit: bool
    """Whether the pod sets it; False means the mesh's default."""


def mesh_of(name: str) -> Mesh | None:
    """The mesh whose proxy container is called ``name``, if any."""
    if name == ISTIO_PROXY:
        return "istio"
    if name == LINKERD_PROXY:
        return "linkerd"
    return None


def go_duration_seconds(text: str) -> int:
    """Whole seconds (rounded down) of a Go duration (``5s``, ``1m30s``, ``0.5s``)."""
    value = text.strip()
    if value == "0":
        return 0
    if len(value) > 32 or not _GO_DURATION.fullmatch(value):
        raise ProxyConfigError(f"{ISTIO_DRAIN_KEY} {value[:32]!r} is not a duration")
    seconds = sum(float(n) * _GO_UNIT[unit] for n, unit in _GO_PART.findall(value))
    if seconds > MAX_SECONDS:
        raise ProxyConfigError(f"{ISTIO_DRAIN_KEY} {value!r} is longer than 7 days")
    return math.floor(seconds + 1e-9)


def istio_config(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The pod's ``proxy.istio.io/config`` as a mapping ({} when absent)."""
    raw = annotations.get(ISTIO_CONFIG)
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_CONFIG_LENGTH:
        raise ProxyConfigError(f"{ISTIO_CONFIG} is longer than {MAX_CONFIG_LENGTH} characters")
    try:
        config = yaml.safe_load(raw)  # JSON is YAML too
    except yaml.YAMLError:
        raise ProxyConfigError(f"{ISTIO_CONFIG} is not YAML or JSON") from None
    if not isinstance(config, dict):
        raise ProxyConfigError(f"{ISTIO_CONFIG} is not a map")
    return config


def mesh_drain(mesh: Mesh, annotations: Mapping[str, str]) -> MeshDrain:
    """How long the mesh's proxy stays after SIGTERM, from the pod's annotations."""
    if mesh == "istio":
        value = istio_config(annotations).get(ISTIO_DRAIN_KEY)
        if value is None:
            return MeshDrain(mesh, ISTIO_DEFAULT_DRAIN, explicit=False)
        if not isinstance(value, str):
            raise ProxyConfigError(f"{ISTIO_DRAIN_KEY} {str(value)[:32]!r} is not a duration")
        return MeshDrain(mesh, go_duration_seconds(value), explicit=True)
    raw = annotations.get(LINKERD_WAIT)
    if raw is None:
        return MeshDrain(mesh, 0, explicit=False)
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_SECONDS:
        raise ProxyConfigError(f"{LINKERD_WAIT} {raw[:32]!r} is not whole seconds")
    return MeshDrain(mesh, int(text), explicit=True)


def drain_setting(mesh: Mesh, annotations: Mapping[str, str], seconds: int) -> tuple[str, str]:
    """The annotation and its whole new value that make the mesh's proxy stay ``seconds``.

    Istio's config keeps every other key the user set; it is written back as
    JSON when it was JSON, as YAML otherwise.
    """
    if mesh == "linkerd":
        return LINKERD_WAIT, str(seconds)
    config = istio_config(annotations)
    config[ISTIO_DRAIN_KEY] = f"{seconds}s"
    raw = annotations.get(ISTIO_CONFIG, "").strip()
    if raw.startswith("{"):
        return ISTIO_CONFIG, json.dumps(config, separators=(",", ":"))
    return ISTIO_CONFIG, yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def how_to_set(mesh: Mesh, seconds: int) -> str:
    """The exact annotation a user sets, for messages."""
    if mesh == "istio":
        return f"{ISTIO_CONFIG}: '{ISTIO_DRAIN_KEY}: {seconds}s'"
    return f"{LINKERD_WAIT}: \"{seconds}\""


@dataclass(frozen=True)
class SidecarStop:
    """One native sidecar's part of the shutdown."""

    name: str
    pre_stop: int
    """Its preStop hook's length: it starts with everyone's, at the shutdown's start."""
    drain: int
    """How long it takes to exit once it gets SIGTERM."""


def sidecars_end(app_end: int, sidecars: tuple[SidecarStop, ...]) -> int:
    """When the last native sidecar has exited, given when the app containers have.

    ``sidecars`` in declaration order; the kubelet stops them in reverse, each
    after the ones declared later, and no earlier than the end of its own preStop.
    """
    end = app_end
    for sidecar in reversed(sidecars):
        end = max(end, sidecar.pre_stop) + sidecar.drain
    return end
