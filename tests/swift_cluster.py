"""A real Swift cluster on loopback, from Debian's packages, with S3 on it.

The coming ``swift`` and ``s3`` store drivers are tested against a real
server, and the benchmarks measure storaged against one: this module starts
it.  :class:`SwiftCluster` runs, each as its own process on a free
``127.0.0.1`` port:

* ``memcached`` (tempauth keeps its tokens there; Debian package
  ``memcached``),
* an account, a container and an object server (one device each, a plain
  directory: ``mount_check = false``; one replica, one zone),
* a proxy server with Swift's usual middleware pipeline, ``tempauth`` for
  Swift's v1 auth and ``s3api`` for S3 (same accounts, same data).

Everything lives under the directory given to it: the configuration
(``etc/``: the ``*.conf`` files, ``swift.conf`` with a random hash path
suffix and prefix, the rings built with ``swift-ring-builder``), the devices
(``srv/``) and one log per process (``log/``).  The machine's
``/etc/swift`` is never read: Swift 2.30 reads ``swift.conf`` from a fixed
path, so each server is launched through a few lines of Python that point
Swift at the private one (:data:`_LAUNCHER`) before anything else is
imported.

One user, ``test:tester`` with key ``testing`` (an ``.admin`` of account
``AUTH_test``), authenticates both ways: v1 auth at :attr:`auth_url` (or
:meth:`SwiftCluster.token`), and S3 with access key ``test:tester`` and
secret ``testing`` (:attr:`s3_credentials`) at :attr:`s3_endpoint`, path
style, region ``us-east-1``.  Swift 2.30's ``s3api`` predates the flexible
checksums that recent botocore sends by default; an S3 client must be told
to send them only when required (:data:`S3_CLIENT_CONFIG`).

Every process is started in its own session (a process group of its own,
with any worker it forks) and with a parent-death signal, so that
:meth:`SwiftCluster.stop` stops each group by its id, and a test process
that dies without stopping the cluster takes the servers with it: no
orphan keeps a port.

The pytest fixture :func:`swift_cluster` shares one cluster per test
session, whichever directories its tests are in (this module is a pytest
plugin of ``tests/conftest.py``; importing the fixture into a
``conftest.py`` would start a cluster per directory).  When Swift or
memcached is not installed the tests that need them are skipped, and fail
instead in CI (``CI`` set) or with ``STORAGED_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import ctypes
import http.client
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

import pytest

from tests.servers import skip_or_fail

#: The v1 auth user, its key, and the account it administers.
USER = "test:tester"
KEY = "testing"
ACCOUNT = "AUTH_test"

#: The S3 region s3api answers for (its default ``location``).
S3_REGION = "us-east-1"

#: Keyword arguments for ``botocore.config.Config`` that make boto3 speak the
#: S3 that Swift 2.30's s3api understands: path-style buckets, and checksums
#: (with their ``aws-chunked`` bodies) only where the operation requires them.
S3_CLIENT_CONFIG: dict[str, Any] = {
    "s3": {"addressing_style": "path"},
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
    "retries": {"max_attempts": 1},
}

#: The proxy's middleware, in Swift's recommended order (all are in 2.30).
PIPELINE = (
    "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats"
    " bulk tempurl ratelimit s3api tempauth copy container-quotas"
    " account-quotas slo dlo versioned_writes symlink proxy-logging"
    " proxy-server"
)

#: Filter section name -> the egg entry point it uses.
_FILTERS = {
    "catch_errors": "catch_errors",
    "gatekeeper": "gatekeeper",
    "healthcheck": "healthcheck",
    "proxy-logging": "proxy_logging",
    "listing_formats": "listing_formats",
    "bulk": "bulk",
    "tempurl": "tempurl",
    "ratelimit": "ratelimit",
    "copy": "copy",
    "container-quotas": "container_quotas",
    "account-quotas": "account_quotas",
    "slo": "slo",
    "dlo": "dlo",
    "versioned_writes": "versioned_writes",
    "symlink": "symlink",
}

#: Runs one Swift server on a private ``swift.conf``:
#: ``python3 -c _LAUNCHER SWIFT_DIR CONF_FILE APP_SECTION``.  ``swift.conf``
#: must be set before Swift's constraints and storage policies are imported,
#: since they read it at import time.  A worker the server forks gets
#: SIGKILL when the server dies (and quits at once if that already happened),
#: as the server itself does when the process that started it dies.
_LAUNCHER = """\
import ctypes, os, signal, sys
parent = [os.getpid()]
def remember():
    parent[0] = os.getpid()
def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    if os.getppid() != parent[0]:
        os._exit(1)
os.register_at_fork(before=remember, after_in_child=die_with_parent)
from swift.common import utils
utils.set_swift_dir(sys.argv[1])
from swift.common.wsgi import run_wsgi
sys.exit(run_wsgi(sys.argv[2], sys.argv[3], verbose=True))
"""

#: The Debian packages the cluster is made of.
PACKAGES = (
    "swift swift-proxy swift-account swift-container swift-object"
    " python3-lxml memcached"
)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In a child before exec: get SIGKILL when the test process dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(
            _PR_SET_PDEATHSIG, signal.SIGKILL
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def _answers(port: int) -> bool:
    """Whether an HTTP server answers on the port (any status)."""
    try:
        _http(port, "GET", "/healthcheck", timeout=1.0)
    except (OSError, http.client.HTTPException):
        return False
    return True


def _memcached_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"version\r\n")
            return s.recv(64).startswith(b"VERSION")
    except OSError:
        return False


def _ini(sections: dict[str, dict[str, str]]) -> str:
    out = []
    for name, options in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{key} = {value}" for key, value in options.items())
        out.append("")
    return "\n".join(out)


def missing() -> str | None:
    """Why the cluster cannot run on this machine, or None."""
    for tool in (
        "swift-ring-builder",
        "swift-proxy-server",
        "swift-account-server",
        "swift-container-server",
        "swift-object-server",
        "memcached",
    ):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages: {PACKAGES})"
    return None


def _swift_python() -> str:
    """The interpreter Debian's Swift runs on (the scripts' shebang)."""
    script = shutil.which("swift-proxy-server")
    assert script is not None
    with open(script, "rb") as f:
        first = f.readline().decode().strip()
    if first.startswith("#!"):
        return first[2:].strip().split()[0]
    return "/usr/bin/python3"


class SwiftCluster:
    """A one-replica Swift cluster with tempauth and s3api, on loopback.

    :param directory: where configuration, devices and logs go (it is
        created if missing and never removed: it belongs to the caller).
    :param workers: ``workers`` of each Swift server; 0 (the default) serves
        in the server's own process, ``N`` forks N workers (each server's
        process group holds them).
    :param start_timeout: seconds to wait for the whole cluster to answer.
    """

    #: the servers behind the proxy, in start order
    BACKENDS = ("account", "container", "object")

    def __init__(
        self, directory: str, *, workers: int = 0, start_timeout: float = 60.0
    ) -> None:
        self.directory = os.path.abspath(directory)
        self.workers = workers
        self.start_timeout = start_timeout
        self.ports: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- what clients use ---------------------------------------------------

    @property
    def proxy_port(self) -> int:
        """The proxy's port (Swift API, v1 auth and S3)."""
        return self.ports["proxy"]

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, the proxy."""
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def auth_url(self) -> str:
        """The v1 auth URL (tempauth): ``.../auth/v1.0``."""
        return self.endpoint + "/auth/v1.0"

    @property
    def storage_url(self) -> str:
        """The storage URL of :data:`ACCOUNT`."""
        return f"{self.endpoint}/v1/{ACCOUNT}"

    @property
    def s3_endpoint(self) -> str:
        """The S3 endpoint URL (s3api on the proxy; path-style buckets)."""
        return self.endpoint

    @property
    def s3_credentials(self) -> tuple[str, str]:
        """``(access key, secret key)`` of :data:`USER` for S3."""
        return USER, KEY

    def token(self, user: str = USER, key: str = KEY) -> str:
        """A fresh auth token for ``user`` (v1 auth against the proxy)."""
        status, headers, _body = _http(
            self.proxy_port,
            "GET",
            "/auth/v1.0",
            {"X-Auth-User": user, "X-Auth-Key": key},
        )
        if status // 100 != 2 or "x-auth-token" not in headers:
            raise RuntimeError(f"v1 auth for {user} answered {status}")
        return headers["x-auth-token"]

    def log_path(self, name: str) -> str:
        """The log file of one process (``proxy``, ``object``, ...)."""
        return os.path.join(self.directory, "log", name + ".log")

    # -- life cycle ---------------------------------------------------------

    def start(self) -> SwiftCluster:
        """Write the configuration, build the rings, start and wait.

        Ports are picked free just before the rings are built; should one be
        taken by the time its server binds it, the whole cluster is stopped
        and set up again on new ports (three attempts).

        :raises RuntimeError: the cluster did not answer in time (the logs
            under ``log/`` say why).
        """
        why = missing()
        if why:
            raise RuntimeError(why)
        for _attempt in range(3):
            self._pick_ports()
            self._write_config()
            self._build_rings()
            if self._launch_all():
                return self
            self.stop()
        raise RuntimeError(
            f"the Swift cluster did not start; see {self.directory}/log"
        )

    def stop(self) -> None:
        """Stop every process (SIGTERM to its group, then SIGKILL)."""
        for name in reversed(list(self.processes)):
            self._stop_one(name)
        self.processes.clear()

    def _stop_one(self, name: str) -> None:
        proc = self.processes.get(name)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (a worker the parent did not reap)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)

    def __enter__(self) -> SwiftCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- set-up -------------------------------------------------------------

    def _pick_ports(self) -> None:
        names = ("memcached", *self.BACKENDS, "proxy")
        while True:
            self.ports = {name: _free_port() for name in names}
            if len(set(self.ports.values())) == len(names):
                return

    def _path(self, *parts: str) -> str:
        return os.path.join(self.directory, *parts)

    def _write_config(self) -> None:
        for sub in ("etc", "log", "run", os.path.join("srv", "d1")):
            os.makedirs(self._path(sub), exist_ok=True)
        with open(self._path("etc", "swift.conf"), "w") as f:
            f.write(
                _ini(
                    {
                        "swift-hash": {
                            "swift_hash_path_suffix": secrets.token_hex(16),
                            "swift_hash_path_prefix": secrets.token_hex(16),
                        },
                        "storage-policy:0": {
                            "name": "Policy-0",
                            "default": "yes",
                        },
                        "swift-constraints": {},
                    }
                )
            )
        for server in self.BACKENDS:
            self._write_server_conf(
                server,
                {
                    "pipeline:main": {"pipeline": f"{server}-server"},
                    f"app:{server}-server": {"use": f"egg:swift#{server}"},
                    f"{server}-replicator": {},
                    f"{server}-auditor": {},
                },
            )
        sections: dict[str, dict[str, str]] = {
            "pipeline:main": {"pipeline": PIPELINE},
            "app:proxy-server": {
                "use": "egg:swift#proxy",
                "account_autocreate": "true",
                "allow_account_management": "true",
            },
            "filter:cache": {
                "use": "egg:swift#memcache",
                "memcache_servers": f"127.0.0.1:{self.ports['memcached']}",
            },
            "filter:tempauth": {
                "use": "egg:swift#tempauth",
                "user_test_tester": f"{KEY} .admin",
                "user_admin_admin": "admin .admin .reseller_admin",
            },
            "filter:s3api": {
                "use": "egg:swift#s3api",
                "location": S3_REGION,
            },
        }
        for name, egg in _FILTERS.items():
            sections[f"filter:{name}"] = {"use": f"egg:swift#{egg}"}
        self._write_server_conf("proxy", sections)

    def _write_server_conf(
        self, server: str, sections: dict[str, dict[str, str]]
    ) -> None:
        default = {
            "bind_ip": "127.0.0.1",
            "bind_port": str(self.ports[server]),
            "workers": str(self.workers),
            "user": pwd.getpwuid(os.getuid()).pw_name,
            "swift_dir": self._path("etc"),
            "devices": self._path("srv"),
            "mount_check": "false",
            "log_name": f"{server}-server",
            # Swift logs to syslog: keep that quiet; errors reach the
            # process's stderr (``log/SERVER.log``) with ``verbose``.
            "log_level": "WARNING",
            "recon_cache_path": self._path("run"),
        }
        with open(self._path("etc", f"{server}-server.conf"), "w") as f:
            f.write(_ini({"DEFAULT": default, **sections}))

    def _build_rings(self) -> None:
        etc = self._path("etc")
        for server in self.BACKENDS:
            builder = os.path.join(etc, f"{server}.builder")
            for name in (builder, os.path.join(etc, f"{server}.ring.gz")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
            device = f"r1z1-127.0.0.1:{self.ports[server]}/d1"
            for args in (
                ["create", "8", "1", "1"],
                ["add", device, "1"],
                ["rebalance"],
            ):
                # rebalance exits 1 on a warning (one zone, one device)
                result = subprocess.run(
                    ["swift-ring-builder", builder, *args],
                    cwd=etc,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    check=False,
                )
                if result.returncode > 1:
                    raise RuntimeError(
                        f"swift-ring-builder {server} {args[0]} failed: "
                        + result.stdout.decode(errors="replace")
                        + result.stderr.decode(errors="replace")
                    )

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.log_path(name), "ab") as log:
            self.processes[name] = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _launch_all(self) -> bool:
        self._spawn(
            "memcached",
            [
                "memcached",
                "-l", "127.0.0.1",
                "-p", str(self.ports["memcached"]),
                "-U", "0",
                "-m", "64",
                # memcached refuses to run as root unless told whom to be
                "-u", pwd.getpwuid(os.getuid()).pw_name,
            ],
        )  # fmt: skip
        python = _swift_python()
        for server in (*self.BACKENDS, "proxy"):
            self._spawn(
                server,
                [
                    python,
                    "-c",
                    _LAUNCHER,
                    self._path("etc"),
                    self._path("etc", f"{server}-server.conf"),
                    f"{server}-server",
                ],
            )
        deadline = time.monotonic() + self.start_timeout
        waiting = dict(self.ports)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                if self.processes[name].poll() is not None:
                    return False  # most likely its port was taken meanwhile
                check = _memcached_up if name == "memcached" else _answers
                if check(waiting[name]):
                    del waiting[name]
            if waiting:
                time.sleep(0.05)
        if waiting:
            return False
        return self._serves(deadline)

    def _serves(self, deadline: float) -> bool:
        """Whether the proxy passes health check, auth and an account HEAD."""
        while time.monotonic() < deadline:
            try:
                status, _h, body = _http(self.proxy_port, "GET", "/healthcheck")
                if status == 200 and body == b"OK":
                    status, _h, _b = _http(
                        self.proxy_port,
                        "HEAD",
                        f"/v1/{ACCOUNT}",
                        {"X-Auth-Token": self.token()},
                    )
                    if status // 100 == 2:
                        return True
            except (OSError, http.client.HTTPException, RuntimeError):
                pass
            time.sleep(0.1)
        return False


@pytest.fixture(scope="session")
def swift_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SwiftCluster]:
    """One Swift cluster (with S3) for the test session, stopped at its end.

    Skipped when Swift is not installed, a failure instead in CI (``CI``
    set) or with ``STORAGED_REQUIRE_SERVERS=1``.
    """
    why = missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (and CI is set)", pytrace=False)
        skip_or_fail(why)
    cluster = SwiftCluster(str(tmp_path_factory.mktemp("swift-cluster")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


if __name__ == "__main__":  # pragma: no cover - a manual aid
    import tempfile

    with SwiftCluster(tempfile.mkdtemp(prefix="swift-cluster-")) as c:
        print("auth_url", c.auth_url, "user", USER, "key", KEY)
        print("s3_endpoint", c.s3_endpoint, "credentials", c.s3_credentials)
        print("logs in", os.path.join(c.directory, "log"), file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
