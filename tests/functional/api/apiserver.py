"""A real ``storaged-api`` process for tests and benchmarks.

Started as ``python -m storaged.cmd.api --config-file ...`` in a session of
its own, with a private state directory and port; ready when it sends
``READY=1`` to the notify socket the test gives it (systemd's protocol), and
stopped by its pid (SIGTERM, then SIGKILL to its process group if it does
not exit).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

USERS = {
    "test:tester": ("testing", ".admin"),
    "test:reader": ("r3ader", ""),
    "other:admin": ("otherkey", ".admin"),
}
REALM_KEY = "realm-key-1"
REALM_KEY2 = "realm-key-2"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children, whichever of its threads forked them."""
    found: list[int] = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                found += [int(p) for p in f.read().split()]
    except FileNotFoundError:
        if not os.path.exists("/proc/self/task/%d/children" % os.getpid()):
            import pytest

            pytest.skip("no /proc/<pid>/task/<tid>/children here")
    return sorted(found)


class ApiServer:
    """A ``storaged-api`` process with its own configuration.

    :param directory: where its state, configuration and log go.
    :param backend: ``eventlet`` or ``threading``.
    :param api: more ``[api]`` options.
    :param default: more ``[DEFAULT]`` options.
    :param env: more environment variables (``WATCHDOG_USEC``, ...).
    """

    def __init__(self, directory, backend="eventlet", api=None, default=None,
                 env=None):
        self.dir = str(directory)
        self.backend = backend
        self.port = free_port()
        self.conf = os.path.join(self.dir, "storaged.conf")
        self.log = os.path.join(self.dir, "api.log")
        self.realms = os.path.join(self.dir, "container-sync-realms.conf")
        self.api = {
            "bind_host": "127.0.0.1",
            "bind_port": str(self.port),
            "shutdown_timeout": "5",
            "client_timeout": "10",
            "realms_file": self.realms,
            "token_secret": "functional-tests",
            # One process unless a test asks for more ("auto", the default
            # of the option, is tested on its own): the tests look at it.
            "workers": "1",
        }
        self.api.update(api or {})
        self.default = {
            "state_path": os.path.join(self.dir, "state"),
            "log_file": self.log,
            "debug": "false",
        }
        self.default.update(default or {})
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._notify_dir = ""
        self._notify: socket.socket | None = None
        self.write_conf()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    @property
    def auth_url(self) -> str:
        return self.url + "/auth/v1.0"

    def write_conf(self) -> None:
        lines = ["[DEFAULT]"]
        lines += ["%s = %s" % kv for kv in self.default.items()]
        lines.append("[api]")
        lines += ["%s = %s" % kv for kv in self.api.items()]
        for login, (key, groups) in USERS.items():
            account, user = login.split(":")
            lines.append("user_%s_%s = %s %s" % (account, user, key, groups))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.realms, "w") as f:
            f.write("[us]\nkey = %s\nkey2 = %s\ncluster_here = %s/v1/\n"
                    % (REALM_KEY, REALM_KEY2, self.url))

    def args(self) -> list[str]:
        return [sys.executable, "-m", "storaged.cmd.api", "--config-file", self.conf]

    def start(self, timeout: float = 30.0, wait: bool = True) -> ApiServer:
        # A short path: AF_UNIX addresses are limited to 107 bytes.
        self._notify_dir = tempfile.mkdtemp(prefix="sd-api-")
        path = os.path.join(self._notify_dir, "notify")
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(path)
        env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=self.backend,
                   NOTIFY_SOCKET=path, **self.env)
        self.proc = subprocess.Popen(
            self.args(), cwd=ROOT, env=env,
            stdout=open(os.path.join(self.dir, "stdout"), "wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.kill()
                raise
        return self

    def notifications(self, timeout: float) -> list[str]:
        """Return the notify messages received within ``timeout`` seconds."""
        assert self._notify is not None
        self._notify.settimeout(timeout)
        messages = []
        try:
            while True:
                messages.append(self._notify.recv(4096).decode())
                self._notify.settimeout(0.05)
        except TimeoutError:
            pass
        return messages

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError("storaged-api exited with %s:\n%s"
                                   % (self.proc.returncode, self.output()))
            for message in self.notifications(0.2):
                if "READY=1" in message.split("\n"):
                    return
        raise RuntimeError("storaged-api sent no READY=1:\n" + self.output())

    def output(self) -> str:
        text = ""
        for name in ("stdout", "api.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f.read()
        return text

    def serving_pids(self) -> list[int]:
        """The processes that serve: the workers, or the server itself."""
        assert self.proc is not None
        return children(self.proc.pid) or [self.proc.pid]

    def signal(self, signo: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signo)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; return the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        finally:
            self.kill()
        return status

    def kill(self) -> None:
        """SIGKILL the process group (the server and any worker)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        if self._notify_dir:
            shutil.rmtree(self._notify_dir, ignore_errors=True)
            self._notify_dir = ""

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def connection(self, login: str = "test:tester", **kwargs):
        from swiftclient import client

        key = USERS[login][0]
        return client.Connection(self.auth_url, login, key, auth_version="1",
                                 retries=0, **kwargs)
