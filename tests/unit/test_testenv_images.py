"""The image recipes, checked without building: cache keys, names, command lines."""

from __future__ import annotations

import fnmatch
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest

from testenv.images import builders, recipe, tools
from testenv.images.oci import Config

ROOT = Path(__file__).resolve().parents[2]


def _repo(tmp_path: Path) -> Path:
    """A copy of the real build context plus files that are not part of it."""
    repo = tmp_path / "repo"
    for rel in recipe.context_files(ROOT):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    for rel in ("tests/test_x.py", "docs/x.md", "testenv/x.py", ".venv/lib/x.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x = 1\n")
    return repo


def test_product_key_follows_the_build_context_and_nothing_else(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    key = recipe.product_key(repo, "base1")
    assert recipe.product_key(repo, "base1") == key

    for rel in ("tests/test_x.py", "docs/x.md", "testenv/x.py", ".venv/lib/x.py"):
        (repo / rel).write_text("x = 2\n")
    (repo / "graceful" / "__pycache__").mkdir(exist_ok=True)
    (repo / "graceful" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0")
    (repo / "graceful" / "stale.pyc").write_bytes(b"\0")
    assert recipe.product_key(repo, "base1") == key, "files outside the context changed the key"

    assert recipe.product_key(repo, "base2") != key, "a new base must rebuild the product"
    for rel in ("graceful/cli.py", "Dockerfile", "requirements.lock", "requirements-build.lock",
                "pyproject.toml", "README.md"):
        original = (repo / rel).read_bytes()
        (repo / rel).write_bytes(original + b"\n")
        assert recipe.product_key(repo, "base1") != key, f"editing {rel} did not change the key"
        (repo / rel).write_bytes(original)
    assert recipe.product_key(repo, "base1") == key

    (repo / "graceful" / "new_module.py").write_text("")
    assert recipe.product_key(repo, "base1") != key
    (repo / "graceful" / "new_module.py").unlink()
    (repo / "graceful" / "cli.py").chmod(0o755)
    assert recipe.product_key(repo, "base1") != key, "the x bit is part of the content"


def test_product_key_does_not_depend_on_where_the_clone_is(tmp_path: Path) -> None:
    one = _repo(tmp_path / "one")
    two = _repo(tmp_path / "two")
    assert recipe.product_key(one, "b") == recipe.product_key(two, "b")


def _dockerignore_allows(rel: str, rules: list[str]) -> bool:
    allowed = True
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.removeprefix("!").rstrip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern.removeprefix("**/"))
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        suffixes = ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1,
                                                                                 len(parts) + 1)]
        matched = any(fnmatch.fnmatchcase(p, c) for c in candidates for p in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatchcase(s, candidates[1])
                                              for s in suffixes)
        )
        if matched:
            allowed = negate
    return allowed


def test_context_is_what_dockerignore_lets_through() -> None:
    # `docker build .` and the buildah build from a copied context must see the same files.
    rules = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    candidates = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", "node_modules")]
        candidates += [(Path(top) / f).relative_to(ROOT).as_posix() for f in files]
    through = sorted(rel for rel in candidates if _dockerignore_allows(rel, rules))
    assert through == [p.as_posix() for p in recipe.context_files(ROOT)]


def test_product_is_named_as_the_manifests_use_it() -> None:
    name = recipe.product_name(ROOT)
    assert name == "graceful-operator:0.1.0"
    uses = {line.split("image:", 1)[1].strip()
            for path in (ROOT / "manifests").glob("*.yaml")
            for line in path.read_text().splitlines() if "image:" in line}
    assert uses == {name}


@pytest.mark.parametrize(("name", "stored"), [
    ("graceful-operator:0.1.0", "docker.io/library/graceful-operator:0.1.0"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("team/app:2", "docker.io/team/app:2"),
    ("graceful.local/busybox:1", "graceful.local/busybox:1"),
    ("localhost/x", "localhost/x:latest"),
    ("registry:5000/x/y:3", "registry:5000/x/y:3"),
    ("graceful.local/a@sha256:00", "graceful.local/a@sha256:00"),
])
def test_names_normalise_as_the_cri_resolves_them(name: str, stored: str) -> None:
    assert recipe.normalise(name) == stored


def test_slugs_are_directory_names() -> None:
    assert recipe.slug("graceful.local/busybox:1") == "busybox-1"
    assert recipe.slug("graceful-operator:0.1.0") == "graceful-operator-0.1.0"
    assert "/" not in recipe.slug("a/b/c:d")


def test_keys_are_stable_and_tell_inputs_apart() -> None:
    assert recipe.digest("a", [1, 2]) == recipe.digest("a", [1, 2])
    assert recipe.digest("a", [1, 2]) != recipe.digest("a", [2, 1])
    assert recipe.digest({"x": 1, "y": 2}) == recipe.digest({"y": 2, "x": 1})


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_the_machines_debian_mirror_is_used() -> None:
    assert recipe.debian_mirror([DEB822]) == "http://mirror.example/debian"
    security_only = DEB822.split("\n\n")[1]
    assert recipe.debian_mirror([security_only]) is None
    one_line = "deb http://other.example/debian-security bookworm-security main\n" \
               "deb [arch=amd64] http://other.example/debian bookworm main contrib\n"
    assert recipe.debian_mirror(["deb https://x.example/apt cloud-sdk main\n", one_line]) == (
        "http://other.example/debian"
    )
    assert recipe.debian_mirror(["Types: deb\nURIs: http://n.example\nSuites: nodistro\n"
                                 "Components: main\n"]) is None


def test_pip_settings_pass_the_index_not_host_paths() -> None:
    listing = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.index-url='https://pypi.mirror.example/simple'
:env:.index-url='https://env.example/simple'
global.extra-index-url='https://extra.example/simple'
user.trusted-host='ignored.example'
"""
    settings = recipe.pip_settings(listing)
    assert settings == {
        "extra-index-url": "https://extra.example/simple",
        "index-url": "https://env.example/simple",
        "timeout": "180",
    }
    conf = recipe.pip_conf(settings)
    assert conf.startswith("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    assert "index-url = https://env.example/simple\n" in conf
    assert "find-links" not in conf and "/opt/wheels" not in conf


def test_debootstrap_argv() -> None:
    argv = recipe.debootstrap_argv(Path("/c/rootfs"), "http://m.example/debian", Path("/c/debs"))
    assert argv == [
        "debootstrap", "--variant=minbase",
        "--include=python3,ca-certificates,python3-venv,python-is-python3",
        "--cache-dir=/c/debs", "bookworm", "/c/rootfs", "http://m.example/debian",
    ]


def test_buildah_argv_keeps_storage_in_the_cache_and_host_files_read_only() -> None:
    argv = recipe.buildah_bud_argv(
        Path("/c/buildah"), Path("/w/context"), "docker.io/library/graceful-operator:0.1.0",
        recipe.BASE_NAME,
        {"/etc/ssl/certs/ca-certificates.crt": recipe.CA_BUNDLE, "/w/pip.conf": "/etc/pip.conf"},
    )
    joined = " ".join(argv)
    assert argv[:7] == ["buildah", "--root", "/c/buildah/root", "--runroot", "/c/buildah/run",
                        "--storage-driver", "overlay"]
    assert argv[7] == "bud"
    assert "--isolation chroot" in joined and "--pull=never" in joined and "--layers" in joined
    assert f"--build-arg PYTHON_IMAGE={recipe.BASE_NAME}" in joined
    assert "--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro" \
        in joined
    assert "--volume /w/pip.conf:/etc/pip.conf:ro" in joined
    assert argv[-5:] == ["--tag", "docker.io/library/graceful-operator:0.1.0",
                         "--file", "/w/context/Dockerfile", "/w/context"]
    assert "/var/lib/containers" not in joined


def test_pip_argv_installs_wheels_for_the_images_python() -> None:
    argv = recipe.pip_target_argv("/v/python", Path("/w/t"), ["faststream[rabbit]", "uvicorn"],
                                  "x86_64")
    assert argv[:4] == ["/v/python", "-m", "pip", "install"]
    assert argv[argv.index("--target") + 1] == "/w/t"
    assert argv[argv.index("--python-version") + 1] == "3.11"
    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--") + 1:] == ["faststream[rabbit]", "uvicorn"]
    platforms = [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"]
    assert "manylinux_2_36_x86_64" in platforms and "manylinux2014_x86_64" in platforms
    assert "manylinux_2_37_x86_64" not in platforms, "bookworm's glibc is 2.36"


def test_manylinux_tags_follow_glibc() -> None:
    tags = recipe.manylinux_platforms("aarch64", (2, 17))
    assert tags[0] == "manylinux_2_17_aarch64"
    assert "manylinux2014_aarch64" in tags and "manylinux1_aarch64" in tags
    assert not any("2_18" in tag for tag in tags)


def _elf(interp: bool) -> bytes:
    """A minimal 64-bit little-endian ELF header with one program header."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, 1)
    program = bytearray(56)
    struct.pack_into("<I", program, 0, 3 if interp else 1)
    return bytes(header + program)


def test_static_elf_detection() -> None:
    assert recipe.is_static_elf(_elf(interp=False))
    assert not recipe.is_static_elf(_elf(interp=True))
    assert not recipe.is_static_elf(b"#!/bin/sh\n")
    assert not recipe.is_static_elf(Path(sys.executable).resolve().read_bytes()[:65536])


def test_console_scripts_get_the_images_python() -> None:
    script = "#!/work/.venv/bin/python3\n# -*- coding: utf-8 -*-\nimport sys\n"
    assert recipe.rewrite_shebang(script, "/usr/bin/python3") == (
        "#!/usr/bin/python3\n# -*- coding: utf-8 -*-\nimport sys\n"
    )
    assert recipe.rewrite_shebang("#!/bin/sh\necho\n", "/usr/bin/python3") is None
    assert recipe.rewrite_shebang("\x7fELF", "/usr/bin/python3") is None


def test_ctr_listing_is_read_with_its_labels() -> None:
    listing = (
        "REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
        "docker.io/library/graceful-operator:0.1.0 application/vnd.docker.distribution.manifest"
        ".v2+json sha256:a9 343.1 MiB linux/amd64 a=b,graceful.local/archive-key=k1 \n"
        "graceful.local/pause:1 application/vnd.docker.distribution.manifest.v2+json sha256:86 "
        "668.5 KiB linux/amd64 -\n"
    )
    assert recipe.parse_image_list(listing, "graceful.local/archive-key") == {
        "docker.io/library/graceful-operator:0.1.0": "k1",
        "graceful.local/pause:1": "",
    }


def test_leftover_mounts_are_found_deepest_first() -> None:
    mountinfo = (
        "22 1 0:21 / /proc rw - proc proc rw\n"
        "90 30 0:5 / /c/work/rootfs/proc rw - proc proc rw\n"
        "91 90 0:6 / /c/work/rootfs/proc/sys/fs/binfmt_misc rw - binfmt_misc b rw\n"
        "92 30 0:7 / /c/work/rootfs-other rw - tmpfs t rw\n"
        "93 30 0:8 / /c/work/with\\040space rw - tmpfs t rw\n"
    )
    assert tools.mounts_under(mountinfo, Path("/c/work/rootfs")) == [
        "/c/work/rootfs/proc/sys/fs/binfmt_misc", "/c/work/rootfs/proc",
    ]
    assert tools.mounts_under(mountinfo, Path("/c/work/with space")) == ["/c/work/with space"]


def test_config_flags_replace_entrypoint_and_cmd() -> None:
    flags = Config(env={"PATH": "/bin"}, entrypoint=("/pause",), cmd=("a", "b"),
                   user="65535:65535").flags()
    assert flags == ["--config.env=PATH=/bin", "--clear=config.entrypoint",
                     "--config.entrypoint=/pause", "--clear=config.cmd", "--config.cmd=a",
                     "--config.cmd=b", "--config.user=65535:65535"]


def test_a_missing_tool_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(tools.ImageError, match="apt-get install -y --no-install-recommends "
                                                "containerd"):
        tools.require("ctr")
    with pytest.raises(tools.ImageError, match="busybox-static"):
        tools.require("busybox")


def test_a_failing_tool_reports_its_command_and_output() -> None:
    with pytest.raises(tools.ImageError) as caught:
        tools.run(["sh", "-c", "echo first; echo boom >&2; exit 3"])
    assert caught.value.command == ["sh", "-c", "echo first; echo boom >&2; exit 3"]
    assert "boom" in caught.value.tail and "first" in caught.value.tail
    assert "exit 3" in str(caught.value)


def test_an_image_is_built_once_per_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    builds: list[Path] = []

    def build(work: Path, archive: Path) -> None:
        builds.append(work)
        archive.write_bytes(b"tar")

    first = builders._cached("graceful.local/x:1", "k1", lambda _: None, build)
    again = builders._cached("graceful.local/x:1", "k1", lambda _: None, build)
    assert first == again and len(builds) == 1
    assert first.archive == tmp_path / "graceful" / "images" / "x-1-k1" / "image.tar"
    assert first.key == "x-1-k1" and first.archive.read_bytes() == b"tar"
    assert not builds[0].exists(), "the scratch directory is removed"
    other = builders._cached("graceful.local/x:1", "k2", lambda _: None, build)
    assert other.archive != first.archive and len(builds) == 2


def test_a_failed_build_leaves_no_archive(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def fail(work: Path, archive: Path) -> None:
        archive.write_bytes(b"half")
        raise tools.ImageError("tool failed")

    with pytest.raises(tools.ImageError):
        builders._cached("graceful.local/x:1", "k1", lambda _: None, fail)
    images = tmp_path / "graceful" / "images"
    assert not (images / "x-1-k1").exists()
    assert list((images / "work").iterdir()) == []


def test_old_archives_of_an_image_are_pruned(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    keep = builders._KEEP
    made = [builders._cached("graceful.local/x:1", f"k{i}", lambda _: None,
                             lambda _w, a: a.write_bytes(b"t"))
            for i in range(keep + 2)]
    other = builders._cached("graceful.local/y:1", "k0", lambda _: None,
                             lambda _w, a: a.write_bytes(b"t"))
    alive = [image for image in made if image.archive.exists()]
    assert len(alive) == keep and made[-1] in alive
    assert other.archive.exists()


def test_the_apt_list_covers_every_tool() -> None:
    assert set(tools.PACKAGES.values()) <= set(tools.APT_PACKAGES)
    assert "libc6-dev" in tools.APT_PACKAGES, "gcc -static needs the static libc"
