"""The operator's settings: one pydantic-settings model, one documented field each.

Every setting has its default written once, here. Two sources feed the
model: ``GRACEFUL_*`` environment variables (``GRACEFUL_RESYNC_SECONDS=30``,
``GRACEFUL_MANAGE_CERTIFICATES=false``, ``GRACEFUL_NAMESPACES='["a","b"]'``)
and the command line, whose flags default to "not given" so that a flag only
overrides what it names (``cli``). kopf's own settings are derived from this
model (``main.kopf_settings``).

The defaults are the promises of the product: a workload or policy edit
reaches the status within about a second (``quiet``, ``max_delay``); every
status and Event is compared with the verdicts once a minute
(``resync_seconds``) in case a write was lost; a follower takes over from a
dead leader within ``lease_duration_seconds`` plus one renewal.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import socket
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from graceful.certificates.rotation import LifetimeError, parse_lifetime
from graceful.core import DEFAULT_OPERATOR_NAMESPACE
from graceful.operator.lease import DEFAULT_LEASE_NAME

_TRUE = ("1", "true", "yes", "on", "")
_FALSE = ("0", "false", "no", "off")
_DNS_NAME = re.compile(r"(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                       r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


def default_identity() -> str:
    """``POD_NAME`` in a cluster (stable across container restarts), else host and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def extra_san(host: str) -> str:
    """An IP address or a DNS name (ASCII, ``*.`` allowed in front) for the certificate."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii() or not _DNS_NAME.fullmatch(host):
        raise ValueError(f"--webhook-extra-san {host!r}: not an IP address or a DNS name")
    return host.lower()


class OperatorSettings(BaseSettings):
    """How ``graceful operator`` runs."""

    model_config = SettingsConfigDict(env_prefix="GRACEFUL_", frozen=True, extra="forbid",
                                      populate_by_name=True)

    namespaces: tuple[str, ...] = ()
    """Namespaces to audit; empty means every namespace (cluster-wide watches)."""
    kubeconfig: str | None = None
    """The kubeconfig to use; None: in-cluster, then ``$KUBECONFIG``."""
    identity: str = ""
    """This replica's name in the Lease and on its Events; empty: ``$POD_NAME``, else HOST-PID."""
    lease_namespace: str = Field(
        DEFAULT_OPERATOR_NAMESPACE,
        validation_alias=AliasChoices("lease_namespace", "GRACEFUL_LEASE_NAMESPACE",
                                      "POD_NAMESPACE"))
    """Namespace of the leader-election Lease (created if missing); in a Pod, its own."""
    lease_name: str = DEFAULT_LEASE_NAME
    """Name of the leader-election Lease."""
    lease_duration_seconds: int = 15
    """How long a Lease that nobody renews keeps others waiting."""
    renew_every: float = 2.0
    """Seconds between two renewals (or two attempts to acquire)."""
    renew_deadline: float = 10.0
    """Seconds after its last renewal that a leader stops writing; below the duration."""
    resync_seconds: float = 60.0
    """Every this many seconds, every status and Event is compared with the verdicts."""
    quiet: float = 0.2
    """A dirty namespace is audited once no event arrived for this long..."""
    max_delay: float = 1.0
    """...and at the latest this long after its first event."""
    retry_seconds: float = 2.0
    """After a failed write, the namespace is audited again this much later."""
    event_concurrency: int = 16
    """Events posted in parallel (1,000 new workloads must not take 1,000 round trips)."""
    event_rate: float = 30.0
    """Events a second the background poster posts at most (bursts of ``event_concurrency``
    more): a first audit's thousands of Events must leave the API server room for the
    status writes and for everyone else. The Events of the workloads a status lists are
    posted before it, outside this limit."""
    missing_policy_grace: float = Field(5.0, ge=0)
    """A workload naming a policy the operator has not seen gets its Warning only after this
    long (a newer verdict replaces it): a policy applied together with its workloads
    reaches the operator on another watch, sometimes after them."""
    liveness_endpoint: str | None = None
    """kopf's liveness endpoint, e.g. ``http://0.0.0.0:8080/healthz``; None: none."""
    metrics_port: int | None = None
    """Serve the operator's Prometheus metrics on this port (``/metrics``); None: not at all."""
    metrics_address: str = "0.0.0.0"  # noqa: S104 (scraped from other Pods)
    """The address the metrics are served on."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR (kopf's per-object lines only at DEBUG)."""
    kopf_idle_timeout: float = 0.5
    """kopf's ``queueing.idle_timeout``: an idle per-object worker, and the body it holds,
    go after this long (kopf's default, 5 s, keeps a whole listing in memory)."""
    watch_server_timeout: int = 300
    """kopf's ``watching.server_timeout``: a watch is renewed this often (dead connections
    are noticed within it plus 30 s)."""
    watch_reconnect_backoff: float = 1.0
    """kopf's ``watching.reconnect_backoff``: reconnect this soon after an API server restart."""
    policy_reports: bool = True
    """Write ``wgpolicyk8s.io/v1alpha2`` PolicyReports (only while the cluster serves them)."""
    manage_certificates: bool = True
    """Keep the webhook's TLS Secret and the configuration's caBundle (off with cert-manager)."""
    webhook_namespace: str = ""
    """Namespace of the webhook's Service and of its TLS Secret; empty: the Lease's."""
    webhook_service: str = "graceful-webhook"
    """The Service the API server calls; its DNS names go into the serving certificate."""
    webhook_secret: str = "graceful-webhook-tls"  # noqa: S105 (a name, not a password)
    """The Secret the webhook's Pods mount: ``tls.crt``, ``tls.key``, ``ca.crt``, ``ca.key``."""
    webhook_configuration: str = "graceful-webhook"
    """The MutatingWebhookConfiguration whose webhooks' caBundle follows the CA."""
    webhook_extra_sans: tuple[str, ...] = ()
    """More DNS names or IP addresses for the serving certificate (a webhook called by URL)."""
    certificate_lifetime: dt.timedelta = dt.timedelta(days=90)
    """Lifetime of a serving certificate (``90d``, ``8760h``...); renewed with a third left."""
    ca_lifetime: dt.timedelta = dt.timedelta(days=3 * 365)
    """Lifetime of a CA (3 serving lifetimes or more); a new CA joins the bundle at a third left."""
    certificate_check_seconds: float = 30.0
    """The certificates and the caBundle are checked at least this often."""
    ca_settle_seconds: float = 5.0
    """After the caBundle gained a new CA, wait this long before serving a certificate of it."""

    @field_validator("manage_certificates", "policy_reports", mode="before")
    @classmethod
    def _switch(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"GRACEFUL_{info.field_name.upper()} must be true or false,"
                             f" not {text!r}")
        return value

    @field_validator("certificate_lifetime", "ca_lifetime", mode="before")
    @classmethod
    def _lifetime(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_lifetime(value)
            except LifetimeError as exc:
                raise ValueError(f"--certificate-lifetime/--ca-lifetime: {exc}") from None
        return value

    @field_validator("namespaces", "webhook_extra_sans", mode="after")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("webhook_extra_sans", mode="after")
    @classmethod
    def _sans(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(extra_san(host) for host in value))

    @field_validator("resync_seconds", "certificate_check_seconds", "event_rate", mode="after")
    @classmethod
    def _positive(cls, value: float, info: Any) -> float:
        if value <= 0:
            raise ValueError(f"--{info.field_name.replace('_', '-')} must be positive")
        return value

    @model_validator(mode="after")
    def _derived(self) -> OperatorSettings:
        if self.ca_lifetime < 3 * self.certificate_lifetime:
            raise ValueError("--ca-lifetime must be at least 3 times --certificate-lifetime")
        # Frozen: the derived defaults are filled in once, here.
        if not self.identity:
            object.__setattr__(self, "identity", default_identity())
        if not self.webhook_namespace:
            object.__setattr__(self, "webhook_namespace", self.lease_namespace)
        return self
