"""``graceful operator``: run the audit controller.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for bad input (e.g. an
unreadable kubeconfig).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import sys

from graceful.core import DEFAULT_OPERATOR_NAMESPACE
from graceful.operator.certificates import LifetimeError, parse_lifetime
from graceful.operator.settings import OperatorSettings

#: ``GRACEFUL_MANAGE_CERTIFICATES``: the cert-manager overlay sets it to ``false``.
MANAGE_CERTIFICATES_ENV = "GRACEFUL_MANAGE_CERTIFICATES"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", action="append", default=[], metavar="NS",
                        help="audit only this namespace (repeatable; default: all namespaces)")
    parser.add_argument("--kubeconfig", metavar="FILE", default=None,
                        help="kubeconfig to use (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--lease-namespace", metavar="NS", default=None,
                        help="namespace of the leader-election Lease, which must exist"
                             " (default: $POD_NAMESPACE, else"
                             f" {DEFAULT_OPERATOR_NAMESPACE}, also when run by hand, so that"
                             " it shares the Lease of an installed operator)")
    parser.add_argument("--resync-seconds", type=float, default=60.0, metavar="N",
                        help="audit everything again every N seconds (default: 60)")
    parser.add_argument("--identity", metavar="ID", default=None,
                        help="this replica's name in the Lease and on Events"
                             " (default: $POD_NAME, else HOST-PID)")
    parser.add_argument("--liveness-endpoint", metavar="URL", default=None,
                        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    certificates = parser.add_argument_group(
        "webhook certificates",
        "the operator keeps a CA and the webhook's serving certificate in a Secret and the"
        " caBundle of the webhook configuration in sync (off with cert-manager)")
    certificates.add_argument("--manage-certificates", action=argparse.BooleanOptionalAction,
                              default=None,
                              help="keep the webhook's certificates"
                                   f" (default: ${MANAGE_CERTIFICATES_ENV}, else true)")
    certificates.add_argument("--webhook-namespace", metavar="NS", default=None,
                              help="namespace of the webhook Service and its TLS Secret"
                                   " (default: the Lease's namespace)")
    certificates.add_argument("--webhook-service", metavar="NAME", default="graceful-webhook",
                              help="the webhook's Service, named in the certificate"
                                   " (default: graceful-webhook)")
    certificates.add_argument("--webhook-secret", metavar="NAME",
                              default="graceful-webhook-tls",
                              help="the TLS Secret (default: graceful-webhook-tls)")
    certificates.add_argument("--webhook-configuration", metavar="NAME",
                              default="graceful-webhook",
                              help="the MutatingWebhookConfiguration whose caBundle is kept"
                                   " (default: graceful-webhook)")
    certificates.add_argument("--webhook-extra-san", metavar="HOST", action="append",
                              default=[],
                              help="another DNS name or IP address for the serving certificate"
                                   " (repeatable)")
    certificates.add_argument("--certificate-lifetime", metavar="DURATION", default="90d",
                              help="serving certificate lifetime, renewed with a third left"
                                   " (default: 90d)")
    certificates.add_argument("--ca-lifetime", metavar="DURATION", default="1095d",
                              help="CA lifetime, at least 3 certificate lifetimes; a new CA"
                                   " joins the caBundle with a third left (default: 1095d)")
    certificates.add_argument("--certificate-check-seconds", type=float, default=30.0,
                              metavar="N",
                              help="check the certificates and the caBundle at least every N"
                                   " seconds (default: 30)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level (default: INFO)")


_DNS_NAME = re.compile(r"(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                       r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


def extra_san(host: str) -> str:
    """An IP address or a DNS name (ASCII, ``*.`` allowed in front) for the certificate."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii() or not _DNS_NAME.fullmatch(host):
        raise ValueError(f"--webhook-extra-san {host!r}: not an IP address or a DNS name")
    return host.lower()


def manage_certificates(flag: bool | None) -> bool:
    """The flag if given, else ``$GRACEFUL_MANAGE_CERTIFICATES``, else true."""
    if flag is not None:
        return flag
    value = os.environ.get(MANAGE_CERTIFICATES_ENV, "").strip().lower()
    if not value or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{MANAGE_CERTIFICATES_ENV} must be true or false, not {value!r}")


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    if args.resync_seconds <= 0:
        raise ValueError("--resync-seconds must be positive")
    if args.certificate_check_seconds <= 0:
        raise ValueError("--certificate-check-seconds must be positive")
    try:
        certificate_lifetime = parse_lifetime(args.certificate_lifetime)
        ca_lifetime = parse_lifetime(args.ca_lifetime)
    except LifetimeError as exc:
        raise ValueError(f"--certificate-lifetime/--ca-lifetime: {exc}") from None
    if ca_lifetime < 3 * certificate_lifetime:
        raise ValueError("--ca-lifetime must be at least 3 times --certificate-lifetime")
    lease_namespace = (args.lease_namespace or os.environ.get("POD_NAMESPACE")
                       or DEFAULT_OPERATOR_NAMESPACE)
    return OperatorSettings(
        namespaces=tuple(dict.fromkeys(args.namespace)),
        identity=args.identity or "",
        lease_namespace=lease_namespace,
        resync_seconds=args.resync_seconds,
        liveness_endpoint=args.liveness_endpoint,
        manage_certificates=manage_certificates(args.manage_certificates),
        webhook_namespace=args.webhook_namespace or lease_namespace,
        webhook_service=args.webhook_service,
        webhook_secret=args.webhook_secret,
        webhook_configuration=args.webhook_configuration,
        webhook_extra_sans=tuple(dict.fromkeys(extra_san(h) for h in args.webhook_extra_san)),
        certificate_lifetime=certificate_lifetime,
        ca_lifetime=ca_lifetime,
        certificate_check_seconds=args.certificate_check_seconds,
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
