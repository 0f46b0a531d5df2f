"""Real servers for tests and benchmarks, started privately and stopped by pid.

:class:`RedisServer` runs a ``redis-server``, :class:`EtcdServer` the Debian
``etcd`` binary (package ``etcd-server``) and :class:`ZooKeeperServer`
ZooKeeper from the Debian ``zookeeper`` package with the machine's ``java``.
Each listens on free localhost ports, keeps its data in a temporary
directory, and is stopped by its pid; none ever touches a server it did not
start.  Use them as context managers::

    with RedisServer() as server:
        store = kvs.open_store(server.url + "/3")

    with EtcdServer() as etcd:
        coordinator = Coordinator(conf, "n1:sync", backend_url=etcd.url)

Each can be stopped (:meth:`~Server.stop` with ``keep_data=True``, or
:meth:`~Server.kill`) and started again on the same port and data, to test
outages and crashes.

The pytest fixtures below share one server of each kind per test session.
The top ``conftest.py`` registers them with ``pytest_plugins =
["tests.servers"]``.  When a server is not installed the tests that need it
are skipped, unless ``STORAGED_REQUIRE_SERVERS=1`` is set, in which case
they fail.  Each user of a shared server picks its own database number (or
key prefix) and clears only that.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import TypeVar

import pytest

REQUIRE_ENV = "STORAGED_REQUIRE_SERVERS"
#: The PostgreSQL server the tests use (one already running: PostgreSQL is
#: not started by the tests); each test works in a schema of its own.
POSTGRES_ENV = "STORAGED_TEST_POSTGRES_URL"
POSTGRES_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

#: Where the Debian ``zookeeper`` package puts its jar (its dependencies are
#: named by the jar's manifest).
ZOOKEEPER_JARS = ("/usr/share/java/zookeeper.jar",)

_S = TypeVar("_S", bound="Server")


class ServerMissing(RuntimeError):
    """The server's binary is not installed."""


def require_servers() -> bool:
    """Whether missing servers must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip the current test, or fail it when servers are required."""
    if require_servers():
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Return a localhost TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    # -NOAUTH or -LOADING still mean "a redis is there"; only +PONG means ready.
    return reply.startswith(b"+PONG")


def _etcd_healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request("GET", "/health")
        body = conn.getresponse().read()
        conn.close()
    except (OSError, http.client.HTTPException):
        return False
    return b'"health":"true"' in body


def _zk_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"ruok")
            reply = sock.recv(16)
    except OSError:
        return False
    return reply == b"imok"


class Server:
    """One private server process: start, wait until ready, stop by pid.

    A subclass names its :attr:`kind`, its command line (:meth:`_args`), its
    readiness probe (:meth:`_ready`) and what is missing when it cannot run
    (:meth:`_missing`).  The process's output goes to ``KIND.log`` in
    :attr:`directory`.

    :param directory: data directory; a temporary one (removed on stop) by
        default.  Pass the same directory and port to restart a server on
        its data.
    :param port: TCP port on 127.0.0.1; a free one by default.
    """

    kind = "server"
    #: seconds to wait for the server to answer after a launch
    start_timeout = 30.0

    def __init__(self, directory: str | None, port: int | None) -> None:
        self._own_dir = directory is None
        self.directory = directory or ""
        self.port = port or 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the running server."""
        return self.process.pid if self.process is not None else None

    @property
    def url(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _missing(self) -> str | None:  # pragma: no cover - overridden
        """Why the server cannot run here (not installed), or None."""
        raise NotImplementedError

    def _args(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ready(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write configuration files before a launch."""

    def _pick_ports(self) -> None:
        self.port = free_port()

    def start(self) -> str:
        """Start the server and wait until it answers.

        Called again after :meth:`stop` (``keep_data=True``) or :meth:`kill`,
        it restarts on the same port and data.

        :returns: :attr:`url`.
        :raises ServerMissing: the server is not installed.
        :raises RuntimeError: it did not come up in time.
        """
        missing = self._missing()
        if missing:
            raise ServerMissing(missing)
        if self._own_dir and not self.directory:
            self.directory = tempfile.mkdtemp(prefix="storaged-%s-" % self.kind)
        fixed = bool(self.port)
        for _attempt in range(1 if fixed else 3):
            if not fixed:
                self._pick_ports()
            self._prepare()
            if self._launch():
                return self.url
        raise RuntimeError(
            f"{self.kind} did not start on port {self.port}; "
            f"see {os.path.join(self.directory, self.kind + '.log')}"
        )

    def _launch(self) -> bool:
        log = open(os.path.join(self.directory, self.kind + ".log"), "ab")
        try:
            self.process = subprocess.Popen(
                self._args(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False  # most likely a port was taken meanwhile
            if self._ready():
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def kill(self) -> None:
        """SIGKILL the server (a crash); its data directory is kept."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self, keep_data: bool = False) -> None:
        """Stop the server by its pid; remove a temporary data directory.

        :param keep_data: keep the data directory to :meth:`start` again.
        """
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if not keep_data and self._own_dir and self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(Server):
    """A private ``redis-server`` (no RDB snapshots).

    :param appendonly: keep an append-only file (AOF) in :attr:`directory`.
    :param appendfsync: ``always``, ``everysec`` or ``no`` (with ``appendonly``).
    :param directory: data directory; a temporary one by default.
    :param port: TCP port on 127.0.0.1; a free one by default.
    """

    kind = "redis"
    start_timeout = 10.0

    def __init__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        directory: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(directory, port)
        self.binary = shutil.which("redis-server")
        self.appendonly = appendonly
        self.appendfsync = appendfsync

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (no database number)."""
        return f"redis://127.0.0.1:{self.port}"

    def _missing(self) -> str | None:
        return None if self.binary else "redis-server is not installed"

    def _args(self) -> list[str]:
        assert self.binary is not None
        # No --logfile: the server logs to its stdout, that is redis.log.
        return [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", self.directory,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def _ready(self) -> bool:
        return _redis_pong(self.port)


class EtcdServer(Server):
    """A private single-member ``etcd`` (v3 API through its HTTP gateway).

    :param directory: data directory; a temporary one by default.
    :param port: client port on 127.0.0.1; a free one by default.
    """

    kind = "etcd"

    def __init__(
        self, *, directory: str | None = None, port: int | None = None
    ) -> None:
        super().__init__(directory, port)
        self.binary = shutil.which("etcd")
        self.peer_port = 0

    @property
    def url(self) -> str:
        """``etcd3+http://127.0.0.1:PORT``."""
        return f"etcd3+http://127.0.0.1:{self.port}"

    @property
    def client_url(self) -> str:
        """``http://127.0.0.1:PORT``, for direct HTTP calls."""
        return f"http://127.0.0.1:{self.port}"

    def _missing(self) -> str | None:
        if self.binary is None:
            return "etcd is not installed (Debian package etcd-server)"
        return None

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.peer_port = free_port()

    def _prepare(self) -> None:
        if not self.peer_port:
            self.peer_port = free_port()

    def _args(self) -> list[str]:
        assert self.binary is not None
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary,
            "--name", "test",
            "--data-dir", os.path.join(self.directory, "data"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"test={peer}",
            "--initial-cluster-token", f"storaged-test-{self.port}",
            "--initial-cluster-state", "new",
            "--log-level", "error",
            "--logger", "zap",
        ]  # fmt: skip

    def _ready(self) -> bool:
        return _etcd_healthy(self.port)


class ZooKeeperServer(Server):
    """A private standalone ZooKeeper.

    ``tickTime`` is 500 ms and the session timeouts allowed are 1 to 60 s,
    so that tests can use short session timeouts.

    :param directory: data directory; a temporary one by default.
    :param port: client port on 127.0.0.1; a free one by default.
    :param force_sync: fsync the transaction log on every write, as a
        production server does (off by default: faster tests).
    """

    kind = "zookeeper"
    tick_ms = 500

    def __init__(
        self,
        *,
        directory: str | None = None,
        port: int | None = None,
        force_sync: bool = False,
    ) -> None:
        super().__init__(directory, port)
        self.force_sync = force_sync
        self.java = shutil.which("java")
        self.jars = [j for j in ZOOKEEPER_JARS if os.path.exists(j)]

    @property
    def url(self) -> str:
        """``zookeeper://127.0.0.1:PORT``."""
        return f"zookeeper://127.0.0.1:{self.port}"

    @property
    def hosts(self) -> str:
        """``127.0.0.1:PORT``, for a kazoo client."""
        return f"127.0.0.1:{self.port}"

    def _missing(self) -> str | None:
        if self.java is None or not self.jars:
            return "ZooKeeper is not installed (Debian package zookeeper)"
        return None

    def _prepare(self) -> None:
        data = os.path.join(self.directory, "data")
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(self.directory, "zoo.cfg"), "w") as cfg:
            cfg.write(
                f"tickTime={self.tick_ms}\n"
                f"dataDir={data}\n"
                f"clientPort={self.port}\n"
                "clientPortAddress=127.0.0.1\n"
                f"minSessionTimeout={2 * self.tick_ms}\n"
                "maxSessionTimeout=60000\n"
                "admin.enableServer=false\n"
                "4lw.commands.whitelist=ruok,srvr,mntr,cons\n"
                # A transaction log fsync per write is the slowest part of a
                # test; losing the log on a machine crash does not matter here.
                "forceSync=%s\n" % ("yes" if self.force_sync else "no")
            )

    def _args(self) -> list[str]:
        assert self.java is not None
        return [
            self.java,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.log.dir=" + self.directory,
            "-cp", os.pathsep.join([self.directory, *self.jars]),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            os.path.join(self.directory, "zoo.cfg"),
        ]  # fmt: skip

    def _ready(self) -> bool:
        return _zk_ok(self.port)


def _session_server(server: _S) -> Iterator[_S]:
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server shared by the whole test session."""
    yield from _session_server(RedisServer())


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's private redis-server, without a database number."""
    return redis_server.url


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """A private etcd shared by the whole test session."""
    yield from _session_server(EtcdServer())


@pytest.fixture(scope="session")
def etcd_url(etcd_server: EtcdServer) -> str:
    """``etcd3+http://`` URL of the session's private etcd."""
    return etcd_server.url


@pytest.fixture(scope="session")
def zookeeper_server() -> Iterator[ZooKeeperServer]:
    """A private ZooKeeper shared by the whole test session."""
    yield from _session_server(ZooKeeperServer())


@pytest.fixture(scope="session")
def zookeeper_url(zookeeper_server: ZooKeeperServer) -> str:
    """``zookeeper://`` URL of the session's private ZooKeeper."""
    return zookeeper_server.url


def postgres_url() -> str:
    """URL of the PostgreSQL database of the tests (``$STORAGED_TEST_POSTGRES_URL``)."""
    return os.environ.get(POSTGRES_ENV) or POSTGRES_DEFAULT_URL


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A ``postgresql://`` URL with a schema of this test's own, dropped after it.

    An unreachable server skips the test, or fails it in CI (``CI`` set) or
    with ``STORAGED_REQUIRE_SERVERS=1``.
    """
    import uuid

    import psycopg

    base = postgres_url()
    schema = "t_" + uuid.uuid4().hex[:16]
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        reason = "PostgreSQL at {} is not reachable: {}".format(
            base.rpartition("@")[2], str(err).splitlines()[0] if str(err) else err
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (and CI is set)", pytrace=False)
        skip_or_fail(reason)
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}schema={schema}"
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()
