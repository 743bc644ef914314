"""``graceful operator``: run the audit controller.

The flags are a second face of :class:`OperatorSettings`: each one names a
field, defaults to "not given" and so overrides the field (or its
``GRACEFUL_*`` variable) only when given; the defaults shown in ``--help``
are read from the model, where they are written once.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for bad input (e.g. an
unreadable kubeconfig).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pydantic import ValidationError

from graceful.operator.settings import OperatorSettings

_NOT_GIVEN = argparse.SUPPRESS


def _default(field: str) -> str:
    value = OperatorSettings.model_fields[field].default
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    return str(value)


def _option(parser: Any, *flags: str, field: str, help: str, **kwargs: Any) -> None:
    shown = kwargs.pop("shown", None) or _default(field)
    parser.add_argument(*flags, dest=field, default=_NOT_GIVEN,
                        help=f"{help} (default: {shown}; ${'GRACEFUL_' + field.upper()})",
                        **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _option(parser, "--namespace", "-n", field="namespaces", action="append", metavar="NS",
            help="audit only this namespace (repeatable)", shown="all namespaces")
    _option(parser, "--kubeconfig", field="kubeconfig", metavar="FILE",
            help="kubeconfig to use", shown="in-cluster, then $KUBECONFIG")
    _option(parser, "--lease-namespace", field="lease_namespace", metavar="NS",
            help="namespace of the leader-election Lease, which must exist",
            shown=f"$POD_NAMESPACE, else {_default('lease_namespace')}, also when run by hand,"
                  " so that it shares the Lease of an installed operator")
    _option(parser, "--resync-seconds", field="resync_seconds", type=float, metavar="N",
            help="compare every status and Event with the verdicts every N seconds")
    _option(parser, "--identity", field="identity", metavar="ID",
            help="this replica's name in the Lease and on Events", shown="$POD_NAME, else HOST-PID")
    _option(parser, "--liveness-endpoint", field="liveness_endpoint", metavar="URL",
            help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    _option(parser, "--metrics-port", field="metrics_port", type=int, metavar="PORT",
            help="serve the operator's Prometheus metrics on /metrics at this port")
    _option(parser, "--metrics-address", field="metrics_address", metavar="ADDR",
            help="the address of the metrics endpoint")
    _option(parser, "--policy-reports", field="policy_reports",
            action=argparse.BooleanOptionalAction,
            help="write wgpolicyk8s.io PolicyReports, one per namespace with opted-in workloads,"
                 " while the cluster serves that API")
    certificates = parser.add_argument_group(
        "webhook certificates",
        "the operator keeps a CA and the webhook's serving certificate in a Secret and the"
        " caBundle of the webhook configuration in sync (off with cert-manager)")
    _option(certificates, "--manage-certificates", field="manage_certificates",
            action=argparse.BooleanOptionalAction, help="keep the webhook's certificates")
    _option(certificates, "--webhook-namespace", field="webhook_namespace", metavar="NS",
            help="namespace of the webhook Service and its TLS Secret",
            shown="the Lease's namespace")
    _option(certificates, "--webhook-service", field="webhook_service", metavar="NAME",
            help="the webhook's Service, named in the certificate")
    _option(certificates, "--webhook-secret", field="webhook_secret", metavar="NAME",
            help="the TLS Secret")
    _option(certificates, "--webhook-configuration", field="webhook_configuration",
            metavar="NAME", help="the MutatingWebhookConfiguration whose caBundle is kept")
    _option(certificates, "--webhook-extra-san", field="webhook_extra_sans", metavar="HOST",
            action="append",
            help="another DNS name or IP address for the serving certificate (repeatable)")
    _option(certificates, "--certificate-lifetime", field="certificate_lifetime",
            metavar="DURATION", help="serving certificate lifetime, renewed with a third left",
            shown="90d")
    _option(certificates, "--ca-lifetime", field="ca_lifetime", metavar="DURATION",
            help="CA lifetime, at least 3 certificate lifetimes; a new CA joins the caBundle"
                 " with a third left", shown="1095d")
    _option(certificates, "--certificate-check-seconds", field="certificate_check_seconds",
            type=float, metavar="N",
            help="check the certificates and the caBundle at least every N seconds")
    _option(parser, "--log-level", field="log_level",
            choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")


def _message(exc: ValidationError) -> str:
    error = exc.errors()[0]
    text = str(error.get("msg", exc))
    text = text.removeprefix("Value error, ")
    where = ".".join(str(part) for part in error.get("loc", ()))
    return text if text.startswith(("--", "GRACEFUL_")) or not where else f"{where}: {text}"


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    """The settings: the flags given, then ``GRACEFUL_*`` variables, then the defaults."""
    given = {key: value for key, value in vars(args).items()
             if key in OperatorSettings.model_fields}
    for key in ("namespaces", "webhook_extra_sans"):
        if key in given:
            given[key] = tuple(given[key])
    try:
        return OperatorSettings(**given)
    except ValidationError as exc:
        raise ValueError(_message(exc)) from None


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"graceful operator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "DEBUG":
        # kopf logs every handler call per object at INFO: thousands of lines per rollout.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # kopf and aiohttp are imported only to run, not for `graceful --help`.
    from graceful.operator.main import start  # noqa: PLC0415

    return start(settings)
