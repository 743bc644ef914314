"""The node's images, really built (or taken from the cache), run and loaded.

The archives are the machine's cached ones (``python -m testenv.images``
builds the same), so only the first run on a machine pays for debootstrap
and buildah. Loading goes into a private containerd started here, with its
root, state and socket in a temporary directory, and stopped after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from testenv import images
from testenv.images import Image, loader, recipe, tools

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
#: A pinned requirement, so the pip image's key (and so the cache) is stable.
UVICORN = "uvicorn==0.32.1"


def _pip_image() -> Image:
    """The pip image, built where the package index is reachable.

    When the session has moved into the node's network namespace (see
    tests/conftest.py), pip runs in the host's namespace, which the session
    kept open for exactly this; the build itself is the same function.
    """
    host = os.environ.get("GRACEFUL_HOST_NETNS")
    if host:
        subprocess.run(
            ["nsenter", f"--net={host}", sys.executable, "-c",
             "from testenv import images; "
             f"images.pip_image('graceful.local/uvicorn:test', [{UVICORN!r}])"],
            check=True, cwd=ROOT)
    return images.pip_image("graceful.local/uvicorn:test", [UVICORN])


@pytest.fixture(scope="module")
def node_images() -> dict[str, Image]:
    return {
        "pause": images.pause_image(),
        "busybox": images.busybox_image(),
        "product": images.product_image(ROOT),
        "uvicorn": _pip_image(),
    }


@pytest.fixture(scope="module")
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="graceful-images-"))
    yield path
    shutil.rmtree(path)


def _rootfs(image: Image, scratch_dir: Path) -> Path:
    rootfs = scratch_dir / image.key
    if not rootfs.exists():
        images.unpack(image.archive, rootfs)
    return rootfs


def _config(image: Image) -> dict[str, Any]:
    with tarfile.open(image.archive) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        config: dict[str, Any] = json.load(
            archive.extractfile(manifest[0]["Config"])  # type: ignore[arg-type]
        )
        (tag,) = manifest[0]["RepoTags"]
        assert recipe.normalise(tag) == recipe.normalise(image.name)
    return config


def _chroot(rootfs: Path, argv: Sequence[str], env: dict[str, str],
            user: str = "") -> subprocess.CompletedProcess[str]:
    userspec = [f"--userspec={user}"] if user else []
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run([chroot, *userspec, str(rootfs), *argv], env=env,
                          capture_output=True, text=True, check=False)


def _env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config["config"].get("Env", []))


def test_product_image_runs_as_the_dockerfile_says(node_images: dict[str, Image],
                                                    scratch_dir: Path) -> None:
    image = node_images["product"]
    assert image.name == "graceful-operator:0.1.0"
    config = _config(image)
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/opt/graceful/bin/graceful"]
    rootfs = _rootfs(image, scratch_dir)
    ran = _chroot(rootfs, ["/opt/graceful/bin/graceful", "--help"], _env(config),
                  user="65532:65532")
    assert ran.returncode == 0, ran.stderr
    assert "usage: graceful" in ran.stdout and "webhook" in ran.stdout
    # The machine's CA bundle and pip settings were mounted for the build, not copied.
    assert not (rootfs / "etc" / "pip.conf").exists()
    assert not (rootfs / "opt" / "graceful" / "bin" / "pip").exists()


def test_busybox_image_has_a_shell_and_the_usual_tools(node_images: dict[str, Image],
                                                       scratch_dir: Path) -> None:
    image = node_images["busybox"]
    rootfs = _rootfs(image, scratch_dir)
    env = _env(_config(image))
    ran = _chroot(rootfs, ["sh", "-c", "date -u +%Y >/dev/null && sleep 0 && echo $((6*7))"],
                  env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "42"
    script = "for tool in sleep date cat nc wget; do command -v $tool; done"
    tools_on_path = _chroot(rootfs, ["sh", "-c", script], env)
    assert tools_on_path.returncode == 0, tools_on_path.stdout
    assert len(tools_on_path.stdout.split()) == 5


def test_pip_image_runs_its_console_scripts(node_images: dict[str, Image],
                                            scratch_dir: Path) -> None:
    image = node_images["uvicorn"]
    config = _config(image)
    env = _env(config)
    assert env["PYTHONPATH"] == recipe.PIP_TARGET
    rootfs = _rootfs(image, scratch_dir)
    ran = _chroot(rootfs, ["uvicorn", "--version"], env, user="65534:65534")
    assert ran.returncode == 0, ran.stderr
    assert "0.32.1" in ran.stdout and "CPython 3.11" in ran.stdout


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(word) for word in path.read_text().split()] if path.exists() else []


def _wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_pause_reaps_orphans_and_exits_zero_on_sigterm(node_images: dict[str, Image],
                                                       scratch_dir: Path) -> None:
    image = node_images["pause"]
    assert _config(image)["config"]["Entrypoint"] == ["/pause"]
    pause = _rootfs(image, scratch_dir) / "pause"
    # pause as PID 1 of its own PID namespace, as in a Pod sandbox.
    holder = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(pause)])
    try:
        _wait_for(lambda: _children(holder.pid), "pause to start")
        (pid,) = _children(holder.pid)
        # An orphan: its parent shell exits first, so the kernel hands it to PID 1.
        subprocess.run(["nsenter", "--target", str(pid), "--pid", "--",
                        str(_rootfs(node_images["busybox"], scratch_dir) / "bin" / "busybox"),
                        "sh", "-c", "sleep 1 & exit 0"], check=True)
        _wait_for(lambda: _children(pid), "the orphan to be re-parented to pause")
        _wait_for(lambda: not _children(pid), "pause to reap the orphan (it stayed a zombie)")
        os.kill(pid, signal.SIGTERM)
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@pytest.fixture
def containerd() -> Iterator[Path]:
    """A private containerd: root, state and socket in a temporary directory."""
    home = Path(tempfile.mkdtemp(prefix="gimg-ctd-"))
    socket = home / "c.sock"
    (home / "config.toml").write_text(f"""\
version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.restart", "io.containerd.monitor.v1.cgroups",
  "io.containerd.runtime.v1.linux", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
""")
    log = (home / "containerd.log").open("wb")
    process = subprocess.Popen(
        [tools.require("containerd"), "--config", str(home / "config.toml")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        _wait_for(lambda: process.poll() is not None or subprocess.run(
            ["ctr", "--address", str(socket), "version"], capture_output=True, check=False,
        ).returncode == 0, "containerd to serve")
        assert process.poll() is None, (home / "containerd.log").read_text()
        yield socket
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        left = tools.mounts_under(Path("/proc/self/mountinfo").read_text(), home)
        tools.remove_tree(home)
        assert left == [], f"containerd left mounts behind: {left}"


def test_images_load_under_the_names_pods_use(node_images: dict[str, Image],
                                              containerd: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    wanted = list(node_images.values())
    images.load(wanted, address=containerd)
    present = images.loaded(address=containerd)
    # What a Pod's `image: graceful-operator:0.1.0` resolves to in the CRI.
    assert present["docker.io/library/graceful-operator:0.1.0"] == node_images["product"].key
    assert present["graceful.local/pause:1"] == node_images["pause"].key
    assert present["graceful.local/busybox:1"] == node_images["busybox"].key
    assert set(present) == {recipe.normalise(image.name) for image in wanted}
    unpacked = subprocess.run(
        ["ctr", "--address", str(containerd), "--namespace", "k8s.io", "images", "check"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert unpacked.count("complete") == len(wanted), unpacked

    commands: list[list[str]] = []
    real_run = loader.run

    def recording(argv: Sequence[str], **kwargs: Any) -> str:
        commands.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(loader, "run", recording)
    images.load(wanted, address=containerd)
    assert not [argv for argv in commands if "import" in argv], "a second load re-imported"
    assert images.loaded(address=containerd) == present


def test_loading_into_no_containerd_says_so(tmp_path: Path) -> None:
    with pytest.raises(images.ImageError, match="is it running"):
        images.load([], address=tmp_path / "nothing.sock")
