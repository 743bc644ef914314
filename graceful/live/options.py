"""The kubectl-style connection flags of the live commands, and connecting with them."""

from __future__ import annotations

import argparse

from graceful.live.client import Client, default_namespace

#: What a user needs, said in --help and the README.
RBAC_NOTE = (
    "Read-only: get/list only. The built-in `view` ClusterRole covers the workloads, Pods and "
    "Namespaces; graceful.io policies need get/list on gracefulpolicies (namespaced) and "
    "clustergracefulpolicies (cluster-wide)."
)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("live objects (kubeconfig)", RBAC_NOTE)
    group.add_argument("--kubeconfig", default=None,
                       help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    group.add_argument("--context", default=None,
                       help="kubeconfig context (default: its current-context)")


def connect(args: argparse.Namespace) -> tuple[Client, str]:
    """A client and the namespace to read: ``-n``, else the context's, else default."""
    namespace = args.namespace or default_namespace(args.kubeconfig, args.context)
    return Client(args.kubeconfig, args.context), namespace
