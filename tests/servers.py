"""Real servers for tests and benchmarks, started privately and stopped by pid.

:class:`RedisServer` runs a ``redis-server`` of its own on a free localhost
port, with its data in a temporary directory, and stops it by its pid (it
never touches another Redis).  Use it as a context manager::

    with RedisServer() as server:
        store = kvs.open_store(server.url + "/3")

The pytest fixtures below share one server per test session.  Register them
with ``pytest_plugins = ["tests.servers"]`` in the top ``conftest.py`` (or
import them into a ``conftest.py``).  When ``redis-server`` is not installed
the tests that need it are skipped, unless ``STORAGED_REQUIRE_SERVERS=1``
is set, in which case they fail.  Each user picks its own database number
and flushes only that one.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import pytest

REQUIRE_ENV = "STORAGED_REQUIRE_SERVERS"
START_TIMEOUT = 10.0


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


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    # -NOAUTH or -LOADING still mean "a redis is there"; only +PONG means ready.
    return reply.startswith(b"+PONG")


class RedisServer:
    """A private ``redis-server``.

    :param appendonly: keep an append-only file (AOF) in :attr:`directory`.
    :param appendfsync: ``always``, ``everysec`` or ``no`` (with ``appendonly``).
    :param directory: data directory; a temporary one (removed on stop) by
        default.  Pass the same directory and port to restart a server on
        its data.
    :param port: TCP port on 127.0.0.1; a free one by default.
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        directory: str | None = None,
        port: int | None = None,
    ) -> None:
        self.binary = shutil.which("redis-server")
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self._own_dir = directory is None
        self.directory = directory or ""
        self.port = port or 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (no database number)."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server."""
        return self.process.pid if self.process is not None else None

    def start(self) -> str:
        """Start the server and wait until it answers PING.

        :returns: :attr:`url`.
        :raises ServerMissing: ``redis-server`` is not installed.
        :raises RuntimeError: it did not come up in time.
        """
        if self.binary is None:
            raise ServerMissing("redis-server is not installed")
        if self._own_dir and not self.directory:
            self.directory = tempfile.mkdtemp(prefix="storaged-redis-")
        fixed_port = bool(self.port)
        for _attempt in range(3 if not fixed_port else 1):
            if not fixed_port:
                self.port = free_port()
            if self._launch():
                return self.url
        raise RuntimeError(
            f"redis-server did not start on port {self.port}; "
            f"see {os.path.join(self.directory, 'redis.log')}"
        )

    def _launch(self) -> bool:
        assert self.binary is not None
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", self.directory,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", os.path.join(self.directory, "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False  # most likely the port was taken meanwhile
            if _ping(self.port):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def kill(self) -> None:
        """SIGKILL the server (a crash); its data directory is kept."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the server by its pid and remove a temporary data directory."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._own_dir and self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server shared by the whole test session."""
    server = RedisServer()
    try:
        server.start()
    except ServerMissing as err:
        skip_or_fail(str(err))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's private redis-server, without a database number."""
    return redis_server.url
