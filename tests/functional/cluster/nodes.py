"""Storage nodes of one cluster, on one machine: each its own processes.

A :class:`ClusterNode` has its own ``state_path`` and ``node_id`` and one
configuration file that every daemon of the node reads; what the nodes
share is in that file too: the data back end (a Swift cluster), the catalog
and the state store (PostgreSQL) and coordination (Redis).  Each node runs
``storaged-api`` (:class:`NodeApi`, started and stopped as the API tests'
:class:`~tests.functional.api.apiserver.ApiServer`), and on demand
``storaged-sync`` and ``storaged-heartbeat`` processes (:class:`Daemon`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.functional.api.apiserver import REALM_KEY
from tests.functional.api.apiserver import ROOT
from tests.functional.api.apiserver import ApiServer

Sections = dict[str, dict[str, str]]


def ini(sections: Sections) -> str:
    lines: list[str] = []
    for name, options in sections.items():
        lines.append("[%s]" % name)
        lines += ["%s = %s" % kv for kv in options.items()]
    return "\n".join(lines) + "\n"


class NodeApi(ApiServer):
    """``storaged-api`` of a node: the API tests' server, with the shared sections.

    :param sections: more sections of the node's configuration file.
    :param clusters: realm ``us`` clusters (name -> URL) the node syncs to.
    """

    def __init__(self, directory, node_id: str, sections: Sections,
                 clusters: dict[str, str], **kwargs) -> None:
        self.node_id = node_id
        self.sections = sections
        self.clusters = clusters
        default = dict(kwargs.pop("default", None) or {}, node_id=node_id)
        super().__init__(directory, default=default, **kwargs)

    def write_conf(self) -> None:
        super().write_conf()
        with open(self.conf, "a") as f:
            f.write(ini(self.sections))
        with open(self.realms, "w") as f:
            f.write("[us]\nkey = %s\n" % REALM_KEY)
            for name, url in self.clusters.items():
                f.write("cluster_%s = %s/v1/\n" % (name, url))


class Daemon:
    """A periodic daemon of a node (``storaged-sync``, ``storaged-heartbeat``)."""

    def __init__(self, node: NodeApi, command: str) -> None:
        self.node = node
        self.command = command
        self.stdout = os.path.join(node.dir, "%s.stdout" % command)
        self.log = os.path.join(node.dir, "%s.log" % command)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet")
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storaged.cmd.%s" % self.command,
             "--config-file", self.node.conf, "--log-file", self.log],
            cwd=ROOT, env=env, stdout=open(self.stdout, "ab"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the daemon's process group."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def output(self) -> str:
        text = ""
        for path in (self.stdout, self.log):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += f.read()[-4000:]
        return text


def manage(node: NodeApi, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``storaged-manage`` with the node's configuration."""
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run(
        [sys.executable, "-m", "storaged.manage.cli", "--config-file", node.conf,
         *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
