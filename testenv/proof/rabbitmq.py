"""RabbitMQ for the proof: Debian's ``rabbitmq-server``, run by us, in a directory of its own.

Why not a Pod: the broker is not what the proof is about, and a broker that
restarts with the node would add its own losses to the figures. So it runs
next to the node, in the node's network namespace (or on loopback when there
is none), where the Pods reach it at the node IP.

Why these settings:

- every file it writes (Mnesia, logs, the Erlang cookie under its own
  ``HOME``, the generated config) is under one private directory, removed
  at stop, so two runs never share state and nothing is left in
  ``/var/lib/rabbitmq``;
- ``epmd`` is started by us, in the foreground, on 127.0.0.1 and a port of
  our choosing, and the VM is told not to start its own (``-start_epmd
  false``): an ``epmd -daemon`` started by ``erl`` would outlive the broker;
- Erlang distribution listens on 127.0.0.1 only; AMQP listens on 127.0.0.1
  and on each extra address given (the node IP, for Pods). The ``guest``
  user may log in from those addresses (``loopback_users = none``): nothing
  outside the cluster's own namespace can reach them;
- the broker is stopped by the PID of the process we started (SIGTERM, which
  ``rabbitmq-server`` turns into an orderly stop), then anything left in its
  process group, then epmd. It is never started as a system service.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Debian's wrapper ``/usr/sbin/rabbitmq-server`` switches to the ``rabbitmq`` user and
#: writes to /var/lib/rabbitmq; the scripts it wraps run as the caller, with our paths.
SCRIPTS = Path("/usr/lib/rabbitmq/bin")
DEBIAN_PACKAGE = "rabbitmq-server"
AMQP_PORT = 5672
READY_TIMEOUT = 90.0


class RabbitMQError(RuntimeError):
    """The broker did not start (the message carries its log tail)."""


def installed() -> bool:
    """Whether Debian's rabbitmq-server (and so epmd) is installed."""
    return (SCRIPTS / "rabbitmq-server").exists() and shutil.which("epmd") is not None


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def config_text(addresses: Sequence[str], port: int) -> str:
    """``rabbitmq.conf``: AMQP on each address, guest allowed from them, quiet logs."""
    lines = [f"listeners.tcp.{index} = {address}:{port}"
             for index, address in enumerate(addresses, start=1)]
    lines += [
        "loopback_users = none",
        "log.file.level = info",
        "log.console = false",
        # the proof's handlers hold a message for minutes at most; keep RabbitMQ's
        # default delivery timeout (30 min) out of the way of long bench runs
        "consumer_timeout = 3600000",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class RabbitMQ:
    """One broker and its epmd, started and stopped by PID.

    ``prefix`` runs each process through a command, such as ``ip netns exec
    NAME`` for the node's network namespace; ``addresses`` are extra AMQP
    listen addresses (the node IP). Ports are chosen free on loopback unless
    given (inside a fresh namespace the standard ones are free).
    """

    addresses: Sequence[str] = ()
    prefix: Sequence[str] = ()
    port: int = 0
    epmd_port: int = 0
    dist_port: int = 0
    root: Path | None = None
    _dir: Path | None = field(default=None, repr=False)
    _epmd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _server: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RabbitMQError("RabbitMQ is not started")
        return self._dir

    def url(self, host: str = "127.0.0.1") -> str:
        return f"amqp://guest:guest@{host}:{self.port}/"

    def env(self) -> dict[str, str]:
        """The environment of the server and of ``rabbitmqctl`` (same node, same cookie)."""
        d = self.directory
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(d / "home"),
            "RABBITMQ_NODENAME": "rabbit@localhost",
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_GENERATED_CONFIG_DIR": str(d / "generated"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(d / "feature_flags"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS": "-start_epmd false",
        }

    def start(self) -> None:
        if not installed():
            raise RabbitMQError(f"rabbitmq-server is not installed: apt-get install -y "
                                f"{DEBIAN_PACKAGE}")
        self._dir = Path(tempfile.mkdtemp(prefix="graceful-rabbitmq-", dir=self.root))
        d = self._dir
        self.port = self.port or _free_port()
        self.epmd_port = self.epmd_port or _free_port()
        self.dist_port = self.dist_port or _free_port()
        for sub in ("home", "mnesia", "log", "generated"):
            (d / sub).mkdir()
        (d / "rabbitmq-env.conf").write_text("")
        (d / "advanced.config").write_text("[].\n")
        (d / "enabled_plugins").write_text("[].\n")
        addresses = ["127.0.0.1", *[a for a in self.addresses if a != "127.0.0.1"]]
        (d / "rabbitmq.conf").write_text(config_text(addresses, self.port))
        env = self.env()
        try:
            with (d / "epmd.log").open("ab") as log:
                self._epmd = subprocess.Popen(
                    [*self.prefix, shutil.which("epmd") or "epmd", "-port", str(self.epmd_port),
                     "-address", "127.0.0.1"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True)
            self._wait(lambda: _listening("127.0.0.1", self.epmd_port), "epmd", 10.0)
            with (d / "server.log").open("ab") as log:
                self._server = subprocess.Popen(
                    [*self.prefix, str(SCRIPTS / "rabbitmq-server")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    cwd=d, start_new_session=True)
            self._wait(self._ready, "rabbitmq-server", READY_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if not _listening("127.0.0.1", self.port):
            return False
        # the AMQP port opens before the boot ends; ask the node itself
        return self.ctl("await_startup", "--timeout", "30", check=False).returncode == 0

    def _wait(self, ready: object, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in (self._epmd, self._server):
                if proc is not None and proc.poll() is not None:
                    raise RabbitMQError(f"{what}: a process exited with {proc.returncode}:\n"
                                        f"{self.log_tail()}")
            if callable(ready) and ready():
                return
            time.sleep(0.2)
        raise RabbitMQError(f"{what} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if self._dir is None:
            return "(no log)"
        text: list[str] = []
        for log in (self._dir / "server.log", *sorted((self._dir / "log").glob("*.log"))):
            with contextlib.suppress(OSError):
                text += [f"{log.name}: {line}" for line in
                         log.read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(text[-2 * lines:])

    def ctl(self, *args: str, check: bool = True,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl ARGS`` against this node."""
        proc = subprocess.run([*self.prefix, str(SCRIPTS / "rabbitmqctl"), "-q", *args],
                              env=self.env(), capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise RabbitMQError(f"rabbitmqctl {' '.join(args)}: {proc.stderr.strip()[-500:]}")
        return proc

    def queue_depth(self, queue: str) -> tuple[int, int, int]:
        """(ready, unacknowledged, consumers) of ``queue``; zeros when it does not exist."""
        out = self.ctl("list_queues", "--no-table-headers", "name", "messages_ready",
                       "messages_unacknowledged", "consumers").stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) == 4 and fields[0] == queue:
                return int(fields[1]), int(fields[2]), int(fields[3])
        return 0, 0, 0

    def purge(self, queue: str) -> None:
        self.ctl("purge_queue", queue, check=False)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker, then epmd, each by its PID; remove the directory."""
        for proc in (self._server, self._epmd):
            if proc is None:
                continue
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            # the VM (and erl_child_setup) live in the group of the script we started
            _kill_group(proc.pid)
        self._server = self._epmd = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self._server, self._epmd) if p is not None]


def _kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, what is left in the process group ``pgid`` (ours: a new session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.1)


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


@contextlib.contextmanager
def running(addresses: Sequence[str] = (), prefix: Sequence[str] = (), *, port: int = 0,
            root: Path | None = None) -> Iterator[RabbitMQ]:
    """A started broker, stopped on exit."""
    broker = RabbitMQ(addresses=addresses, prefix=prefix, port=port, root=root)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
