"""``graceful webhook``: serve the mutating admission webhook.

Startup checks everything that can be wrong with the command line first (the
certificate and key load, the kubeconfig exists, the port can be bound) and
reports the first problem in one line with exit code 2, before any thread or
connection exists. Then the policy watch starts, ``/readyz`` turns ready when
it has synced, and the server runs until SIGTERM: the watch stops first, the
requests in flight finish, "graceful webhook stopped" is the last line, and
the process ends at once (``os._exit``, see :func:`run`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from graceful.webhook.settings import WebhookSettings

log = logging.getLogger(__name__)

USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``graceful webhook``."""
    defaults = WebhookSettings.model_fields
    parser.add_argument("--cert", required=True, type=Path, metavar="FILE",
                        help="PEM certificate (chain) to serve; reloaded when the file changes")
    parser.add_argument("--key", required=True, type=Path, metavar="FILE",
                        help="PEM private key of --cert")
    # No argparse defaults: a flag overrides its GRACEFUL_WEBHOOK_* variable only when given,
    # and the default shown is the model's, written once in ``settings``.
    parser.add_argument("--port", type=int, default=argparse.SUPPRESS, metavar="N",
                        help="TLS port to listen on; 0 picks a free one"
                             f" (default: {defaults['port'].default}; $GRACEFUL_WEBHOOK_PORT)")
    parser.add_argument("--host", default=argparse.SUPPRESS, metavar="H",
                        help="address to listen on"
                             f" (default: {defaults['host'].default}; $GRACEFUL_WEBHOOK_HOST)")
    parser.add_argument("--kubeconfig", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help="kubeconfig for watching GracefulPolicies"
                             " (default: the in-cluster service account)")
    parser.add_argument("--cert-reload-seconds", type=float, default=argparse.SUPPRESS,
                        metavar="S", help="how often to check the certificate files (default:"
                        f" {defaults['cert_reload_seconds'].default};"
                        " $GRACEFUL_WEBHOOK_CERT_RELOAD_SECONDS)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Check the inputs, start the policy watch, serve until stopped."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        given = {field: getattr(args, flag) for flag, field in (
            ("host", "host"), ("port", "port"), ("kubeconfig", "kubeconfig"),
            ("cert_reload_seconds", "cert_reload_seconds")) if hasattr(args, flag)}
        settings = WebhookSettings(cert_file=args.cert, key_file=args.key, **given)
    except ValidationError as exc:
        error = exc.errors()[0]
        return _fail(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}")

    # Imported here so that `graceful webhook --help` stays fast.
    from graceful.core import CLUSTER_PLURAL  # noqa: PLC0415
    from graceful.webhook.app import create_app  # noqa: PLC0415
    from graceful.webhook.cache import KubernetesPolicyApi, PolicyCache, Reflector  # noqa: PLC0415
    from graceful.webhook.server import (  # noqa: PLC0415
        WebhookServer,
        bind,
        raise_open_files_limit,
    )
    from graceful.webhook.tls import CertificateError, ReloadingCertificate  # noqa: PLC0415

    assert settings.cert_file is not None and settings.key_file is not None
    for flag, path in (("--cert", settings.cert_file), ("--key", settings.key_file)):
        if not path.is_file():
            return _fail(f"{flag} {path}: no such file")
    try:
        certificate = ReloadingCertificate(settings.cert_file, settings.key_file)
    except CertificateError as exc:
        return _fail(str(exc))
    try:
        api_client = _api_client(settings.kubeconfig)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")

    raise_open_files_limit()  # slow clients hold descriptors until their deadlines
    cache = PolicyCache().with_cluster_feeds()
    api = KubernetesPolicyApi(api_client)
    bound = settings.policy_fetch_seconds
    cache.getter = lambda namespace, name: api.get(namespace, name, timeout=bound)
    reflectors = [
        Reflector(cache, api).start(),
        Reflector(cache.cluster_feed,
                  KubernetesPolicyApi(api_client, plural=CLUSTER_PLURAL)).start(),
        Reflector(cache.namespace_feed,
                  KubernetesPolicyApi(api_client, plural="namespaces")).start(),
    ]

    def stop_watches() -> None:
        for reflector in reflectors:
            reflector.request_stop()

    # SIGTERM stops the watches first: nothing they could still log (a retry of an
    # interrupted watch) may come after the server's last line.
    server = WebhookServer(create_app(cache, settings=settings), certificate, sock,
                           reload_interval=settings.cert_reload_seconds,
                           header_timeout=settings.header_timeout_seconds,
                           on_exit=stop_watches)
    # The deadline is in the line an operator reads first: a slow client's connection
    # closing after it is no mystery then.
    print(f"graceful webhook: serving {server.url}/mutate (request headers within"
          f" {settings.header_timeout_seconds:g}s)", file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        for reflector in reflectors:
            reflector.stop()
    log.info("graceful webhook stopped")
    # Nothing is left to finish: skip CPython's teardown of every loaded module, which
    # takes seconds on a busy node and would only delay the end of the Pod.
    logging.shutdown()
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(0)


def _api_client(kubeconfig: Path | None) -> Any:
    """A Kubernetes ApiClient from ``kubeconfig``, or the in-cluster service account.

    Raises ValueError with a one-line message when neither is usable.
    """
    from kubernetes import client, config  # noqa: PLC0415

    if kubeconfig is not None:
        if not kubeconfig.is_file():
            raise ValueError(f"--kubeconfig {kubeconfig}: no such file")
        try:
            return config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig))
        except Exception as exc:  # the client raises several kinds for a bad file
            raise ValueError(f"--kubeconfig {kubeconfig}: {_first_line(exc)}") from None
    configuration = client.Configuration()
    try:
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration)
    except config.ConfigException:
        raise ValueError("not running in a cluster: give --kubeconfig FILE") from None
    return client.ApiClient(configuration)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(message: str) -> int:
    print(f"graceful webhook: {message}", file=sys.stderr)
    return USAGE_ERROR
