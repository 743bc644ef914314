"""``graceful operator``: run the audit controller.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for bad input (e.g. an
unreadable kubeconfig).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from graceful.core import DEFAULT_OPERATOR_NAMESPACE
from graceful.operator.settings import OperatorSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                        help="audit only this namespace (repeatable; default: all namespaces)")
    parser.add_argument("--kubeconfig", metavar="FILE", default=None,
                        help="kubeconfig to use (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--lease-namespace", metavar="NS", default=None,
                        help="namespace of the leader-election Lease (default: $POD_NAMESPACE,"
                             f" else {DEFAULT_OPERATOR_NAMESPACE})")
    parser.add_argument("--resync-seconds", type=float, default=60.0, metavar="N",
                        help="audit everything again every N seconds (default: 60)")
    parser.add_argument("--identity", metavar="ID", default=None,
                        help="this replica's name in the Lease and on Events"
                             " (default: $POD_NAME, else HOST-PID)")
    parser.add_argument("--liveness-endpoint", metavar="URL", default=None,
                        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level (default: INFO)")


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    if args.resync_seconds <= 0:
        raise ValueError("--resync-seconds must be positive")
    return OperatorSettings(
        namespaces=tuple(dict.fromkeys(args.namespace)),
        identity=args.identity or "",
        lease_namespace=(args.lease_namespace or os.environ.get("POD_NAMESPACE")
                         or DEFAULT_OPERATOR_NAMESPACE),
        resync_seconds=args.resync_seconds,
        liveness_endpoint=args.liveness_endpoint,
    ).with_identity()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "DEBUG":
        # kopf logs every handler call per object at INFO: thousands of lines per rollout.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"graceful operator: {exc}", file=sys.stderr)
        return 2
    # kopf and aiohttp are imported only to run, not for `graceful --help`.
    from graceful.operator.main import start  # noqa: PLC0415

    return start(settings, args.kubeconfig)
