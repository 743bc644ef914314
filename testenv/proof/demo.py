"""``graceful demo --node``: the proof for a person, in about two minutes.

The same measurement as ``python -m bench.rollout_loss --quick`` (one short
rollout per mode, ``manifests.SHORT``: handlers of 8 s, the manifest's grace
period 5 s), with progress lines a person can follow, ending with the two
modes side by side and the measured stop of one old Pod of each mode, drawn
as ``graceful explain`` draws a planned one.

Where it runs:

- by default on a cluster it starts itself: a real node (kubelet,
  containerd, kube-proxy) in a network namespace of its own, stopped with
  everything else at the end, Ctrl-C included;
- with ``--kubeconfig``, on a cluster started by ``graceful cluster up
  --node``, after asking: the broker and the load generator must run next to
  the node, in its network namespace, so the cluster's state file (which names
  that namespace) is what makes it usable. Everything the demo adds is
  removed at the end, except the proof's image in the node's containerd.

The default ``graceful demo`` stays the fast one, on API objects only.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testenv.proof.accounting import ModeFigures, Totals, draw_stop, telling_stop
from testenv.proof.manifests import MODES, SHORT, Mode, namespace_of
from testenv.proof.run import Experiment, ExperimentError, RolloutResult, journal_root

if TYPE_CHECKING:
    from testenv.demo import Console

PROG = "graceful demo --node"
MESSAGES = 6
RATE = 40.0

_LABELS = ("messages published", "acked", "processed twice", "lost", "requests sent",
           "requests failed", "old consumers' exit codes", "rollout seconds")


def _cells(result: RolloutResult) -> list[str]:
    figures = ModeFigures.of([result.messages], [result.requests])
    consumers = [s for s in result.stops if s.workload == "consumer"]
    failed = str(figures.failed) + (f" ({figures.failures()})" if figures.by_kind else "")
    messages = [str(figures.published), str(figures.acked), str(figures.duplicated),
                str(figures.lost)] if figures.has_messages else ["-"] * 4
    requests = [str(figures.sent), failed] if figures.has_requests else ["-"] * 2
    codes = " ".join("?" if s.exit_code is None else str(s.exit_code) for s in consumers)
    return [*messages, *requests, codes or "-", f"{result.seconds:.1f}"]


def side_by_side(plain: RolloutResult, with_policy: RolloutResult) -> list[str]:
    """The table a person reads: the same rollout with and without the policy."""
    left, right = _cells(with_policy), _cells(plain)
    width = max(len(label) for label in _LABELS)
    col = max(len("with policy"), *(len(c) for c in left))
    lines = [f"  {'':{width}}  {'with policy':>{col}}   without",
             f"  {'-' * width}  {'-' * col}   {'-' * max(len('without'), *map(len, right))}"]
    lines += [f"  {label:{width}}  {a:>{col}}   {b}"
              for label, a, b in zip(_LABELS, left, right, strict=True)]
    return lines


def report(plain: RolloutResult, with_policy: RolloutResult) -> list[str]:
    lines = ["", "--- the same rollout, with and without the policy " + "-" * 26, "",
             *side_by_side(plain, with_policy)]
    for result in (with_policy, plain):
        stop = telling_stop(result.stops)
        if stop is not None:
            mode = "without policy" if result.mode == "plain" else "with policy"
            lines += ["", f"--- one old Pod, {mode} " + "-" * (56 - len(mode)), "",
                      *draw_stop(stop, result.mode)]
    totals = {r.mode: Totals.of(r.messages, r.requests) for r in (plain, with_policy)}
    lines += ["", f"with policy: {totals['policy'].clause()}",
              f"without:     {totals['plain'].clause()}"]
    return lines


# -- where it runs ----------------------------------------------------------------------

def cluster_state_of(kubeconfig: Path) -> dict[str, Any] | None:
    """The ``graceful cluster up --node`` state whose kubeconfig is ``kubeconfig``, if any."""
    from testenv.cli import state_dir  # noqa: PLC0415

    wanted = kubeconfig.resolve()
    for path in sorted(state_dir().glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            state: dict[str, Any] = json.loads(path.read_text())
            if Path(state["kubeconfig"]).resolve() == wanted and state.get("netns"):
                return state
    return None


def _confirm(console: Console, server: str, assume_yes: bool, ask: Callable[[str], str]) -> bool:
    console.text(f"{PROG} will change the cluster at {server}:")
    for mode in MODES:
        console.detail(f"create namespace {namespace_of(mode)} and the proof's workloads in it"
                       " (deleted on exit)")
    console.detail("install graceful-operator from manifests/ if it is not installed"
                   " (then removed on exit)")
    console.detail("run RabbitMQ and a load generator here, in the node's network namespace"
                   " (stopped on exit)")
    console.detail("load the image graceful.local/proof:1 into the node's containerd (kept)")
    if assume_yes:
        return True
    try:
        answer = ask("Continue? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


@contextlib.contextmanager
def _fresh_node(console: Console) -> Iterator[Path]:
    from testenv.nodecluster import running_node  # noqa: PLC0415
    from testenv.proof.session import proof_image  # noqa: PLC0415

    console.step("building the proof's image: FastStream and uvicorn on the local Python base"
                 " (cached after the first run)")
    image = proof_image(console.detail)
    console.step("starting a cluster with a real node in a network namespace of its own: etcd,"
                 " kube-apiserver, controllers, scheduler, containerd, kubelet, kube-proxy")
    started = time.monotonic()
    with running_node("proof", lambda m: console.detail(m.lstrip(". ")),
                      extra_images=[image]) as plane:
        console.detail(f"node {plane.node_name} Ready in {time.monotonic() - started:.0f}s"
                       f" (directory {plane.root}, network namespace {plane.netns})")
        yield plane.kubeconfig


@contextlib.contextmanager
def _existing_node(console: Console, state: dict[str, Any]) -> Iterator[Path]:
    from testenv import netns  # noqa: PLC0415
    from testenv.node import Node, load_images  # noqa: PLC0415
    from testenv.proof.session import proof_image  # noqa: PLC0415

    console.step("building the proof's image (cached after the first run)")
    image = proof_image(console.detail)
    if not netns.current_is(state["netns"]):  # nothing else of this process needs the host's
        netns.NetworkNamespace(state["netns"]).enter()
    console.step(f"loading it into the node's containerd ({state['name']}-node)")
    load_images([image], Node(root=Path(state["root"]), name=f"{state['name']}-node"))
    yield Path(state["kubeconfig"])


# -- the run ----------------------------------------------------------------------------

def run(console: Console, *, kubeconfig: Path | None = None, assume_yes: bool = False,
        ask: Callable[[str], str] = input) -> int:
    """Roll out both modes once on a node, print the report; undo everything it started."""
    from testenv.proof.session import node_ip, proof_session  # noqa: PLC0415

    existing = kubeconfig is not None
    place: contextlib.AbstractContextManager[Path]
    if kubeconfig is not None:
        state = cluster_state_of(kubeconfig)
        if state is None:
            console.text(f"{PROG}: --kubeconfig {kubeconfig} is not a cluster started by"
                         " `graceful cluster up --node` (the broker and the load generator run"
                         " next to its node, in the network namespace its state names); run"
                         f" `{PROG}` alone to start one")
            return 2
        if not _confirm(console, state["server"], assume_yes, ask):
            console.text("nothing changed")
            return 1
        place = _existing_node(console, state)
    else:
        place = _fresh_node(console)

    def progress(message: str) -> None:
        console.step(message)

    from testenv.build import BuildError  # noqa: PLC0415
    from testenv.images.tools import ImageError  # noqa: PLC0415
    from testenv.netns import NetnsError  # noqa: PLC0415
    from testenv.node import NodeError  # noqa: PLC0415
    from testenv.process import ComponentError  # noqa: PLC0415
    from testenv.proof.rabbitmq import RabbitMQError  # noqa: PLC0415

    try:
        # the journals outlive the node: a Pod starting while it stops writes there again
        with journal_root() as journal, place as config, proof_session(
                config, node_ip(), SHORT, messages=MESSAGES, rate=RATE, tidy=existing,
                journal=journal, progress=progress) as experiment:
            try:
                _roll_out(console, experiment)
            finally:
                console.step("removing what it added to the cluster, stopping RabbitMQ"
                             if existing else "stopping everything it started: RabbitMQ,"
                             " the node, the control plane, the network namespace")
    except (ExperimentError, BuildError, ComponentError, ImageError, NetnsError, NodeError,
            RabbitMQError) as exc:
        console.text(f"{PROG}: {exc}")
        return 1
    console.text(f"demo finished in {console.elapsed()}")
    return 0


def _roll_out(console: Console, experiment: Experiment) -> None:
    console.step(f"each rollout: publish {MESSAGES} messages (handlers of {SHORT.handler:g} s),"
                 " wait until the old consumers are in their handlers, send"
                 f" {RATE:g} requests/s to the web Service, `kubectl rollout restart` both"
                 " Deployments, wait until the old Pods are gone")
    experiment.progress = console.detail  # under each rollout's own step line
    results: dict[Mode, RolloutResult] = {}
    order: tuple[tuple[Mode, str], ...] = (("plain", "without the policy"),
                                           ("policy", "with the policy"))
    for index, (mode, title) in enumerate(order):
        console.step(f"rollout {index + 1} of 2, {title} (namespace {namespace_of(mode)})")
        result = experiment.rollout(mode, index)
        results[mode] = result
        console.detail(f"{Totals.of(result.messages, result.requests).clause()};"
                       f" old Pods gone after {result.seconds:.1f}s")
    for line in report(results["plain"], results["policy"]):
        console.text(line)
    console.text("")
