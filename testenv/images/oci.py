"""Root file systems in, docker archives out: umoci packs, skopeo converts.

A directory becomes a one-layer OCI image with ``umoci insert`` (no daemon,
no registry), and ``skopeo copy`` writes it as the docker-archive tarball that
``ctr images import`` and ``buildah pull`` both read. An existing archive gets
another layer the same way, which is how :func:`pip_image` adds packages to
the base without running anything inside it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testenv.images.tools import run

#: A fixed creation time: the archive's bytes then depend on its content only.
_CREATED = "2026-01-01T00:00:00Z"
_TAG = "image"


@dataclass(frozen=True)
class Config:
    """The parts of an OCI image configuration these images set."""

    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    user: str = ""
    workingdir: str = ""

    def flags(self) -> list[str]:
        flags = [f"--config.env={key}={value}" for key, value in self.env.items()]
        if self.entrypoint:
            flags.append("--clear=config.entrypoint")
            flags += [f"--config.entrypoint={arg}" for arg in self.entrypoint]
        if self.cmd:
            flags.append("--clear=config.cmd")
            flags += [f"--config.cmd={arg}" for arg in self.cmd]
        if self.user:
            flags.append(f"--config.user={self.user}")
        if self.workingdir:
            flags.append(f"--config.workingdir={self.workingdir}")
        return flags


def _layout(work: Path) -> str:
    return f"{work / 'oci'}:{_TAG}"


def pack(rootfs: Path, config: Config, name: str, archive: Path, work: Path) -> None:
    """``rootfs`` as the single layer of image ``name``, written to ``archive``."""
    image = _layout(work)
    run(["umoci", "init", "--layout", str(work / "oci")])
    run(["umoci", "new", "--image", image])
    _insert(image, rootfs, "/")
    _finish(image, config, name, archive)


def add_layer(
    base: Path, source: Path, target: str, *, config: Config, name: str, archive: Path, work: Path
) -> None:
    """The image in ``base`` plus ``source`` at ``target`` in a new layer, as ``name``."""
    image = _layout(work)
    run(["skopeo", "copy", "--quiet", f"docker-archive:{base}", f"oci:{image}"])
    _insert(image, source, target)
    _finish(image, config, name, archive)


def _insert(image: str, source: Path, target: str) -> None:
    run(["umoci", "insert", "--image", image, "--history.created", _CREATED,
         str(source), target])


def _finish(image: str, config: Config, name: str, archive: Path) -> None:
    run(["umoci", "config", "--image", image, "--created", _CREATED,
         "--history.created", _CREATED, *config.flags()])
    archive.unlink(missing_ok=True)
    run(["skopeo", "copy", "--quiet", f"oci:{image}", f"docker-archive:{archive}:{name}"])


def unpack(archive: Path, rootfs: Path) -> None:
    """The root file system of a docker archive, extracted to ``rootfs`` (to look inside).

    ``rootfs`` must not exist; the OCI layout made on the way sits beside it
    and is removed.
    """
    work = rootfs.with_name(rootfs.name + ".oci")
    work.mkdir(parents=True)
    try:
        image = _layout(work)
        run(["skopeo", "copy", "--quiet", f"docker-archive:{archive}", f"oci:{image}"])
        run(["umoci", "raw", "unpack", "--image", image, str(rootfs)])
    finally:
        shutil.rmtree(work, ignore_errors=True)
