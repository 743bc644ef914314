"""The webhook's settings, one documented field each.

Values come from the command line (``graceful webhook --port ...``) and, for
what has no flag, from ``GRACEFUL_WEBHOOK_*`` environment variables, so a
Deployment can tune them without a new image.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from graceful.webhook.review import MAX_BODY_BYTES


class WebhookSettings(BaseSettings):
    """How the webhook listens and what it accepts."""

    model_config = SettingsConfigDict(env_prefix="GRACEFUL_WEBHOOK_", frozen=True)

    host: str = "0.0.0.0"  # noqa: S104 - a webhook in a Pod must listen on the Pod's IP
    """Address to listen on."""
    port: int = Field(default=8443, ge=0, le=65535)
    """TLS port (0 picks a free one, printed at startup)."""
    cert_file: Path | None = None
    """PEM certificate chain served to the API server."""
    key_file: Path | None = None
    """PEM private key of ``cert_file``."""
    cert_reload_seconds: float = Field(default=5.0, gt=0, le=3600)
    """How often the certificate files are checked for a rotation."""
    kubeconfig: Path | None = None
    """kubeconfig for the policy watch; in-cluster configuration when unset."""
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024)
    """Larger /mutate bodies are refused with 400 before they are parsed."""
    body_timeout_seconds: float = Field(default=10.0, gt=0)
    """A /mutate body not received in full by then is refused (slow clients)."""
    policy_fetch_seconds: float = Field(default=2.0, gt=0, le=10)
    """How long a /mutate waits for the API server when the cache misses a named policy."""
    header_timeout_seconds: float = Field(default=5.0, gt=0)
    """A request line and headers not received in full by then close the connection."""
