"""Everything one proof run needs around the node: the images, the broker, the product, both modes.

The node itself (kubelet, containerd, kube-proxy in the cluster's network
namespace) comes from the caller: the node e2e fixture, or :func:`start_node`
for the bench and the demo. This process must run inside that namespace: the
broker is started from here and listens on the node IP for the Pods, and the
load generator reaches the ClusterIP through the node's kube-proxy rules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testenv.build import find_kubectl
from testenv.proof import manifests, rabbitmq, versions
from testenv.proof.manifests import MODES, Durations
from testenv.proof.run import (
    Experiment,
    Kubectl,
    Progress,
    install_product,
    journal_root,
    product_installed,
    uninstall_product,
)


def proof_image(progress: Progress = print) -> Any:
    """The proof's image: the Python base plus :data:`versions.PACKAGES` (built once per pin set).

    It must be built before this process enters the node's network namespace
    (pip needs the package index); the node loads it with its other images.
    """
    from testenv import images  # noqa: PLC0415 - the image tools are needed only with a node

    return images.pip_image(versions.IMAGE, list(versions.PACKAGES), progress)


@contextlib.contextmanager
def start_node(progress: Progress = print) -> Iterator[Any]:
    """A cluster with a real node for the bench and the demo, the proof's image on it.

    Moves this process into the node's network namespace (see
    ``testenv.nodecluster``): call it when nothing else of the process needs
    the host's network.
    """
    from testenv.nodecluster import running_node  # noqa: PLC0415

    image = proof_image(progress)
    with running_node("proof", progress, extra_images=[image]) as plane:
        yield plane


def node_ip() -> str:
    from testenv.netns import NODE_IP  # noqa: PLC0415

    return str(NODE_IP)


@contextlib.contextmanager
def proof_session(kubeconfig: Path, address: str, durations: Durations, *, messages: int = 6,
                  rate: float = 40.0, workloads: tuple[str, ...] = ("consumer", "web"),
                  install: bool = True, tidy: bool = True, journal: Path | None = None,
                  progress: Progress = print) -> Iterator[Experiment]:
    """A broker at the node IP ``address``, the product from manifests/, both modes; all undone.

    The proof's image must already be on the node (:func:`proof_image`).
    ``tidy=False`` leaves the namespaces and the product in the cluster at the
    end: for a cluster that is about to be stopped anyway, deleting them first
    only makes the caller wait (and a Ctrl-C wait longest).

    ``journal`` is the directory for the Pods' journals (:func:`journal_root`);
    without it the session makes one and removes it when it ends. A caller
    that leaves Pods running (``tidy=False``) passes its own and removes it
    once the node is stopped: a Pod that starts meanwhile has the kubelet
    create its journal directory again (``DirectoryOrCreate``), after it was
    removed.
    """
    kubectl = Kubectl(str(find_kubectl()), kubeconfig)
    installed_here = install and not product_installed(kubectl)
    if install:
        install_product(kubectl, progress)
    progress("starting RabbitMQ next to the node")
    own_journal = journal_root() if journal is None else contextlib.nullcontext(journal)
    with rabbitmq.running(addresses=[address], port=rabbitmq.AMQP_PORT) as broker, \
            own_journal as root:
        experiment = Experiment(kubectl=kubectl, broker=broker, node_ip=address,
                                durations=durations, journal_root=root, messages=messages,
                                request_rate=rate, workloads=workloads, progress=progress)
        try:
            for mode in MODES:
                experiment.install(mode)
            yield experiment
        finally:
            experiment.close()
            if tidy:
                for mode in MODES:
                    experiment.remove(mode)
                if installed_here:  # leave the cluster as it was found
                    uninstall_product(kubectl)


__all__ = ["manifests", "node_ip", "proof_image", "proof_session", "start_node"]
