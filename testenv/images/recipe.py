"""What each image is made of, as data: cache keys, names and command lines.

Nothing here runs a tool, so the rules that decide when an image is rebuilt
(its key) and how a tool is called (its argv) are tested without building.

A key is a hash of everything that shapes an image and of nothing else: the
product image's key covers exactly the files its build context holds, so
editing ``graceful/`` rebuilds it while editing a test or a doc does not.
Where the files come from (the mirror, the package index, the cache path) is
left out: it changes where the bytes are fetched, not what they are.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

#: Bumped when the way images are assembled changes, so every archive is rebuilt.
FORMAT = 1

BASE_NAME = "graceful.local/python:3.11-bookworm"
BUSYBOX_NAME = "graceful.local/busybox:1"
PAUSE_NAME = "graceful.local/pause:1"
PRODUCT_REPOSITORY = "graceful-operator"

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "ca-certificates", "python3-venv", "python-is-python3")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PYTHON_VERSION = "3.11"
#: bookworm's glibc is 2.36: any manylinux wheel up to that runs in the base image.
GLIBC = (2, 36)

#: Where the machine's CA bundle is mounted during a build (it is the path
#: Debian's pip and OpenSSL read). Mounted, never copied: the image keeps its own.
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: The image of a :func:`pip_image`: packages under /opt/pip, found through PYTHONPATH.
PIP_TARGET = "/opt/pip"

#: The product image's build context: what the Dockerfile COPYs, and itself.
CONTEXT_FILES = ("Dockerfile", "pyproject.toml", "setup.py", "README.md")
CONTEXT_GLOBS = ("requirements*.lock",)
CONTEXT_TREES = ("graceful",)
_SKIPPED_PARTS = ("__pycache__",)
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def digest(*parts: object) -> str:
    """A short, stable hash of JSON-able parts (with the format version)."""
    text = json.dumps([FORMAT, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def slug(name: str) -> str:
    """A directory name for an image reference: ``graceful.local/busybox:1`` -> ``busybox-1``."""
    last = name.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", last)


def normalise(name: str) -> str:
    """The reference containerd stores for ``name``, as the CRI resolves a Pod's ``image:``.

    ``graceful-operator:0.1.0`` -> ``docker.io/library/graceful-operator:0.1.0``;
    a first component with a dot, a colon or ``localhost`` is a registry and is kept.
    """
    first, slash, _ = name.partition("/")
    if not slash:
        path = f"docker.io/library/{name}"
    elif "." in first or ":" in first or first == "localhost":
        path = name
    else:
        path = f"docker.io/{name}"
    last = path.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        path += ":latest"
    return path


# --- the build context of the product image -------------------------------------------


def context_files(repo_root: Path) -> list[Path]:
    """The product image's build context, relative to ``repo_root``, sorted.

    The same rule as ``.dockerignore`` (a test keeps them in step); the build
    is run from a copy of exactly these files, so the key covers all it sees.
    """
    found: set[Path] = set()
    for name in CONTEXT_FILES:
        found.add(Path(name))
    for pattern in CONTEXT_GLOBS:
        found.update(p.relative_to(repo_root) for p in repo_root.glob(pattern))
    for tree in CONTEXT_TREES:
        for path in (repo_root / tree).rglob("*"):
            rel = path.relative_to(repo_root)
            if path.is_file() and not _skipped(rel):
                found.add(rel)
    return sorted(found)


def _skipped(rel: Path) -> bool:
    return any(part in _SKIPPED_PARTS for part in rel.parts) or rel.suffix in _SKIPPED_SUFFIXES


def context_digest(repo_root: Path, files: Iterable[Path]) -> str:
    """sha256 over each file's path, mode bit x and bytes."""
    hasher = hashlib.sha256()
    for rel in files:
        path = repo_root / rel
        data = path.read_bytes()
        executable = bool(path.stat().st_mode & 0o111)
        hasher.update(f"{rel.as_posix()}\0{int(executable)}\0{len(data)}\0".encode())
        hasher.update(data)
    return hasher.hexdigest()


def product_key(repo_root: Path, base_key: str) -> str:
    """The product image's key: its name, its base and every file of its build context."""
    files = context_files(repo_root)
    return digest("product", product_name(repo_root), base_key, context_digest(repo_root, files))


def product_name(repo_root: Path) -> str:
    """``graceful-operator:<version in pyproject.toml>``, the name ``manifests/`` uses."""
    match = re.search(
        r'^version\s*=\s*"([^"]+)"', (repo_root / "pyproject.toml").read_text(), flags=re.M
    )
    if match is None:
        raise ValueError(f"no version in {repo_root / 'pyproject.toml'}")
    return f"{PRODUCT_REPOSITORY}:{match.group(1)}"


# --- the Debian mirror and pip's settings ----------------------------------------------


def debian_mirror(sources: Iterable[str], suite: str = SUITE) -> str | None:
    """The first configured mirror that serves ``suite`` (``main``), from apt's sources.

    Reads both formats: deb822 stanzas (``URIs:``/``Suites:``) and one-line
    ``deb URI SUITE COMPONENTS``. Security and update suites do not count.
    """
    for text in sources:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and suite in fields.get(
                "suites", ""
            ).split() and "main" in fields.get("components", "").split():
                uris = fields.get("uris", "").split()
                if uris:
                    return uris[0]
            for line in stanza.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == suite and (
                    "main" in words[3:]
                ):
                    return words[1]
    return None


#: pip settings a build inside a fresh root file system needs to reach the same index.
_PIP_PASSED = ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout",
               "retries", "proxy")


def pip_settings(listing: str) -> dict[str, str]:
    """The index settings from ``pip config list`` output, environment entries winning.

    ``find-links`` and ``cert`` are host paths and are not passed on: the build
    sees the CA bundle at :data:`CA_BUNDLE` instead.
    """
    found: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        match = re.match(r"^([^.=]*)\.([\w-]+)=(.*)$", line.strip())
        if match is None:
            continue
        section, key, raw = match.groups()
        value = raw.strip().strip("'\"")
        key = "timeout" if key == "default-timeout" else key
        if key not in _PIP_PASSED or not value:
            continue
        rank = 2 if section == ":env:" else 1 if section == "global" else 0
        if section not in (":env:", "global", "install", "download"):
            continue
        if key not in found or rank >= found[key][0]:
            found[key] = (rank, value)
    return {key: value for key, (_, value) in sorted(found.items())}


def pip_conf(settings: Mapping[str, str]) -> str:
    """The ``/etc/pip.conf`` mounted into a build: the host's index, the host's CA bundle."""
    lines = ["[global]", f"cert = {CA_BUNDLE}"]
    lines += [f"{key} = {value}" for key, value in sorted(settings.items())]
    return "\n".join(lines) + "\n"


# --- command lines ----------------------------------------------------------------------


def debootstrap_argv(target: Path, mirror: str, debs: Path) -> list[str]:
    """A minimal bookworm with Python: ``--variant=minbase``, only what the Dockerfile runs."""
    return [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        f"--cache-dir={debs}",
        SUITE,
        str(target),
        mirror,
    ]


def buildah_global(storage: Path) -> list[str]:
    """buildah's storage flags: its own store under the cache, never /var/lib/containers."""
    return [
        "buildah",
        "--root", str(storage / "root"),
        "--runroot", str(storage / "run"),
        "--storage-driver", "overlay",
    ]


def buildah_bud_argv(
    storage: Path, context: Path, tag: str, base: str, mounts: Mapping[str, str]
) -> list[str]:
    """``buildah bud`` of the project's Dockerfile on a local base, with host files mounted.

    ``--isolation chroot`` needs no user namespaces or runc; ``--layers`` keeps
    the dependency layer so a code change reinstalls only the package;
    ``--pull=never`` because the base is in the store and there is no registry.
    """
    argv = [
        *buildah_global(storage),
        "bud",
        "--isolation", "chroot",
        "--layers",
        "--pull=never",
        "--build-arg", f"PYTHON_IMAGE={base}",
    ]
    for host, inside in sorted(mounts.items()):
        argv += ["--volume", f"{host}:{inside}:ro"]
    argv += ["--tag", tag, "--file", str(context / "Dockerfile"), str(context)]
    return argv


def manylinux_platforms(machine: str, glibc: tuple[int, int] = GLIBC) -> list[str]:
    """Every manylinux tag a glibc ``glibc`` on ``machine`` runs, newest first."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
    legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
    tags += [f"{name}_{machine}" for (lmaj, lmin), name in legacy.items()
             if (lmaj, lmin) <= glibc]
    return tags


def pip_target_argv(
    python: str, target: Path, packages: Sequence[str], machine: str
) -> list[str]:
    """pip run on the host to fill ``target`` for the base image's Python, wheels only.

    ``--python-version`` and ``--platform`` describe the image, not the host,
    which is why only binary wheels are allowed (nothing may be compiled here).
    """
    argv = [
        python, "-m", "pip", "install",
        "--target", str(target),
        "--only-binary=:all:",
        "--python-version", PYTHON_VERSION,
        "--implementation", "cp",
        "--no-compile",
        "--no-warn-script-location",
        "--disable-pip-version-check",
        "--quiet",
    ]
    for platform in manylinux_platforms(machine):
        argv += ["--platform", platform]
    return [*argv, "--", *packages]


def ctr_argv(ctr: str, address: Path, namespace: str, *args: str) -> list[str]:
    return [ctr, "--address", str(address), "--namespace", namespace, *args]


# --- small facts about files ------------------------------------------------------------

_PT_INTERP = 3


def is_static_elf(data: bytes) -> bool:
    """Whether an ELF executable has no program interpreter (needs no libc on disk)."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return False
    bits64 = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if bits64:
        phoff, = struct.unpack_from(order + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(order + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + 4 > len(data):
            return False
        p_type, = struct.unpack_from(order + "I", data, offset)
        if p_type == _PT_INTERP:
            return False
    return True


def rewrite_shebang(text: str, python: str) -> str | None:
    """A console script written by the host's pip, pointed at the image's Python.

    Returns None when ``text`` is not a Python script (left as it is).
    """
    first, newline, rest = text.partition("\n")
    if not first.startswith("#!") or "python" not in first:
        return None
    return f"#!{python}{newline}{rest}"


def parse_image_list(listing: str, label: str) -> dict[str, str]:
    """``ctr images list`` output as reference -> value of ``label`` ("" when unset).

    The columns are REF TYPE DIGEST SIZE PLATFORMS LABELS; the last holds
    ``k=v,k=v`` or ``-``.
    """
    found: dict[str, str] = {}
    for line in listing.splitlines()[1:]:
        words = line.split()
        if not words:
            continue
        labels = dict(
            item.partition("=")[::2] for item in words[-1].split(",") if "=" in item
        )
        found[words[0]] = labels.get(label, "")
    return found
