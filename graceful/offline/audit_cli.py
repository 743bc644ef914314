"""``graceful audit -f FILE|DIR|-``: the engine's findings on manifests, for CI.

``graceful audit --cluster [-n NS | -A]`` audits the live workloads of the
kubeconfig's cluster instead: they are read (:mod:`graceful.live`) into the
same :class:`~graceful.offline.loader.Inventory` and judged by the same
:func:`~graceful.offline.audit.audit`.

Exit codes: 0 every opted-in workload passes, 1 at least one mismatch, 2 the
input cannot be read (a missing file, broken YAML, an invalid GracefulPolicy,
a cluster that cannot be read).
"""

from __future__ import annotations

import argparse
import json
import sys

from graceful.live.options import add_connection_arguments
from graceful.offline.audit import Result, audit, summary
from graceful.offline.loader import InputError, Inventory, inventory, load

PROG = "graceful audit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check Deployments, StatefulSets, DaemonSets and Pods in manifests against the "
        "GracefulPolicies found in the same files, with the engine the webhook and the "
        "operator use. Exit 0: all opted-in workloads pass; 1: a mismatch; 2: unreadable input."
    )
    parser.add_argument(
        "-f", "--filename", dest="files", action="append", metavar="FILE",
        help="a manifest file, a directory (read recursively) or - for standard input; "
             "repeat for more",
    )
    parser.add_argument(
        "--cluster", action="store_true",
        help="audit the live workloads of the kubeconfig's cluster instead of files",
    )
    parser.add_argument(
        "-n", "--namespace", default=None,
        help="namespace of objects that name none, or with --cluster the namespace to audit"
             " (default: default, or the kubeconfig context's with --cluster)",
    )
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true",
        help="with --cluster: every namespace",
    )
    parser.add_argument(
        "--admitted", action="store_true",
        help="check the objects as an Enforce policy's webhook would store them "
             "(its patch applied first); by default they are checked as written",
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text",
        help="report format (default: %(default)s)",
    )
    add_connection_arguments(parser)


def _text(results: list[Result], admitted: bool) -> str:
    lines = []
    width = max((len(f"{r.kind}/{r.name}") for r in results), default=0)
    for r in results:
        head = f"{r.verdict:<9} {f'{r.kind}/{r.name}':<{width}}  namespace {r.namespace}"
        if r.opted_in:
            head += f"  policy {r.decision.policy_name}"
        lines.append(f"{head}  ({r.source})")
        for finding in r.findings:
            lines.append(f"          - {finding.code}: {finding.message}")
        if r.mismatched and r.fixed_by_webhook and not admitted:
            lines.append("          the webhook fixes these on admission"
                         " (graceful audit --admitted shows what remains)")
    counts = summary(results)
    if not results:
        lines.append("no Deployment, StatefulSet, DaemonSet or Pod in the input")
    else:
        lines.append(
            f"{counts['optedIn']} opted in: {counts['compliant']} compliant, "
            f"{counts['mismatched']} mismatched; {counts['notOptedIn']} not opted in"
            + (" (checked as admitted by the webhook)" if admitted else "")
        )
    return "\n".join(lines)


def _live(args: argparse.Namespace) -> Inventory:
    """The cluster's workloads and policies (``-A``: all namespaces)."""
    from graceful.live import fetch  # noqa: PLC0415 - only for live objects
    from graceful.live.options import connect  # noqa: PLC0415

    client, namespace = connect(args)
    scope = None if args.all_namespaces else namespace
    try:
        return fetch.inventory(client, scope, fetch.workloads(client, scope))
    finally:
        client.close()


def run(args: argparse.Namespace) -> int:
    if args.cluster == bool(args.files):
        print(f"{PROG}: give either -f FILE (manifests) or --cluster (live workloads)",
              file=sys.stderr)
        return 2
    if args.all_namespaces and (not args.cluster or args.namespace):
        print(f"{PROG}: -A goes with --cluster and without -n", file=sys.stderr)
        return 2
    try:
        if args.cluster:
            from graceful.live.client import LiveError  # noqa: PLC0415

            try:
                found = _live(args)
            except LiveError as exc:
                raise InputError(str(exc)) from None
        else:
            found = inventory(load(args.files), args.namespace or "default")
    except InputError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    results = audit(found, admitted=args.admitted)
    if args.output == "json":
        print(json.dumps({"results": [r.to_json() for r in results],
                          "summary": summary(results), "admitted": args.admitted}, indent=2))
    else:
        print(_text(results, args.admitted))
    return 1 if any(r.mismatched for r in results) else 0
