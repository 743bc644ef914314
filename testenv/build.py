"""Build etcd, kube-apiserver and kube-controller-manager from Go modules.

Why build instead of download: this project's machines reach the Go module
proxy but no release download site, and a binary built from a pinned module
version is reproducible and auditable. The first build on a machine takes
minutes; every later start reuses the cached binary, keyed by version and by a
hash of the wrapper source and build flags, under
``${XDG_CACHE_HOME:-~/.cache}/graceful/bin``. Nothing is written to the
repository.

Each component has a tiny wrapper module in ``gomod/<name>/main.go`` that calls
the upstream entry point (for helm, whose command is itself a ``main``
package, a ``tools`` file that only pins it: the builder then builds the
upstream package as it is). Its ``go.mod`` is generated here from
``versions.py``: for ``k8s.io/kubernetes`` a ``replace`` line is added for every
staging module its own ``go.mod`` redirects to ``./staging/src/...``, pointing
at the published ``v0.x.y`` release instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from testenv import versions
from testenv.filelock import exclusive

Progress = Callable[[str], None]

_GOMOD_DIR = Path(__file__).parent / "gomod"
_VERSION_PKGS = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
#: A fixed build date keeps the binaries reproducible (it is only reported).
_BUILD_DATE = "2026-01-01T00:00:00Z"


class BuildError(RuntimeError):
    """A Go build failed; the message carries the command and its output tail."""


@dataclass(frozen=True)
class Component:
    """One binary: the wrapper module that builds it and its upstream module."""

    name: str
    module: str
    version: str
    #: The Go package ``go build`` builds: the wrapper (``.``), or an upstream
    #: main package that cannot be imported by a wrapper.
    package: str = "."

    @property
    def kubernetes(self) -> bool:
        return self.module == "k8s.io/kubernetes"


ETCD = Component("etcd", "go.etcd.io/etcd/server/v3", versions.ETCD)
KUBE_APISERVER = Component("kube-apiserver", "k8s.io/kubernetes", versions.KUBERNETES)
KUBE_CONTROLLER_MANAGER = Component(
    "kube-controller-manager", "k8s.io/kubernetes", versions.KUBERNETES
)
KUBECTL = Component("kubectl", "k8s.io/kubernetes", versions.KUBERNETES)
KUBE_SCHEDULER = Component("kube-scheduler", "k8s.io/kubernetes", versions.KUBERNETES)
KUBELET = Component("kubelet", "k8s.io/kubernetes", versions.KUBERNETES)
KUBE_PROXY = Component("kube-proxy", "k8s.io/kubernetes", versions.KUBERNETES)
#: The Helm chart's CI (lint, template, install/upgrade/uninstall on the local cluster).
HELM = Component("helm", "helm.sh/helm/v3", versions.HELM, package="helm.sh/helm/v3/cmd/helm")
CONTROL_PLANE = (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER)
#: What ``graceful cluster up --node`` adds: Pods are scheduled, run and reached by ClusterIP.
NODE = (KUBE_SCHEDULER, KUBELET, KUBE_PROXY)


@dataclass(frozen=True)
class Binaries:
    """Paths of the binaries a control plane runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    kube_scheduler: Path | None = None
    kubelet: Path | None = None
    kube_proxy: Path | None = None


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/graceful``: where built binaries live."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "graceful"


def ldflags(component: Component) -> str:
    """Linker flags; Kubernetes binaries and helm get their version stamped with ``-X``.

    helm is also told the Kubernetes release it renders for when it has no
    cluster (``helm template``'s ``.Capabilities.KubeVersion``, ``helm lint``'s
    deprecation checks): the local cluster's, as upstream's Makefile does
    with the client-go it is built with.
    """
    flags = ["-s", "-w"]
    if component.name == "helm":
        major, minor = versions.KUBERNETES.removeprefix("v").split(".")[:2]
        flags += [
            f"-X helm.sh/helm/v3/internal/version.version={component.version}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
        ]
        for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            flags += [f"-X {pkg}.k8sVersionMajor={major}", f"-X {pkg}.k8sVersionMinor={minor}"]
    if component.kubernetes:
        major, minor = component.version.removeprefix("v").split(".")[:2]
        for pkg in _VERSION_PKGS:
            flags += [
                f"-X {pkg}.gitVersion={component.version}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
                f"-X {pkg}.buildDate={_BUILD_DATE}",
            ]
    return " ".join(flags)


def cache_key(component: Component) -> str:
    """Version plus a hash of everything else that shapes the binary."""
    digest = hashlib.sha256()
    digest.update((_GOMOD_DIR / component.name / "main.go").read_bytes())
    digest.update(ldflags(component).encode())
    digest.update(component.module.encode())
    if component.package != ".":  # only then: the other binaries keep the keys they are cached by
        digest.update(component.package.encode())
    return f"{component.name}-{component.version}-{digest.hexdigest()[:10]}"


def binary_path(component: Component) -> Path:
    return cache_root() / "bin" / cache_key(component) / component.name


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BuildError(f"`{' '.join(cmd)}` failed in {cwd} (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _go_env() -> dict[str, str]:
    if shutil.which("go") is None:
        raise BuildError(
            "the `go` command is not on PATH: install Go >= 1.26 to build the local control plane"
        )
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    return env


def staging_replacements(env: dict[str, str], workdir: Path) -> list[str]:
    """``k8s.io/x=k8s.io/x@v0.y.z`` for each staging module k8s.io/kubernetes redirects."""
    out = _run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
        workdir,
        env,
    )
    gomod = Path(json.loads(out)["GoMod"]).read_text()
    staged = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", gomod, flags=re.M)
    if not staged:
        raise BuildError("found no staging replace lines in k8s.io/kubernetes go.mod")
    return [
        f"{mod}={mod}@{versions.STAGING}"
        for mod in sorted(set(staged))
        if mod not in versions.STAGING_UNPUBLISHED
    ]


def build(component: Component, progress: Progress = print) -> Path:
    """Return the cached binary of ``component``, building it first if needed."""
    target = binary_path(component)
    if target.exists():
        return target
    # Serialise builds across processes: two test sessions must not build twice.
    with exclusive(cache_root() / "bin" / ".lock"):
        if target.exists():
            return target
        env = _go_env()
        workdir = cache_root() / "src" / cache_key(component)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        shutil.copy(_GOMOD_DIR / component.name / "main.go", workdir / "main.go")
        started = time.monotonic()
        progress(
            f"building {component.name} {component.version} from Go modules "
            "(first time on this machine: several minutes)"
        )
        _run(["go", "mod", "init", f"graceful.local/{component.name}"], workdir, env)
        edits = [f"-require={component.module}@{component.version}"]
        if component.kubernetes:
            edits += [f"-replace={r}" for r in staging_replacements(env, workdir)]
        _run(["go", "mod", "edit", *edits], workdir, env)
        _run(["go", "mod", "tidy"], workdir, env)
        partial = target.with_name(target.name + ".partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "go", "build", "-trimpath", "-ldflags", ldflags(component),
                "-o", str(partial), component.package,
            ],
            workdir,
            env,
        )
        partial.rename(target)
        shutil.rmtree(workdir, ignore_errors=True)
        progress(f"built {component.name} in {time.monotonic() - started:.0f}s -> {target}")
        return target


def find_kubectl(progress: Progress = print) -> Path:
    """The machine's kubectl; built from the pinned release only if there is none."""
    found = os.environ.get("GRACEFUL_KUBECTL") or shutil.which("kubectl")
    if found:
        return Path(found)
    return build(KUBECTL, progress)


def find_helm(progress: Progress = print) -> Path:
    """helm built from the pinned module (``GRACEFUL_HELM`` overrides it).

    The machine's own helm is not used: the chart's tests assert on what one
    pinned release renders.
    """
    found = os.environ.get("GRACEFUL_HELM")
    if found:
        return Path(found)
    return build(HELM, progress)


def ensure_binaries(progress: Progress = print, *, node: bool = False) -> Binaries:
    """Build (once per machine) and return every binary the control plane needs.

    ``node=True`` adds kube-scheduler, kubelet and kube-proxy.
    """
    return Binaries(
        etcd=build(ETCD, progress),
        kube_apiserver=build(KUBE_APISERVER, progress),
        kube_controller_manager=build(KUBE_CONTROLLER_MANAGER, progress),
        kubectl=find_kubectl(progress),
        kube_scheduler=build(KUBE_SCHEDULER, progress) if node else None,
        kubelet=build(KUBELET, progress) if node else None,
        kube_proxy=build(KUBE_PROXY, progress) if node else None,
    )


def main() -> int:
    """``python -m testenv``: build everything (helm too), print the paths."""
    started = dt.datetime.now(dt.UTC)
    binaries = ensure_binaries(node="--node" in sys.argv[1:])
    for name, path in vars(binaries).items():
        print(f"{name}: {path}")
    # not the cluster's, but its CI's: the chart is linted, rendered and installed with it
    print(f"helm: {find_helm()}")
    print(f"ready in {(dt.datetime.now(dt.UTC) - started).total_seconds():.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
