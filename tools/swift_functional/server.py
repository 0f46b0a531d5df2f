"""A real ``storaged-api`` for Swift's suite to talk to.

Its configuration sets only what differs from the embedded defaults (file
object store, SQLite catalog and state store, ``file://`` coordination, all
under ``state_path``): the loopback address and a free port, the users of
:mod:`.testconf`, a token secret and a short shutdown timeout. It is
started as ``storaged-api --config-file <dir>/storaged.conf`` in a session
of its own, ready once ``GET /info`` answers 200, and stopped with SIGTERM
(SIGKILL to its process group if it has not exited after a while).
"""

from __future__ import annotations

from collections.abc import Iterable
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

from tools.swift_functional import testconf


def free_port() -> int:
    """Return a TCP port free on the loopback address right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_config(
    state_path: str, log_file: str, port: int, users: Iterable[testconf.User]
) -> str:
    """Return the text of the server's configuration file."""
    lines = [
        "[DEFAULT]",
        "state_path = %s" % state_path,
        "log_file = %s" % log_file,
        "",
        "[api]",
        "bind_host = 127.0.0.1",
        "bind_port = %d" % port,
        "token_secret = %s" % secrets.token_hex(16),
        "shutdown_timeout = 5",
    ]
    lines += ["%s = %s" % user.storaged_option for user in users]
    return "\n".join(lines) + "\n"


def _script(name: str) -> str:
    """The console script installed beside this Python, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.exists(beside) else (shutil.which(name) or name)


class ApiServer:
    """A ``storaged-api`` process with its own directory.

    :param directory: where its configuration, state and logs go.
    :param users: the users to configure.
    """

    def __init__(
        self, directory: str, users: Iterable[testconf.User] = testconf.USERS
    ) -> None:
        self.dir = directory
        self.port = free_port()
        self.conf = os.path.join(directory, "storaged.conf")
        self.log = os.path.join(directory, "api.log")
        self.stdout = os.path.join(directory, "api.stdout")
        self.users = tuple(users)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return "http://127.0.0.1:%d" % self.port

    @property
    def auth_uri(self) -> str:
        """The tempauth-style v1 auth endpoint."""
        return self.url + "/auth/v1.0"

    def start(self, timeout: float = 60.0) -> None:
        """Write the configuration, start the server and wait until it answers.

        :raises RuntimeError: it exited, or did not answer within ``timeout``.
        """
        os.makedirs(self.dir, exist_ok=True)
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(render_config(os.path.join(self.dir, "state"), self.log,
                                  self.port, self.users))
        with open(self.stdout, "wb") as out:
            self.proc = subprocess.Popen(
                [_script("storaged-api"), "--config-file", self.conf],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("storaged-api exited with status %s:\n%s"
                                   % (self.proc.returncode, self.output()))
            if self._answers():
                return
            time.sleep(0.2)
        self.kill()
        raise RuntimeError("storaged-api did not answer GET /info within %ds:\n%s"
                           % (timeout, self.output()))

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/info")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def alive(self) -> bool:
        """Tell whether the server process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def output(self, limit: int = 4000) -> str:
        """Return the end of the server's output and log."""
        text = ""
        for path in (self.stdout, self.log):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f.read()
        return text[-limit:]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the server and wait; return its exit status.

        A server still running after ``timeout`` seconds is killed (with its
        process group) and reported as ``-SIGKILL``.
        """
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -signal.SIGKILL
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server's process group, whatever is left of it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
