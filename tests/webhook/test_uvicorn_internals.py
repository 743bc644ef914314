"""The uvicorn internals graceful/webhook/server.py relies on, checked directly.

uvicorn has no public setting for a TLS handshake deadline or a deadline on a
request's line and headers, so ``server.py`` subclasses its private
``H11Protocol`` and wraps the event loop's ``create_server`` while
``uvicorn.Server.startup`` runs; its ``connection_lost`` also cancels uvicorn's
keep-alive timer, which uvicorn leaves armed after a reset. Nothing in uvicorn
promises that those keep working from one release to the next; the slowloris
tests would only show it as slow clients that are no longer cut off. These
tests fail at once, naming the internal that moved, and pin the minor version
``pyproject.toml`` allows.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from graceful.webhook import server as module
from graceful.webhook.server import HANDSHAKE_TIMEOUT, WebhookServer, bind

ROOT = Path(__file__).resolve().parents[2]


def _pinned_series() -> str:
    """The ``X.Y`` of ``uvicorn>=X.Y,<X.(Y+1)`` in pyproject.toml."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in dependencies if re.match(r"uvicorn\b", d))
    match = re.fullmatch(r"uvicorn>=(\d+)\.(\d+)(?:\.\d+)?,<(\d+)\.(\d+)", spec.replace(" ", ""))
    assert match, f"uvicorn must be pinned to one minor version, found {spec!r}"
    major, minor, next_major, next_minor = map(int, match.groups())
    assert (next_major, next_minor) == (major, minor + 1), f"more than one minor in {spec!r}"
    return f"{major}.{minor}"


def test_the_installed_uvicorn_is_the_pinned_minor_version() -> None:
    series = _pinned_series()
    assert uvicorn.__version__.startswith(series + "."), (
        f"uvicorn {uvicorn.__version__} installed, server.py was checked against {series}")


class _Transport(asyncio.Transport):
    """Enough of a transport for H11Protocol: records writes and closing."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8443),
                "sslcontext": object()}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_the_h11_protocol_has_what_the_header_deadline_uses() -> None:
    """``cycle`` (and its ``response_complete``), ``transport``, ``loop`` and the three hooks."""
    for hook in ("connection_made", "data_received", "connection_lost"):
        assert hook in vars(H11Protocol), f"H11Protocol.{hook} moved"
    assert list(inspect.signature(H11Protocol.__init__).parameters)[:4] == [
        "self", "config", "server_state", "app_state"]
    assert "response_complete" in inspect.signature(RequestResponseCycle.__init__).parameters \
        or "response_complete" in inspect.getsource(RequestResponseCycle.__init__)

    async def scenario() -> None:
        config = uvicorn.Config(_app, lifespan="off", log_config=None)
        protocol = type("Guarded", (module._GuardedH11,), {"header_timeout": 60.0})(
            config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        protocol.connection_made(transport)
        assert protocol.transport is transport and protocol.loop is asyncio.get_running_loop()
        assert protocol.cycle is None and protocol._header_timer is not None  # armed
        protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert protocol.cycle is None and protocol._header_timer is not None  # head incomplete
        protocol.data_received(b"\r\n")
        cycle = protocol.cycle
        assert isinstance(cycle, RequestResponseCycle), "the parsed request is no longer .cycle"
        assert protocol._header_timer is None  # disarmed once the head is parsed
        for _ in range(20):  # let the app answer
            if cycle.response_complete:
                break
            await asyncio.sleep(0)
        assert cycle.response_complete and transport.written.startswith(b"HTTP/1.1 204")
        protocol.connection_lost(None)

    asyncio.run(scenario())


def test_the_h11_protocol_keeps_its_keep_alive_timer_where_connection_lost_cancels_it() -> None:
    """After an answer, ``timeout_keep_alive_task`` is armed; a lost connection cancels it.

    uvicorn itself cancels it only when ``connection_lost`` gets no exception;
    ``_GuardedH11.connection_lost`` calls ``_unset_keepalive_if_required`` for
    the other ends (a reset).
    """
    assert callable(getattr(H11Protocol, "_unset_keepalive_if_required", None))

    async def scenario() -> None:
        config = uvicorn.Config(_app, lifespan="off", log_config=None)
        protocol = module._GuardedH11(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(_Transport())
        protocol.data_received(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(20):
            if protocol.timeout_keep_alive_task is not None:
                break
            await asyncio.sleep(0)
        timer = protocol.timeout_keep_alive_task
        assert isinstance(timer, asyncio.TimerHandle), "the keep-alive timer moved"
        protocol.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
        assert timer.cancelled() and protocol.timeout_keep_alive_task is None

    asyncio.run(scenario())


def test_server_startup_creates_its_listener_through_the_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn.Server.startup calls ``loop.create_server``, which gets the handshake deadline."""
    seen: dict[str, Any] = {}
    original = asyncio.BaseEventLoop.create_server

    async def recording(self: asyncio.BaseEventLoop, *args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        if kwargs.get("ssl") is None:  # plain TCP here: asyncio refuses a handshake deadline
            kwargs.pop("ssl_handshake_timeout", None)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_server", recording)

    class _Certificate:
        context: Any = None

    async def scenario() -> None:
        webhook = WebhookServer(_app, _Certificate(), bind("127.0.0.1", 0))  # type: ignore[arg-type]
        webhook.config.ssl_context_factory = None  # plain TCP is enough to see the call
        webhook.config.load()
        webhook.server.lifespan = webhook.config.lifespan_class(webhook.config)  # as _serve does
        await webhook.server.startup(sockets=[webhook.sock])
        try:
            assert webhook.server.started
        finally:
            await webhook.server.shutdown()
        assert "create_server" not in vars(asyncio.get_running_loop()), "the wrapper stayed"

    asyncio.run(scenario())
    assert seen.get("ssl_handshake_timeout") == HANDSHAKE_TIMEOUT, (
        "uvicorn.Server.startup no longer goes through loop.create_server")
    assert seen.get("sock") is not None


def test_the_server_overrides_only_what_uvicorn_still_has() -> None:
    for name in ("capture_signals", "startup", "handle_exit", "shutdown"):
        assert callable(getattr(uvicorn.Server, name, None)), f"uvicorn.Server.{name} is gone"
    assert "sockets" in inspect.signature(uvicorn.Server.startup).parameters
    assert {"http", "ssl_context_factory", "timeout_keep_alive"} <= set(
        inspect.signature(uvicorn.Config.__init__).parameters)
