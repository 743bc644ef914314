"""One rollout of the proof's workloads, measured: messages, requests, and how each old Pod stopped.

Shared by ``bench.rollout_loss``, the node e2e test and ``graceful demo
--node``: they differ in durations and counts, not in what is measured.

A rollout, for one mode (``plain`` or ``policy``):

1. publish N persistent messages and wait until the old consumer Pods have
   them in their handlers (work in flight);
2. start the load generator on the web Service's ClusterIP;
3. ``kubectl rollout restart`` both Deployments, as a user would;
4. wait for both rollouts, for every old Pod to be gone, for the queue to
   be empty and no handler of a live Pod to be running;
5. stop the load generator and count: messages lost and duplicated (from the
   journals), requests failed (from the load generator's outcomes), and each
   old Pod's stop (the delete seen by a watch, SIGTERM, drained and exit from
   its journal, the exit code from its status).

Everything runs where this process runs: in the node's network namespace,
so the ClusterIP, the Pods and the broker at the node IP are all reachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testenv.proof import manifests
from testenv.proof.accounting import (
    MessageTally,
    RequestTally,
    Stop,
    parse_journal,
    parse_outcomes,
    tally_messages,
    tally_requests,
    unfinished_in,
)
from testenv.proof.manifests import Durations, Mode
from testenv.proof.publisher import message_ids, publish
from testenv.proof.rabbitmq import RabbitMQ

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_MANIFESTS = ROOT / "manifests"
WORKLOADS = ("consumer", "web")


class ExperimentError(RuntimeError):
    """A step of the experiment failed; the run is not a measurement."""


Progress = Callable[[str], None]


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, "--kubeconfig", str(self.kubeconfig), *args],
                              input=input, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise ExperimentError(f"kubectl {' '.join(args[:4])} failed: "
                                  f"{(proc.stderr or proc.stdout).strip()[-600:]}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


def product_installed(kubectl: Kubectl) -> bool:
    return kubectl("get", "namespace", "graceful-system", check=False).returncode == 0


def uninstall_product(kubectl: Kubectl, timeout: float = 180) -> None:
    kubectl("delete", "-f", str(PRODUCT_MANIFESTS), "--ignore-not-found", "--wait=true",
            f"--timeout={int(timeout)}s", check=False, timeout=timeout + 20)


def install_product(kubectl: Kubectl, progress: Progress = print, timeout: float = 240) -> None:
    """``kubectl apply -f manifests/`` unchanged, then wait for both Deployments."""
    progress("installing graceful-operator from manifests/")
    kubectl("apply", "-f", str(PRODUCT_MANIFESTS), timeout=120)
    for name in ("graceful-operator", "graceful-webhook"):
        kubectl("-n", "graceful-system", "rollout", "status", f"deployment/{name}",
                f"--timeout={int(timeout)}s", timeout=timeout + 10)


@dataclass
class _PodState:
    deleted: float | None = None
    exit_code: int | None = None
    finished: float | None = None
    gone: bool = False
    grace: int | None = None
    pre_stop: int | None = None
    workload: str = ""


class PodWatch:
    """A watch on one namespace's Pods: when each was marked deleted, how it exited, when it went.

    Why a watch and not the Pod's ``deletionTimestamp``: that field holds the
    delete time *plus* the grace period, in whole seconds; the watch sees the
    update a few milliseconds after the delete. The exit code is in the last
    status the watch sees before the object goes.
    """

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        from kubernetes import client, config, watch  # noqa: PLC0415 - only where needed

        self._api = client.CoreV1Api(
            config.new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self.namespace = namespace
        self.pods: dict[str, _PodState] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopped = threading.Event()

    def start(self) -> PodWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                        self._api.list_namespaced_pod, self.namespace, timeout_seconds=60,
                        _request_timeout=90):
                    self._see(event["type"], event["object"])
                    if self._stopped.is_set():
                        return
            except Exception:  # a dropped watch is re-opened
                time.sleep(0.2)

    def _see(self, kind: str, pod: Any) -> None:
        now = time.time()
        name = pod.metadata.name
        with self._lock:
            state = self.pods.setdefault(name, _PodState())
            state.workload = (pod.metadata.labels or {}).get("app", "")
            state.grace = pod.spec.termination_grace_period_seconds
            hooks = [c.lifecycle.pre_stop for c in pod.spec.containers
                     if c.lifecycle and c.lifecycle.pre_stop]
            state.pre_stop = (hooks[0].sleep.seconds if hooks and hooks[0].sleep else None)
            if pod.metadata.deletion_timestamp is not None and state.deleted is None:
                state.deleted = now
            for status in (pod.status.container_statuses or []):
                terminated = status.state.terminated if status.state else None
                if terminated is not None and state.exit_code is None:
                    state.exit_code = terminated.exit_code
                    state.finished = now
            if kind == "DELETED":
                state.gone = True

    def snapshot(self) -> dict[str, _PodState]:
        with self._lock:
            return {k: _PodState(**vars(v)) for k, v in self.pods.items()}

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()  # type: ignore[no-untyped-call]


@dataclass
class RolloutResult:
    mode: Mode
    messages: MessageTally | None
    requests: RequestTally | None
    seconds: float
    """From ``rollout restart`` until both rollouts are done and every old Pod is gone."""
    stops: list[Stop] = field(default_factory=list)


@dataclass
class Experiment:
    """The proof's workloads of both modes on one cluster, with one broker."""

    kubectl: Kubectl
    broker: RabbitMQ
    node_ip: str
    durations: Durations
    journal_root: Path
    messages: int = 6
    request_rate: float = 40.0
    workloads: Sequence[str] = WORKLOADS
    progress: Progress = print
    timeout: float = 300.0
    _watches: dict[str, PodWatch] = field(default_factory=dict)
    _run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    _last_depth_check: float = 0.0

    def amqp_url(self) -> str:
        return f"amqp://guest:guest@{self.node_ip}:{self.broker.port}/"

    def journal_dir(self, mode: Mode) -> Path:
        return self.journal_root / mode

    def objects(self, mode: Mode) -> list[dict[str, Any]]:
        return manifests.objects(mode, self.durations, amqp_url=self.amqp_url(),
                                 journal_root=str(self.journal_root),
                                 workloads=tuple(self.workloads))

    def install(self, mode: Mode) -> None:
        """Apply one mode's objects, wait for the rollouts, check what the webhook did."""
        ns = manifests.namespace_of(mode)
        self.journal_dir(mode).mkdir(parents=True, exist_ok=True)
        objects = self.objects(mode)
        if mode == "policy":
            self._await_webhook(objects)
        self.progress(f"applying the {mode} workloads in namespace {ns}")
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
        for name in self.workloads:
            self.kubectl("-n", ns, "rollout", "status", f"deployment/{name}",
                         f"--timeout={int(self.timeout)}s", timeout=self.timeout + 10)
        self._check_mutation(mode)
        self._watches[mode] = PodWatch(self.kubectl.kubeconfig, ns).start()

    def _await_webhook(self, objects: list[dict[str, Any]]) -> None:
        """Apply the namespace, the app code and the policy; then wait until the webhook mutates.

        Between ``rollout status`` of the webhook and the first mutation lie
        the operator writing the caBundle and the webhook's policy cache
        seeing the new policy; with ``failurePolicy: Ignore`` a Deployment
        admitted in between would silently stay plain. A server-side dry run
        shows the webhook's answer without creating anything.
        """
        first = [o for o in objects if o["kind"] != "Deployment" and o["kind"] != "Service"]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(first))
        probe = next(o for o in objects if o["kind"] == "Deployment")

        def mutated() -> bool:
            proc = self.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-",
                                input=yaml.safe_dump(probe), check=False)
            if proc.returncode != 0:
                return False
            spec = json.loads(proc.stdout)["spec"]["template"]["spec"]
            return bool(spec["containers"][0].get("lifecycle", {}).get("preStop"))

        self.progress("waiting until the webhook mutates the policy namespace's Deployments")
        self._wait("the webhook to mutate a Deployment (server-side dry run)", mutated,
                   timeout=120)

    def _check_mutation(self, mode: Mode) -> None:
        """The policy Deployments must carry the budget; the plain ones must not.

        The webhook's ``failurePolicy: Ignore`` would let an unmutated
        Deployment through silently, and the run would then compare plain
        with plain.
        """
        ns = manifests.namespace_of(mode)
        for name in self.workloads:
            spec = self.kubectl.json("-n", ns, "get", "deployment", name)["spec"]["template"][
                "spec"]
            hook = spec["containers"][0].get("lifecycle", {}).get("preStop")
            if mode == "policy" and hook is None:
                raise ExperimentError(f"{ns}/{name} was not mutated: is the webhook running?")
            if mode == "plain" and hook is not None:
                raise ExperimentError(f"{ns}/{name} was mutated although it has no policy")

    def remove(self, mode: Mode) -> None:
        watch = self._watches.pop(mode, None)
        if watch is not None:
            watch.stop()
        self.kubectl("delete", "namespace", manifests.namespace_of(mode), "--wait=true",
                     "--timeout=180s", check=False, timeout=200)

    def _pods(self, mode: Mode, workload: str) -> list[str]:
        pods = self.kubectl.json("-n", manifests.namespace_of(mode), "get", "pods", "-l",
                                 f"app={workload}")["items"]
        return [p["metadata"]["name"] for p in pods
                if p["metadata"].get("deletionTimestamp") is None]

    def _events(self, mode: Mode) -> list[Any]:
        lines: list[str] = []
        for journal in sorted(self.journal_dir(mode).glob("*.jsonl")):
            with contextlib.suppress(OSError):
                lines += journal.read_text().splitlines()
        return parse_journal(lines)

    def _wait(self, what: str, done: Callable[[], bool], timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not done():
            if time.monotonic() > deadline:
                raise ExperimentError(f"timed out waiting for {what}")
            time.sleep(0.5)

    def rollout(self, mode: Mode, index: int) -> RolloutResult:
        ns = manifests.namespace_of(mode)
        queue = manifests.queue_of(mode)
        old = {w: self._pods(mode, w) for w in self.workloads}
        old_pods = {p for pods in old.values() for p in pods}
        ids: list[str] = []
        if "consumer" in self.workloads:
            ids = publish(self.broker.url(), queue,
                          message_ids(f"{self._run_id}-{mode}-{index}", self.messages))
            in_flight = min(len(ids), 2 * len(old["consumer"]))  # prefetch 2 per Pod
            self._wait("the old consumers to start their handlers", lambda: sum(
                1 for e in self._events(mode) if e.event == "start" and e.id in set(ids)
                and e.pod in old_pods) >= in_flight, timeout=60)
        load: subprocess.Popen[bytes] | None = None
        handle, name = tempfile.mkstemp(prefix=f"proof-load-{mode}-", suffix=".jsonl")
        os.close(handle)
        load_out = Path(name)
        if "web" in self.workloads:
            cluster_ip = self.kubectl("-n", ns, "get", "service", "web", "-o",
                                      "jsonpath={.spec.clusterIP}").stdout.strip()
            load = subprocess.Popen(
                [sys.executable, "-m", "testenv.proof.loadgen", "--url",
                 f"http://{cluster_ip}:{manifests.SERVICE_PORT}/work"
                 f"?ms={self.durations.request_ms}",
                 "--rate", f"{self.request_rate:g}", "--seconds", str(int(self.timeout)),
                 "--timeout", "5", "--out", str(load_out)],
                stdin=subprocess.DEVNULL, cwd=ROOT)
            time.sleep(1.0)  # a baseline before the rollout starts
        started = time.monotonic()
        try:
            self.progress(f"{mode} rollout {index + 1}: kubectl rollout restart "
                          + " ".join(f"deployment/{w}" for w in self.workloads))
            self.kubectl("-n", ns, "rollout", "restart",
                         *[f"deployment/{w}" for w in self.workloads])
            for w in self.workloads:
                self.kubectl("-n", ns, "rollout", "status", f"deployment/{w}",
                             f"--timeout={int(self.timeout)}s", timeout=self.timeout + 10)
            watch = self._watches[mode]
            self._wait("the old Pods to go", lambda: all(
                watch.snapshot().get(p, _PodState()).gone for p in old_pods))
            seconds = time.monotonic() - started
            if ids:
                self._wait("the queue to drain", lambda: self._drained(mode, queue, ids))
            time.sleep(1.0)
        finally:
            if load is not None:
                load.terminate()
                try:
                    load.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    load.kill()
                    load.wait()
        events = self._events(mode)
        messages = tally_messages(ids, events) if ids else None
        requests = None
        if load is not None:
            requests = tally_requests(parse_outcomes(load_out.read_text().splitlines()))
        load_out.unlink(missing_ok=True)
        return RolloutResult(mode, messages, requests, seconds,
                             self._stops(mode, old_pods, events))

    def _drained(self, mode: Mode, queue: str, ids: Sequence[str]) -> bool:
        """No handler of a live Pod busy with ``ids`` and the queue empty.

        ``rabbitmqctl`` costs about a second of CPU per call, which would
        weigh on the node while it is being measured; so it is asked only
        once the journals say every message is done (finished, or acked on
        delivery), and otherwise every 10 s, which still ends the wait when
        a message vanished without a trace (it is then counted as lost).
        """
        events = self._events(mode)
        live = [p for p, s in self._watches[mode].snapshot().items() if not s.gone]
        if unfinished_in(events, live) & set(ids):
            return False
        done = {e.id for e in events if e.event in ("finish", "ack")}
        now = time.monotonic()
        if not set(ids) <= done and now - self._last_depth_check < 10.0:
            return False
        self._last_depth_check = now
        ready, unacked, _ = self.broker.queue_depth(queue)
        return ready == unacked == 0

    def _stops(self, mode: Mode, pods: set[str], events: Sequence[Any]) -> list[Stop]:
        states = self._watches[mode].snapshot()
        stops = []
        for pod in sorted(pods):
            state = states.get(pod, _PodState())
            mine = {e.event: e.t for e in events if e.pod == pod and not e.id}
            stops.append(Stop(pod=pod, workload=state.workload, grace=state.grace,
                              pre_stop=state.pre_stop, deleted=state.deleted,
                              sigterm=mine.get("sigterm"), drained=mine.get("drained"),
                              exited=mine.get("exit", state.finished),
                              exit_code=state.exit_code))
        return stops

    def close(self) -> None:
        for watch in self._watches.values():
            watch.stop()
        self._watches.clear()


@contextlib.contextmanager
def journal_root(parent: Path | None = None) -> Iterator[Path]:
    """A directory for the Pods' hostPath journals (world-writable: the Pods' user is theirs)."""
    path = Path(tempfile.mkdtemp(prefix="graceful-proof-journal-", dir=parent))
    path.chmod(0o777)
    try:
        yield path
    finally:
        import shutil  # noqa: PLC0415

        shutil.rmtree(path, ignore_errors=True)
