"""The images of the local node, each built once per content hash.

An image is a docker archive in ``${XDG_CACHE_HOME:-~/.cache}/graceful/images``
named by its key (see ``recipe.py``); a build happens only when no archive
has that key, under a file lock, into a scratch directory that is renamed into
place when it is complete, so a killed build leaves nothing a later run would
mistake for an image.

- the **Python base** is ``debootstrap --variant=minbase`` of bookworm with
  Python, the public ``python`` image's stand-in as the Dockerfile's
  ``PYTHON_IMAGE``;
- **busybox** is Debian's static busybox and its applets, for test workloads;
- **pause** is a static C program, containerd's ``sandbox_image``;
- the **product** is the project's own Dockerfile, built by ``buildah bud``;
- a **pip image** is the base plus wheels installed from the host for it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from testenv.images import recipe
from testenv.images.oci import Config, add_layer, pack
from testenv.images.tools import (
    ImageError,
    Progress,
    build_lock,
    file_digest,
    images_root,
    remove_tree,
    require,
    run,
    scratch,
)

_PAUSE_SOURCE = Path(__file__).with_name("pause.c")
_PAUSE_CFLAGS = ("-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror")
_ARCHIVE = "image.tar"
#: Archives kept per image name: a few, so worktrees on different commits do
#: not rebuild each other's product image, without growing without bound.
_KEEP = 4
_BASE_CONFIG = Config(env={"PATH": recipe.PATH, "LANG": "C.UTF-8"}, cmd=("python3",))
#: What debootstrap leaves that an image must not carry: caches, logs, the
#: host's resolver and name, device nodes (the runtime provides /dev).
_BASE_TRIM = (
    "var/cache/apt", "var/lib/apt/lists", "var/log", "dev", "tmp", "debootstrap",
    "usr/share/man", "usr/share/info",
)
_BASE_EMPTIED = ("etc/resolv.conf", "etc/hostname", "etc/hosts")
_ETC_USERS = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_ETC_GROUPS = "root:x:0:\nnogroup:x:65534:\n"


@dataclass(frozen=True)
class Image:
    """A built image: the reference Pods use and the archive ``ctr images import`` reads."""

    name: str
    archive: Path

    @property
    def key(self) -> str:
        """The content key the archive is stored under (its directory's name)."""
        return self.archive.parent.name

    @property
    def size(self) -> int:
        return self.archive.stat().st_size


def _cached(name: str, key: str, progress: Progress, build: Callable[[Path, Path], None]) -> Image:
    """The archive of ``name`` with ``key``, running ``build(work, archive)`` if there is none."""
    root = images_root()
    entry = root / f"{recipe.slug(name)}-{key}"
    archive = entry / _ARCHIVE
    if not archive.exists():
        with build_lock():
            if not archive.exists():
                _build(name, entry, progress, build)
    os.utime(entry)
    return Image(name, archive)


def _build(name: str, entry: Path, progress: Progress, build: Callable[[Path, Path], None]) -> None:
    work = scratch(images_root() / "work", entry.name)
    started = time.monotonic()
    progress(f"building image {name}")
    try:
        partial = work / _ARCHIVE
        build(work, partial)
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        partial.rename(entry / _ARCHIVE)
    finally:
        remove_tree(work)
    size = (entry / _ARCHIVE).stat().st_size
    progress(
        f"built image {name} in {time.monotonic() - started:.0f}s "
        f"({size / 2**20:.1f} MiB) -> {entry / _ARCHIVE}"
    )
    _prune(entry)


def _prune(entry: Path) -> None:
    """Drop all but the newest few archives of the same image name."""
    stem = entry.name.rsplit("-", 1)[0]
    siblings = [
        p for p in entry.parent.iterdir()
        if p.is_dir() and p.name.rsplit("-", 1)[0] == stem and (p / _ARCHIVE).exists()
    ]
    siblings.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in siblings[_KEEP:]:
        if old != entry:
            shutil.rmtree(old, ignore_errors=True)


# --- the Python base ---------------------------------------------------------------------


def _mirror() -> str:
    """The machine's own Debian mirror (apt's sources), overridable for odd machines."""
    override = os.environ.get("GRACEFUL_DEBIAN_MIRROR")
    if override:
        return override
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file() and path.suffix in (".list", ".sources", ""):
            texts.append(path.read_text(errors="replace"))
    return recipe.debian_mirror(texts) or recipe.DEFAULT_MIRROR


def python_base_image(progress: Progress = print) -> Image:
    """bookworm ``minbase`` with Python 3.11 and venv: the Dockerfile's ``PYTHON_IMAGE`` here."""
    key = recipe.digest(
        "python-base", recipe.SUITE, recipe.BASE_PACKAGES, _BASE_TRIM, _BASE_EMPTIED,
        _BASE_CONFIG.flags(),
    )

    def build(work: Path, archive: Path) -> None:
        rootfs = work / "rootfs"
        debs = images_root() / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        try:
            run(recipe.debootstrap_argv(rootfs, _mirror(), debs))
        except ImageError as error:
            log = rootfs / "debootstrap" / "debootstrap.log"
            tail = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
            raise ImageError(
                f"debootstrap of {recipe.SUITE} failed (mirror {_mirror()})",
                error.command, "\n".join([error.tail, *tail]),
            ) from error
        finally:
            remove_tree(rootfs / "proc")
            remove_tree(rootfs / "sys")
        _trim(rootfs)
        pack(rootfs, _BASE_CONFIG, recipe.BASE_NAME, archive, work)

    return _cached(recipe.BASE_NAME, key, progress, build)


def _trim(rootfs: Path) -> None:
    for rel in _BASE_TRIM:
        path = rootfs / rel
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    for rel in _BASE_EMPTIED:
        (rootfs / rel).unlink(missing_ok=True)
        (rootfs / rel).write_text("")
    for rel in ("proc", "sys"):
        (rootfs / rel).mkdir(exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)


# --- busybox and pause -------------------------------------------------------------------


def _busybox() -> Path:
    """Debian's static busybox (the dynamic ``busybox`` package would need a libc)."""
    path = Path(require("busybox")).resolve()
    if not recipe.is_static_elf(path.read_bytes()[:65536]):
        raise ImageError(
            f"{path} is not statically linked; run: "
            "apt-get install -y --no-install-recommends busybox-static"
        )
    return path


def busybox_image(progress: Progress = print) -> Image:
    """/bin/sh, sleep, date, nc... from one static binary: a tiny image for test workloads."""
    binary = _busybox()
    applets = sorted(set(run([str(binary), "--list-full"]).split()) - {"bin/busybox"})
    config = Config(env={"PATH": recipe.PATH}, cmd=("sh",))
    key = recipe.digest(
        "busybox", file_digest(binary), applets, config.flags(), _ETC_USERS, _ETC_GROUPS
    )

    def build(work: Path, archive: Path) -> None:
        rootfs = work / "rootfs"
        for rel in ("bin", "etc", "root", "tmp", "proc", "sys", "dev"):
            (rootfs / rel).mkdir(parents=True)
        (rootfs / "tmp").chmod(0o1777)
        shutil.copy(binary, rootfs / "bin" / "busybox")
        (rootfs / "bin" / "busybox").chmod(0o755)
        for applet in applets:
            link = rootfs / applet
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to("/bin/busybox")
        (rootfs / "etc" / "passwd").write_text(_ETC_USERS)
        (rootfs / "etc" / "group").write_text(_ETC_GROUPS)
        pack(rootfs, config, recipe.BUSYBOX_NAME, archive, work)

    return _cached(recipe.BUSYBOX_NAME, key, progress, build)


def pause_image(progress: Progress = print) -> Image:
    """containerd's ``sandbox_image``: ``pause.c`` built static, alone in its image."""
    config = Config(entrypoint=("/pause",), user="65535:65535")
    key = recipe.digest("pause", file_digest(_PAUSE_SOURCE), _PAUSE_CFLAGS, config.flags())

    def build(work: Path, archive: Path) -> None:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        try:
            run(["gcc", *_PAUSE_CFLAGS, "-o", str(rootfs / "pause"), str(_PAUSE_SOURCE)])
        except ImageError as error:
            raise ImageError(
                "gcc could not build the static pause binary (the static C library is in "
                "libc6-dev: apt-get install -y --no-install-recommends gcc libc6-dev)",
                error.command, error.tail,
            ) from error
        pack(rootfs, config, recipe.PAUSE_NAME, archive, work)

    return _cached(recipe.PAUSE_NAME, key, progress, build)


# --- the product and pip images -----------------------------------------------------------


def _host_pip_settings() -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True, text=True, check=False,
    )
    return recipe.pip_settings(proc.stdout) if proc.returncode == 0 else {}


def _build_mounts(work: Path) -> dict[str, str]:
    """Host files a build sees but does not keep: the CA bundle and a pip.conf for it."""
    mounts = {}
    host_bundle = Path(os.environ.get("SSL_CERT_FILE") or recipe.CA_BUNDLE)
    if host_bundle.is_file():
        mounts[str(host_bundle)] = recipe.CA_BUNDLE
    conf = work / "pip.conf"
    conf.write_text(recipe.pip_conf(_host_pip_settings()))
    mounts[str(conf)] = "/etc/pip.conf"
    return mounts


def product_image(repo_root: Path, progress: Progress = print) -> Image:
    """The project's Dockerfile built on the local base, named as ``manifests/`` expects."""
    base = python_base_image(progress)
    files = recipe.context_files(repo_root)
    missing = [str(rel) for rel in files if not (repo_root / rel).is_file()]
    if missing:
        raise ImageError(f"the build context in {repo_root} lacks {', '.join(missing)}")
    name = recipe.product_name(repo_root)
    key = recipe.product_key(repo_root, base.key)

    def build(work: Path, archive: Path) -> None:
        context = work / "context"
        for rel in files:
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / rel, context / rel)
        storage = images_root() / "buildah"
        buildah = recipe.buildah_global(storage)
        run([*buildah, "pull", "--quiet", f"docker-archive:{base.archive}"])
        stored = recipe.normalise(name)
        run(recipe.buildah_bud_argv(
            storage, context, stored, recipe.BASE_NAME, _build_mounts(work)
        ))
        run([*buildah, "push", "--quiet", stored, f"docker-archive:{archive}:{name}"])

    return _cached(name, key, progress, build)


def pip_image(name: str, packages: Sequence[str], progress: Progress = print) -> Image:
    """The base plus ``packages`` (wheels only) under /opt/pip, on PYTHONPATH and PATH.

    pip runs on the host for the image's Python (``--python-version``,
    ``--platform``), where the machine's index and CA are already configured,
    so nothing runs inside the image. The key holds the requirement strings,
    not what they resolved to: pin versions to get a new image on a release.
    """
    base = python_base_image(progress)
    machine = platform.machine()
    config = Config(env={
        "PATH": f"{recipe.PIP_TARGET}/bin:{recipe.PATH}",
        "PYTHONPATH": recipe.PIP_TARGET,
    })
    key = recipe.digest(
        "pip", name, base.key, list(packages), recipe.pip_target_argv("python", Path("T"),
                                                                       packages, machine),
        config.flags(),
    )

    def build(work: Path, archive: Path) -> None:
        target = work / "target"
        run(recipe.pip_target_argv(sys.executable, target, packages, machine))
        scripts = target / "bin"
        if scripts.is_dir():
            for script in scripts.iterdir():
                if script.is_file():
                    text = script.read_text(errors="surrogateescape")
                    fixed = recipe.rewrite_shebang(text, "/usr/bin/python3")
                    if fixed is not None:
                        script.write_text(fixed, errors="surrogateescape")
        add_layer(base.archive, target, recipe.PIP_TARGET, config=config, name=name,
                  archive=archive, work=work)

    return _cached(name, key, progress, build)
