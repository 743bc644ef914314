"""Watching real containers stop: a drain app, its event log, and the Pod's last status.

The app records each event (start, SIGTERM, drained, exit) with the
container's own clock into a file on a hostPath, written and fsync'ed per
line, so a SIGKILL loses nothing it already said. The test reads the file
from the host (same kernel clock) and the Pod's final container states from
the API server, and compares both with the moment it asked for the delete.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The app: on SIGTERM it drains for DRAIN_SECONDS (in-flight work), then exits 0;
#: with IGNORE_SIGTERM it keeps working until SIGKILL. Python from the base image.
DRAIN_APP = r'''
import json, os, signal, sys, time
LOG = os.path.join("/events", os.environ["POD_NAME"] + "." + os.environ["CONTAINER"] + ".jsonl")
def record(event):
    with open(LOG, "a") as f:
        line = {"t": time.time(), "event": event, "pod": os.environ["POD_NAME"],
                "container": os.environ["CONTAINER"]}
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())
def on_term(signum, frame):
    record("sigterm")
    if os.environ.get("IGNORE_SIGTERM"):
        return
    time.sleep(float(os.environ.get("DRAIN_SECONDS", "0")))
    record("drained")
    record("exit")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
record("start")
while True:
    time.sleep(3600)
'''

BASE_IMAGE = "graceful.local/python:3.11-bookworm"


def drain_container(name: str, *, drain: float = 0.0, ignore_sigterm: bool = False,
                    extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CONTAINER", "value": name},
        {"name": "DRAIN_SECONDS", "value": str(drain)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if ignore_sigterm:
        env.append({"name": "IGNORE_SIGTERM", "value": "1"})
    env += [{"name": k, "value": v} for k, v in (extra_env or {}).items()]
    return {
        "name": name,
        "image": BASE_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "/app/drain.py"],
        "env": env,
        "volumeMounts": [{"name": "app", "mountPath": "/app"},
                         {"name": "events", "mountPath": "/events"}],
    }


def pod_volumes(events_dir: Path) -> list[dict[str, Any]]:
    return [
        {"name": "app", "configMap": {"name": "drain-app"}},
        {"name": "events", "hostPath": {"path": str(events_dir), "type": "Directory"}},
    ]


def app_configmap(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "drain-app", "namespace": namespace},
            "data": {"drain.py": DRAIN_APP}}


@dataclass
class Event:
    t: float
    event: str
    pod: str
    container: str


def read_events(events_dir: Path, pod: str) -> list[Event]:
    events: list[Event] = []
    for path in sorted(events_dir.glob(f"{pod}.*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                events.append(Event(**json.loads(line)))
    return sorted(events, key=lambda e: e.t)


def first(events: list[Event], container: str, event: str) -> float | None:
    for e in events:
        if e.container == container and e.event == event:
            return e.t
    return None


@dataclass
class LastStatus:
    """What a watch on the Pod saw last, just before the object went away."""

    exit_codes: dict[str, int] = field(default_factory=dict)
    finished_at: dict[str, str] = field(default_factory=dict)
    gone_at: float | None = None


def watch_until_gone(read_pod: Any, timeout: float) -> LastStatus:
    """Poll the Pod (``read_pod() -> dict | None``) until it is gone; keep its last states."""
    seen = LastStatus()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = read_pod()
        if pod is None:
            seen.gone_at = time.time()
            return seen
        statuses = (pod.get("status", {}).get("containerStatuses") or []) + (
            pod.get("status", {}).get("initContainerStatuses") or [])
        for status in statuses:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated is not None:
                seen.exit_codes[status["name"]] = int(terminated["exitCode"])
                seen.finished_at[status["name"]] = str(terminated.get("finishedAt"))
        time.sleep(0.1)
    raise AssertionError(f"the Pod was still there after {timeout:.0f}s; last seen {seen}")


