"""The ``graceful`` command: a dispatcher over the modules that own each subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``
and is imported only when used, so ``graceful audit`` never pays for kopf and
``graceful cluster`` never pays for FastAPI. Exit codes: 0 success, 1 a
finding or a failed check, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from graceful import __version__

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "cluster": ("testenv.cli", "start, stop or inspect a local Kubernetes control plane"),
    "webhook": ("graceful.webhook.cli", "serve the mutating admission webhook over TLS"),
    "operator": ("graceful.operator.cli", "run the audit controller"),
    "demo": ("testenv.demo", "run the whole product on a local control plane"),
    "audit": ("graceful.offline.audit_cli", "check manifests against their policies, offline"),
    "explain": ("graceful.offline.explain_cli", "draw the shutdown timeline of each container"),
}


#: Subcommands that live in the repository's development package, not in the wheel.
DEVELOPMENT_MODULES = frozenset({"testenv"})


def _unavailable(name: str, module: str, exc: ImportError) -> str:
    package = module.split(".", maxsplit=1)[0]
    if package in DEVELOPMENT_MODULES and (exc.name or "").split(".")[0] == package:
        return (f"`graceful {name}` is development tooling that runs from a clone of the "
                "repository (its testenv/ package is not part of the installed product): "
                "clone it and run ./scripts/bootstrap, then .venv/bin/graceful " + name)
    return f"{name} is unavailable: {exc}"


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graceful",
        description="Declared, enforced and audited shutdown budgets for Kubernetes workloads.",
    )
    parser.add_argument("--version", action="version", version=f"graceful {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = argv[0] if argv else None
    for name, (module, help_text) in COMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen subcommand's module is imported (and all of them for --help).
        if wanted in (name, None, "-h", "--help"):
            try:
                importlib.import_module(module).add_arguments(child)
            except ImportError as exc:  # a part of the product not installed or not built yet
                child.set_defaults(_unavailable=_unavailable(name, module, exc))
                child.add_argument("_ignored", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        child.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is a command to pass through (`graceful cluster
    # exec -- kubectl get pods -A`); argparse would read its flags as ours.
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    args.passthrough = passthrough
    unavailable = getattr(args, "_unavailable", None)
    if unavailable:
        print(f"graceful: {unavailable}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    try:
        code: int = module.run(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
