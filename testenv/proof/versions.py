"""What the proof's Pods run, pinned in one place.

The image is built from these by ``testenv.images.pip_image`` (``pip install
--target`` into the local Python base); the development venv gets the same
FastStream for the local checks and the publisher (``pyproject.toml``'s
``test`` extra, kept equal to :data:`FASTSTREAM` by a test). These are the
versions whose shutdown behaviour ``docs/proof.md`` describes.
"""

from __future__ import annotations

from typing import Final

FASTSTREAM: Final = "0.7.8"
IMAGE: Final = "graceful.local/proof:1"
PACKAGES: Final = (
    f"faststream[rabbit]=={FASTSTREAM}",
    "aio-pika==10.2.1",
    "aiormq==7.2.4",
    "pamqp==4.0.1",
    "uvicorn==0.54.0",
)
#: The Debian package of the broker (``./scripts/bootstrap`` installs it).
RABBITMQ_DEBIAN: Final = "rabbitmq-server"
