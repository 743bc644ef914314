"""A cluster with a real node, for a program that wants one: the demo, a benchmark, a test run.

Order matters and is kept here once: images are built first (that needs the
package registries, so it runs before this process leaves the host's
network), then the node's network namespace is created and entered, then the
cluster starts inside it. Leaving the ``with`` block stops the cluster and
removes the namespace; the process stays in the (now deleted) namespace, so
call it last, or from a process that has nothing else to do on the network.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from testenv import netns
from testenv.controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[1]


def node_images(progress: Callable[[str], None] = lambda _m: None) -> list[Any]:
    """The images every node gets: the sandbox, a shell, the Python base, the product."""
    from testenv import images  # noqa: PLC0415 - image tools are needed only with a node

    return [images.pause_image(progress), images.busybox_image(progress),
            images.python_base_image(progress), images.product_image(REPO_ROOT, progress)]


def enter_new_netns(name: str) -> netns.NetworkNamespace:
    """Create namespace ``name`` and move the calling (main) thread into it."""
    namespace = netns.NetworkNamespace.create(name)
    try:
        namespace.enter()
    except BaseException:
        namespace.delete()
        raise
    return namespace


@contextlib.contextmanager
def running_node(name: str, progress: Callable[[str], None] = lambda _m: None,
                 extra_images: list[Any] | None = None) -> Iterator[ControlPlane]:
    images = node_images(progress) + list(extra_images or [])
    namespace = enter_new_netns(f"graceful-{name}-{os.getpid()}")
    plane = ControlPlane(name=name, progress=progress, node=True, netns=namespace.name,
                         images=images)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        namespace.delete()
