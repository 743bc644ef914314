"""``graceful demo``: the whole product, end to end, on a local control plane.

What a platform engineer would do by hand, in the order that shows why each
part exists:

1. start the local control plane (``graceful cluster up``'s engine) or, with
   ``--kubeconfig``, use an existing cluster after asking;
2. install the GracefulPolicy CRD;
3. create the *legacy* Deployment **before** the webhook exists, as in any
   cluster where the product is installed late;
4. start the webhook (TLS with a CA made for this run, registered by URL and
   caBundle) and the operator, as local processes;
5. apply the policy, the FastStream worker and the gunicorn web app: the
   webhook mutates them on admission;
6. print what a user looks at: the injected settings of the worker, the
   ``kubectl get gracefulpolicies`` table with the legacy Deployment as the
   one mismatch, and its reasons.

Everything the demo starts is stopped on exit, Ctrl-C included; in an
existing cluster it removes its namespace and its webhook configuration
(the CRD stays: other policies may use it).

``--node`` runs the proof instead (``testenv/proof/demo.py``): rollouts on a
real node with and without a policy, side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PROG = "graceful demo"
NAMESPACE = "graceful-demo"
WEBHOOK_CONFIGURATION = "graceful-demo-webhook"
ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "gracefulpolicy.yaml"
#: The wg-policy PolicyReport CRD (as Kyverno installs it), on the demo's own cluster only.
REPORT_CRD = ROOT / "testenv" / "crds" / "wgpolicyk8s.io_policyreports.yaml"
EXAMPLES = ROOT / "examples"
#: Applied after the webhook is registered, in this order.
MUTATED_EXAMPLES = ("policy.yaml", "worker.yaml", "web.yaml")
LEGACY_EXAMPLE = "legacy.yaml"
WAIT_SECONDS = 90.0


class DemoError(RuntimeError):
    """A step failed; the message is one line, details go to the log files."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start a local Kubernetes control plane, run the webhook and the operator against it, "
        "apply the examples (a policy, a FastStream worker, a gunicorn web app, and a legacy "
        "Deployment created before the webhook) and show the result."
    )
    parser.add_argument(
        "--kubeconfig", type=Path, metavar="FILE",
        help="use this existing cluster instead of a local control plane (asks first); its "
             "API server must reach this machine at --webhook-host. With --node: a cluster "
             "started by `graceful cluster up --node`",
    )
    parser.add_argument("-y", "--yes", action="store_true",
                        help="with --kubeconfig: do not ask before changing the cluster")
    parser.add_argument(
        "--webhook-host", default="127.0.0.1", metavar="ADDRESS",
        help="address of this machine as the API server sees it (default: %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true",
        help="keep everything running after the report, until Ctrl-C",
    )
    parser.add_argument(
        "--node", action="store_true",
        help="the proof on a real node (needs root, about two minutes): roll out a FastStream "
             "consumer and an HTTP service with work in flight, without and with a policy, and "
             "show what was lost, run twice or failed",
    )


# -- output ---------------------------------------------------------------------------

@dataclass
class Console:
    """Progress lines while things start, then the report."""

    out: IO[str] = field(default_factory=lambda: sys.stdout)
    started: float = field(default_factory=time.monotonic)

    def step(self, text: str) -> None:
        print(f"==> {text}", file=self.out, flush=True)

    def detail(self, text: str) -> None:
        print(f"    {text}", file=self.out, flush=True)

    def section(self, title: str) -> None:
        print(f"\n--- {title} " + "-" * max(3, 76 - len(title)), file=self.out, flush=True)

    def text(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.1f}s"


# -- processes ------------------------------------------------------------------------

def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux sends the child SIGTERM if the demo dies without cleaning up."""
    import ctypes  # noqa: PLC0415

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class Child:
    """A webhook or operator process started by the demo, stopped by its own handle."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks
            )

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DemoError(f"the {self.name} exited with status {self.proc.returncode};"
                            f" its log: {self.log}\n{_tail(self.log)}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


# -- kubectl --------------------------------------------------------------------------

@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path

    def __call__(self, *args: str, input: str | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=120, check=False,
        )
        if check and proc.returncode != 0:
            message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise DemoError(f"kubectl {' '.join(args[:3])}: "
                            f"{message[-1] if message else f'exit {proc.returncode}'}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


# -- the steps ------------------------------------------------------------------------

def _confirm(kubectl: Kubectl, console: Console, assume_yes: bool,
             ask: Callable[[str], str]) -> bool:
    server = kubectl("config", "view", "--minify", "-o",
                     "jsonpath={.clusters[0].cluster.server}").stdout.strip()
    console.text(f"{PROG} will change the cluster at {server}:")
    console.detail(f"create namespace {NAMESPACE} and the examples in it (deleted on exit)")
    console.detail(f"register MutatingWebhookConfiguration {WEBHOOK_CONFIGURATION}"
                   " pointing at this machine (deleted on exit)")
    console.detail("install the GracefulPolicy CRD if it is missing (kept on exit)")
    if assume_yes:
        return True
    try:
        answer = ask("Continue? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _serving_pair(workdir: Path, host: str) -> tuple[Path, Path, bytes]:
    """A CA made for this run and a serving certificate for ``host``."""
    from testenv.pki import CertificateAuthority  # noqa: PLC0415

    ca = CertificateAuthority.create("graceful-demo-webhook-ca")
    cert, key = ca.issue("graceful-demo-webhook", hosts=[host, "localhost"],
                         server=True).write(workdir / "tls", "webhook")
    (workdir / "tls" / "ca.crt").write_bytes(ca.cert_pem)
    return cert, key, ca.cert_pem


def _wait(what: str, ready: Callable[[], bool], children: Sequence[Child],
          timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children:
            child.check()
        if ready():
            return
        time.sleep(0.25)
    raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")


def _https_ok(url: str, ca_pem: bytes) -> bool:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _free_port() -> int:
    from testenv.ports import free_port  # noqa: PLC0415

    return free_port()


def _python() -> list[str]:
    return [sys.executable, "-m", "graceful.cli"]


def _warnings(stderr: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in stderr.splitlines()
            if line.startswith("Warning: ")]


def _injected(deployment: dict[str, Any]) -> list[str]:
    pod = deployment["spec"]["template"]["spec"]
    meta = deployment["metadata"]
    lines = [f"deployment/{meta['name']}"]
    for key, value in sorted((meta.get("annotations") or {}).items()):
        if key.startswith("graceful.io/"):
            lines.append(f"  metadata.annotations[{key}]: {json.dumps(value)}")
    lines.append(f"  terminationGracePeriodSeconds: {pod.get('terminationGracePeriodSeconds')}"
                 "   (Kubernetes' default is 30)")
    for container in pod["containers"]:
        name = container["name"]
        pre_stop = (container.get("lifecycle") or {}).get("preStop")
        lines.append(f"  containers[{name}].lifecycle.preStop: {json.dumps(pre_stop)}")
        probe = container.get("readinessProbe")
        if probe:
            lines.append(f"  containers[{name}].readinessProbe: periodSeconds"
                         f" {probe.get('periodSeconds')}, failureThreshold"
                         f" {probe.get('failureThreshold')}")
    return lines


@dataclass
class Demo:
    kubectl: Kubectl
    console: Console
    workdir: Path
    webhook_host: str
    existing_cluster: bool
    children: list[Child] = field(default_factory=list)
    registered: bool = False
    created_namespace: bool = False
    policy_reports: bool = False

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "KUBECONFIG": str(self.kubectl.kubeconfig)}

    def install_crd(self) -> None:
        self.console.step("installing the GracefulPolicy CRD")
        if not CRD.is_file():
            raise DemoError(f"{CRD} not found: run the demo from a clone of the repository")
        if self.existing_cluster and self.kubectl(
                "get", "crd", "gracefulpolicies.graceful.io", check=False).returncode == 0:
            self.console.detail("already installed; left as it is")
        else:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     "crd/gracefulpolicies.graceful.io")
        self.install_report_crd()

    def install_report_crd(self) -> None:
        """PolicyReports need the wg-policy CRD, which Kyverno or Policy Reporter bring: the
        demo installs it on its own control plane, never into someone's cluster."""
        name = "crd/policyreports.wgpolicyk8s.io"
        if self.existing_cluster:
            self.policy_reports = self.kubectl("get", name, check=False).returncode == 0
            if not self.policy_reports:
                self.console.detail("this cluster has no PolicyReport CRD (it comes with Kyverno"
                                    " or Policy Reporter): no PolicyReports in this demo")
            return
        self.console.step("installing the PolicyReport CRD (wgpolicyk8s.io/v1alpha2,"
                          " as Kyverno ships it)")
        self.kubectl("apply", "--server-side", "-f", str(REPORT_CRD))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", name)
        self.policy_reports = True

    def create_legacy(self) -> None:
        self.console.step(f"creating namespace {NAMESPACE} and the legacy Deployment"
                          " (before the webhook exists)")
        if self.kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0:
            raise DemoError(f"namespace {NAMESPACE} already exists: delete it first"
                            f" (kubectl delete namespace {NAMESPACE})")
        self.kubectl("create", "namespace", NAMESPACE)
        self.created_namespace = True
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(EXAMPLES / LEGACY_EXAMPLE))

    def start_webhook(self) -> None:
        cert, key, ca_pem = _serving_pair(self.workdir, self.webhook_host)
        port = _free_port()
        listen = "0.0.0.0" if self.webhook_host not in ("127.0.0.1", "localhost") else "127.0.0.1"  # noqa: S104
        url = f"https://{self.webhook_host}:{port}"
        self.console.step(f"starting the webhook on {url} (TLS, with a CA made for this demo)")
        webhook = Child("webhook", [*_python(), "webhook", "--cert", str(cert), "--key", str(key),
                                    "--host", listen, "--port", str(port),
                                    "--kubeconfig", str(self.kubectl.kubeconfig)],
                        self.workdir / "webhook.log")
        webhook.start(self.env())
        self.children.append(webhook)
        local = f"https://127.0.0.1:{port}" if listen == "0.0.0.0" else url  # noqa: S104
        _wait("the webhook's /readyz", lambda: _https_ok(f"{local}/readyz", ca_pem),
              self.children)
        self.console.step(f"registering it: MutatingWebhookConfiguration {WEBHOOK_CONFIGURATION}"
                          " (failurePolicy Ignore)")
        from graceful.webhook.config import webhook_configuration  # noqa: PLC0415

        config = webhook_configuration(name=WEBHOOK_CONFIGURATION, ca_bundle=ca_pem,
                                       url=f"{url}/mutate")
        self.kubectl("apply", "-f", "-", input=json.dumps(config))
        self.registered = True

    def start_operator(self) -> None:
        self.console.step(f"starting the operator (audits namespace {NAMESPACE})")
        operator = Child("operator", [*_python(), "operator",
                                      "--kubeconfig", str(self.kubectl.kubeconfig),
                                      "--namespace", NAMESPACE,
                                      # its own Lease: never competes with an installed operator
                                      "--lease-namespace", NAMESPACE,
                                      # the demo registers its own webhook and CA; an installed
                                      # webhook's Secret and caBundle are not the demo's
                                      "--no-manage-certificates"],
                         self.workdir / "operator.log")
        operator.start(self.env())
        self.children.append(operator)

    def apply_examples(self) -> None:
        names = ", ".join(f"examples/{n}" for n in MUTATED_EXAMPLES)
        self.console.step(f"applying {names}")
        for name in MUTATED_EXAMPLES:
            proc = self.kubectl("apply", "-n", NAMESPACE, "-f", str(EXAMPLES / name))
            for line in _warnings(proc.stderr):
                self.console.detail(f"{name}: kubectl printed the warning: {line}")

    def wait_for_report(self) -> dict[str, Any]:
        self.console.step("waiting for the operator's report")
        found: dict[str, Any] = {}

        def reported() -> bool:
            policy = self.kubectl.json("get", "gracefulpolicy", "apps", "-n", NAMESPACE)
            status = policy.get("status") or {}
            found.update(policy)
            return bool(status.get("matched") == 3 and status.get("mismatched") == 1)

        _wait("the policy status to show 3 matched, 1 mismatched", reported, self.children)
        if self.policy_reports:
            _wait("the PolicyReport to show 2 pass, 1 fail", self._reported, self.children)
        return found

    def _reported(self) -> bool:
        reports = self.kubectl.json("get", "policyreports", "-n", NAMESPACE)["items"]
        return any(r.get("summary", {}).get("pass") == 2 and r["summary"].get("fail") == 1
                   for r in reports)

    def report(self, policy: dict[str, Any]) -> None:
        console = self.console
        worker = self.kubectl.json("get", "deployment", "worker", "-n", NAMESPACE)
        console.section("what the webhook injected into the FastStream worker")
        for line in _injected(worker):
            console.text(line)
        pods = self.kubectl.json("get", "pods", "-n", NAMESPACE, "-l", "app=worker")["items"]
        if pods:
            spec = pods[0]["spec"]
            grace = spec.get("terminationGracePeriodSeconds")
            pre_stop = (spec["containers"][0].get("lifecycle") or {}).get("preStop")
            console.text(f"pod/{pods[0]['metadata']['name']} (made by the ReplicaSet):"
                         f" terminationGracePeriodSeconds {grace}, preStop {json.dumps(pre_stop)}")
        web = self.kubectl.json("get", "deployment", "web", "-n", NAMESPACE)
        console.text("\nand into the gunicorn web app (G = 60 s read from --graceful-timeout):")
        for line in _injected(web):
            console.text(line)
        console.section(f"kubectl get gracefulpolicies -n {NAMESPACE}")
        console.text(self.kubectl("get", "gracefulpolicies", "-n", NAMESPACE).stdout.rstrip())
        if self.policy_reports:
            console.section(f"kubectl get policyreports -n {NAMESPACE}")
            console.text(self.kubectl("get", "policyreports", "-n", NAMESPACE).stdout.rstrip())
            for item in self.kubectl.json("get", "policyreports", "-n", NAMESPACE)["items"]:
                for result in item.get("results") or []:
                    subject = (result.get("resources") or [{}])[0]
                    console.text(f"{subject.get('kind')} {subject.get('name')}:"
                                 f" {result.get('result')} ({result.get('rule')})")
        console.section("the mismatch")
        for mismatch in (policy.get("status") or {}).get("mismatches") or []:
            console.text(f"{mismatch.get('kind')} {mismatch.get('name')}:")
            for reason in mismatch.get("reasons") or []:
                console.text(f"  - {reason}")
        console.text(
            "\nIt was created before the webhook existed, so nobody set its budget. Roll it out"
            " again and the\nwebhook fixes it; the operator then reports COMPLIANT 3:\n"
            f"  kubectl -n {NAMESPACE} rollout restart deployment/legacy")

    def stop(self) -> None:
        # SIGTERM all first, then wait: their graceful shutdowns overlap.
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.terminate()
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if not self.existing_cluster:
            return
        if self.registered:
            self.kubectl("delete", "mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
                         "--ignore-not-found", check=False)
        if self.created_namespace:
            self.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@contextlib.contextmanager
def _cluster(args: argparse.Namespace, console: Console) -> Iterator[Path]:
    """The kubeconfig to use: the given one, or a local control plane's."""
    if args.kubeconfig is not None:
        yield args.kubeconfig
        return
    from testenv import BuildError, ComponentError, ControlPlane  # noqa: PLC0415

    console.step("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)")
    plane = ControlPlane(name="demo", progress=lambda msg: console.detail(msg.lstrip(". ")))
    try:
        plane.start()
    except (BuildError, ComponentError) as exc:
        raise DemoError(str(exc).splitlines()[0]) from None
    try:
        console.detail(f"ready at {plane.server} ({console.elapsed()})")
        yield plane.kubeconfig
    finally:
        plane.stop()


def _interrupt_once(_signum: int, _frame: Any) -> None:
    """The first Ctrl-C (or SIGTERM) stops the demo; later ones do not cut its clean-up short.

    The clean-up is what stops the broker, the node and the network
    namespace; interrupted half-way it would leave them running.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"\n{PROG}: interrupted; stopping everything it started (a second Ctrl-C is"
          " ignored)", file=sys.stderr, flush=True)
    raise KeyboardInterrupt


def demo(args: argparse.Namespace, console: Console | None = None,
         ask: Callable[[str], str] = input) -> int:
    """Run the demo; returns the exit code. Separate from :func:`run` for tests."""
    console = console or Console()
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        print(f"{PROG}: --kubeconfig {args.kubeconfig}: no such file", file=sys.stderr)
        return 2
    if args.kubeconfig is not None and not args.yes and not sys.stdin.isatty() and ask is input:
        print(f"{PROG}: --kubeconfig changes a cluster: confirm with --yes"
              " (standard input is not a terminal)", file=sys.stderr)
        return 2
    if getattr(args, "node", False):
        if args.keep:
            print(f"{PROG}: --keep is for the fast demo; --node ends with its report",
                  file=sys.stderr)
            return 2
        if os.geteuid() != 0:
            print(f"{PROG}: --node needs root (containerd, kubelet, network namespaces)",
                  file=sys.stderr)
            return 2
        from testenv.proof import demo as proof_demo  # noqa: PLC0415

        return proof_demo.run(console, kubeconfig=args.kubeconfig, assume_yes=args.yes, ask=ask)
    from testenv.build import find_kubectl  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="graceful-demo-run-"))
    keep_logs = False  # only a failure's logs are worth keeping; "no" and Ctrl-C leave nothing
    try:
        with _cluster(args, console) as kubeconfig:
            kubectl = Kubectl(str(find_kubectl(console.detail)), kubeconfig)
            existing = args.kubeconfig is not None
            if existing and not _confirm(kubectl, console, args.yes, ask):
                console.text("nothing changed")
                return 1
            run_demo = Demo(kubectl, console, workdir, args.webhook_host, existing)
            try:
                run_demo.install_crd()
                run_demo.create_legacy()
                run_demo.start_webhook()
                run_demo.start_operator()
                run_demo.apply_examples()
                policy = run_demo.wait_for_report()
                run_demo.report(policy)
                console.text(f"\ndemo finished in {console.elapsed()}")
                if args.keep:
                    console.text(f"\nStill running. In another shell:\n"
                                 f"  export KUBECONFIG={kubeconfig}\n"
                                 f"  kubectl get gracefulpolicies -n {NAMESPACE}\n"
                                 "Press Ctrl-C to stop.")
                    while True:
                        for child in run_demo.children:
                            child.check()
                        time.sleep(1)
            finally:
                run_demo.stop()
    except DemoError as exc:
        keep_logs = True
        print(f"{PROG}: {exc}", file=sys.stderr)
        print(f"{PROG}: the webhook's and the operator's logs are in {workdir}", file=sys.stderr)
        return 1
    finally:
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run(args: argparse.Namespace) -> int:
    # Ctrl-C must stop the demo even when it was started from a script or a
    # background job, whose shell hands it SIGINT already ignored (Python then
    # installs no KeyboardInterrupt handler of its own).
    previous_term = signal.signal(signal.SIGTERM, _interrupt_once)
    previous_int = signal.signal(signal.SIGINT, _interrupt_once)
    try:
        return demo(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


