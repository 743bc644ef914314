"""Running the image tools, their errors, the cache and its lock.

Every image is built by Debian's own tools (debootstrap, umoci, skopeo,
buildah, gcc) driven from here, because this machine has neither a registry
nor a Docker engine. A tool that is missing is reported with the ``apt-get``
line that installs it, and a tool that fails with its command line and the
tail of its output: a build that dies in CI must say why without a re-run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from testenv.build import cache_root
from testenv.filelock import exclusive

Progress = Callable[[str], None]

#: The Debian package that provides each command this package runs.
PACKAGES: Mapping[str, str] = {
    "debootstrap": "debootstrap",
    "umoci": "umoci",
    "skopeo": "skopeo",
    "buildah": "buildah",
    "gcc": "gcc",
    "busybox": "busybox-static",
    "ctr": "containerd",
}
#: What ``scripts/bootstrap`` installs so that every image here builds and loads.
APT_PACKAGES = (
    "debootstrap", "debian-archive-keyring", "umoci", "skopeo", "buildah", "busybox-static",
    "containerd", "gcc", "libc6-dev",
)
_TAIL_LINES = 30


class ImageError(RuntimeError):
    """An image could not be built or loaded.

    ``command`` is the argv that failed (empty when no command ran, e.g. a
    missing tool) and ``tail`` the last lines of its output.
    """

    def __init__(self, message: str, command: Sequence[str] = (), tail: str = "") -> None:
        self.command = list(command)
        self.tail = tail
        super().__init__(message + (f":\n{tail}" if tail else ""))


def images_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/graceful/images``: archives and buildah's storage."""
    return cache_root() / "images"


def require(tool: str) -> str:
    """The absolute path of ``tool``, or an ImageError naming the package to install."""
    found = shutil.which(tool) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / tool).exists()), None
    )
    if found is None:
        package = PACKAGES.get(tool, tool)
        raise ImageError(
            f"`{tool}` is not installed; run: apt-get install -y --no-install-recommends {package}"
            " (./scripts/bootstrap installs every image tool)"
        )
    return found


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> str:
    """Run ``argv`` (argv[0] resolved with :func:`require`) and return its stdout."""
    command = [require(argv[0]), *argv[1:]]
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=None if env is None else dict(env),
        input=input_text,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-_TAIL_LINES:])
        raise ImageError(
            f"`{' '.join(argv)}` failed (exit {proc.returncode})", command=argv, tail=tail
        )
    return proc.stdout


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, streamed (busybox and archives are megabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_lock() -> contextlib.AbstractContextManager[None]:
    """Serialise image builds across processes (two test sessions, CI and a person).

    One lock for all images, because they share buildah's storage. It is taken
    only around the build of one archive, never while waiting for a dependency.
    """
    return exclusive(images_root() / ".lock")


def scratch(parent: Path, name: str) -> Path:
    """A fresh empty directory ``parent/name`` (a leftover of a killed build is removed)."""
    path = parent / name
    remove_tree(path)
    path.mkdir(parents=True)
    return path


def remove_tree(path: Path) -> None:
    """``rm -rf`` that refuses to follow a mount: unmount what a failed tool left first."""
    for mount in mounts_under(Path("/proc/self/mountinfo").read_text(), path):
        subprocess.run(["umount", "--lazy", mount], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def mounts_under(mountinfo: str, root: Path) -> list[str]:
    """Mount points at or below ``root`` in a mountinfo text, deepest first.

    debootstrap mounts /proc and /sys inside its target while it works; if it
    is killed they stay, and ``rm -rf`` would walk into the host's /sys.
    """
    prefix = os.path.normpath(root)
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)
