"""Container images for the local node, built without a registry or a Docker engine.

``product_image(repo_root)`` builds the project's Dockerfile with buildah on a
locally made Python base; ``busybox_image()`` and ``pause_image()`` are the
test workloads' and the sandboxes' images; ``pip_image(name, packages)`` is the
base plus wheels. Each returns an :class:`Image` whose archive is cached once
per content hash, and ``load(images, address=SOCKET)`` imports them into a
containerd. ``python -m testenv.images`` builds them all.
"""

from testenv.images.builders import (
    Image,
    busybox_image,
    pause_image,
    pip_image,
    product_image,
    python_base_image,
)
from testenv.images.loader import load, loaded
from testenv.images.oci import unpack
from testenv.images.recipe import BASE_NAME, BUSYBOX_NAME, PAUSE_NAME, normalise
from testenv.images.tools import APT_PACKAGES, ImageError, Progress, images_root

__all__ = [
    "APT_PACKAGES",
    "BASE_NAME",
    "BUSYBOX_NAME",
    "PAUSE_NAME",
    "Image",
    "ImageError",
    "Progress",
    "busybox_image",
    "images_root",
    "load",
    "loaded",
    "normalise",
    "pause_image",
    "pip_image",
    "product_image",
    "python_base_image",
    "unpack",
]
