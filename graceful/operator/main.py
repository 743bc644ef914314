"""Wiring: settings in, a running kopf operator out.

kopf is told to be quiet where it would otherwise write to the cluster: no
peering objects (``standalone``; the Lease elects the writer instead) and no
Events of its own (``posting.enabled = False``; every Event the operator posts
is one of ours, with our labels and dedup annotations). Everything else is
kopf's documented settings, derived from :class:`OperatorSettings`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import kopf

from graceful.certificates.keeper import CertificateKeeper
from graceful.operator.handlers import build_registry, counter
from graceful.operator.kube import KubeApi, load_configuration
from graceful.operator.lease import LeaseElector
from graceful.operator.metrics import Metrics
from graceful.operator.policy_reports import PolicyReports
from graceful.operator.projection import BARE_POD_SELECTOR
from graceful.operator.reconciler import Auditor
from graceful.operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

#: Objects per page of kopf's initial listings (``limit``/``continue``).
LIST_CHUNK_SIZE = 500

#: Connections kept free of Events: the background poster may hold ``event_concurrency``
#: connections for as long as a first audit's thousands of Events take, and a Lease
#: renewal, a status write or a PolicyReport must never wait for a connection behind them
#: (a late renewal loses the Lease). Measured alone it moved the 10,000-workload edit p95
#: little (1.59 -> 1.33 s): the API server's own load was the cause, which the paced
#: poster (``settings.event_rate``) addresses.
RESERVED_CONNECTIONS = 8


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base for an operator without change-detecting handlers: none at all.

    kopf computes an object's "essence" (a deep copy of its whole body, less
    what the progress storage strips, another copy) on every watch event, to
    diff it against the last handled one for ``on.create``/``on.update``/
    ``on.resume`` handlers and daemons. This operator has none of those (see
    ``handlers``: it must never annotate the workloads it audits), so the diff
    is never read; at 20,000 objects building it was a fifth of the start-up
    CPU. ``store`` is only called after a change handler ran, so reaching it
    means someone added one: it fails loudly rather than lose the diff base.
    """

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        raise RuntimeError("graceful operator: a change handler needs a real diff-base storage"
                           " (see graceful.operator.main.NoDiffBase)")


def kopf_settings(ours: OperatorSettings | None = None) -> kopf.OperatorSettings:
    """kopf's settings, derived from ours."""
    ours = ours or OperatorSettings()
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    # The Pod watch lists bare Pods only: a Pod a controller owns is audited through it.
    settings.watching.label_selectors["v1", "pods"] = BARE_POD_SELECTOR
    # A worker keeps the last body it processed while it idles: let it go soon, so that a
    # listing of 10,000 Deployments is not 10,000 bodies in memory at once.
    settings.queueing.idle_timeout = ours.kopf_idle_timeout
    settings.persistence.diffbase_storage = NoDiffBase()
    # List in pages: one list of 10,000 Deployments is a 24 MB response that aiohttp holds
    # about four times over (buffers, bytes, text) while it is decoded (tracemalloc: ~100 MB
    # at once on top of the objects themselves).
    settings.watching.chunk_size = LIST_CHUNK_SIZE
    settings.peering.standalone = True
    # Reconnect quickly after an API server restart; notice dead connections within a minute.
    settings.watching.reconnect_backoff = ours.watch_reconnect_backoff
    settings.watching.server_timeout = ours.watch_server_timeout
    settings.watching.client_timeout = ours.watch_server_timeout + 30
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    return settings


@dataclass
class Operator:
    """Everything ``kopf.run`` needs, wired from the settings (also what tests run)."""

    settings: OperatorSettings
    registry: kopf.OperatorRegistry
    kopf_settings: kopf.OperatorSettings
    auditor: Auditor
    metrics: Metrics


def assemble(settings: OperatorSettings, cfg: Any) -> Operator:
    """The auditor, the Lease elector, the certificate keeper and their kopf registry."""
    api = KubeApi(cfg, limit=settings.event_concurrency + RESERVED_CONNECTIONS)
    metrics = Metrics()
    reports = PolicyReports(api, enabled=settings.policy_reports,
                            namespaces=settings.namespaces, metrics=metrics)
    auditor = Auditor(settings=settings, api=api, metrics=metrics, reports=reports,
                      counter=counter(api, settings.namespaces))
    keeper = (CertificateKeeper(api, settings, on_check=metrics.certificate_checks.inc)
              if settings.manage_certificates else None)

    def leadership_changed(leading: bool) -> None:
        auditor.leadership_changed(leading)
        if keeper is not None:
            keeper.leadership_changed(leading)

    elector = LeaseElector(api, namespace=settings.lease_namespace, name=settings.lease_name,
                           identity=settings.identity,
                           duration_seconds=settings.lease_duration_seconds,
                           renew_every=settings.renew_every,
                           renew_deadline=settings.renew_deadline,
                           on_change=leadership_changed)
    auditor.is_leader = elector.is_leader
    if keeper is not None:
        keeper.is_leader = elector.is_leader
    registry = build_registry(auditor, elector, api, cfg, keeper=keeper)
    return Operator(settings, registry, kopf_settings(settings), auditor, metrics)


def start(settings: OperatorSettings) -> int:
    try:
        cfg = load_configuration(settings.kubeconfig)
    except Exception as exc:  # the loader raises anything on a malformed file
        print(f"graceful operator: cannot load credentials: {exc}", file=sys.stderr)
        return 2
    operator = assemble(settings, cfg)
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server  # noqa: PLC0415

        start_http_server(settings.metrics_port, addr=settings.metrics_address,
                          registry=operator.metrics.registry)
    logger.info("graceful operator %s: namespaces=%s lease=%s/%s",
                settings.identity, ",".join(settings.namespaces) or "(all)",
                settings.lease_namespace, settings.lease_name)
    if not settings.manage_certificates:
        logger.info("webhook certificates are not managed (GRACEFUL_MANAGE_CERTIFICATES=false"
                    " or --no-manage-certificates): the Secret and the caBundle are left alone")
    kopf.run(
        registry=operator.registry,
        settings=operator.kopf_settings,
        standalone=True,
        # kopf would otherwise derive an identity from getpass.getuser(), which raises
        # for a numeric user with no passwd entry (the image runs as 65532).
        # (kopf types it as its own NewType of str, which it does not export.)
        identity=cast(Any, settings.identity),
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=settings.liveness_endpoint,
    )
    return 0
