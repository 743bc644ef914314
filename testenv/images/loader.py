"""Loading built images into a containerd, as a registry pull would have.

``ctr images import`` of a docker archive stores the archive's name the way
the CRI resolves a Pod's ``image:`` (``graceful-operator:0.1.0`` becomes
``docker.io/library/graceful-operator:0.1.0``), unpacked for the snapshotter
the kubelet's containers use, so Pods with ``imagePullPolicy: IfNotPresent``
or ``Never`` start without any registry. Each import is labelled with the
archive's content key, which makes loading idempotent and cheap: an image
already there with the same key is not imported again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from testenv.images import recipe
from testenv.images.builders import Image
from testenv.images.tools import ImageError, run

#: The containerd image label that records which archive an image came from.
KEY_LABEL = "graceful.local/archive-key"


def loaded(*, address: Path, ctr: str = "ctr", namespace: str = "k8s.io") -> dict[str, str]:
    """Each image reference in ``namespace`` with its :data:`KEY_LABEL` ("" if none)."""
    listing = run(recipe.ctr_argv(ctr, address, namespace, "images", "list"))
    return recipe.parse_image_list(listing, KEY_LABEL)


def load(
    images: Iterable[Image],
    *,
    address: Path,
    ctr: str = "ctr",
    namespace: str = "k8s.io",
    snapshotter: str = "overlayfs",
) -> None:
    """Import each image into the containerd at ``address`` unless it is already there."""
    if not address.is_socket():
        raise ImageError(f"no containerd socket at {address} (is it running?)")
    try:
        present = loaded(address=address, ctr=ctr, namespace=namespace)
    except ImageError as error:
        raise ImageError(
            f"cannot list images of the containerd at {address} (is it running?)",
            error.command, error.tail,
        ) from error
    for image in images:
        reference = recipe.normalise(image.name)
        if present.get(reference) == image.key:
            continue
        run(recipe.ctr_argv(ctr, address, namespace, "images", "import",
                            "--snapshotter", snapshotter, str(image.archive)))
        run(recipe.ctr_argv(ctr, address, namespace, "images", "label", reference,
                            f"{KEY_LABEL}={image.key}"))
