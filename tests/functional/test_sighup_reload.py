"""SIGHUP re-reads the mutable options of every long-running daemon.

Each daemon runs as a real process on each concurrency backend.  Its
configuration file is rewritten with one mutable and one immutable option
changed, and SIGHUP is sent: the log must show oslo.config's line for the
mutable change and (periodic daemons) the loop using the new interval
(reloaded in place on eventlet, the service process restarted on threading),
oslo.config's "Ignoring
change to immutable option" for the other, and the process must go on
running (and stop cleanly on SIGTERM).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import urllib.error
import urllib.request

import pytest

from storaged import concurrency
from tests.functional.cache import tools


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: str) -> bool:
    try:
        urllib.request.urlopen("http://127.0.0.1:%s/info" % port, timeout=5).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _write(path, sections) -> None:
    lines = []
    for section, values in sections.items():
        lines.append("[%s]" % section)
        lines += ["%s = %s" % kv for kv in values.items()]
    path.write_text("\n".join(lines) + "\n")


def _base(tmp_path):
    return {
        "DEFAULT": {
            "state_path": tmp_path / "state",
            "node_id": "node-a",
            "log_file": tmp_path / "storaged.log",
            "debug": "false",
            "graceful_shutdown_timeout": "60",
        },
        "daemon": {"stop_timeout": "10"},
        "kvs": {"backend_url": "sqlite:///%s" % (tmp_path / "state.sqlite")},
        "coordination": {"backend_url": "file://%s" % (tmp_path / "coordination")},
    }


def _sync(tmp_path):
    conf = _base(tmp_path)
    conf["sync"] = {"interval": "30.0", "batch_size": "1000"}
    changed = {"sync": {"interval": "45.0", "batch_size": "500"}}
    return "storaged.cmd.sync", conf, changed, [
        r"Option sync\.interval changed from \[30\.0\] to \[45\.0\]",
        r"sync reloaded its configuration \(interval 45\.0s\)",
        r"Ignoring change to immutable option sync\.batch_size",
    ]


def _heartbeat(tmp_path):
    conf = _base(tmp_path)
    conf["heartbeat"] = {"publish_interval": "10.0", "group": "storaged"}
    changed = {"heartbeat": {"publish_interval": "20.0", "group": "other"}}
    return "storaged.cmd.heartbeat", conf, changed, [
        r"Option heartbeat\.publish_interval changed from \[10\.0\] to \[20\.0\]",
        r"reloaded its configuration \(interval 20\.0s\)",
        r"Ignoring change to immutable option heartbeat\.group",
    ]


def _cache(tmp_path):
    conf = _base(tmp_path)
    conf["DEFAULT"]["enabled_backends"] = "local:file"
    conf["store"] = {"default_backend": "local"}
    conf["local"] = {"cache": "true"}
    conf["cache"] = {"prune_interval": "30", "clean_interval": "30",
                     "prefetch_interval": "30", "min_free_space": "0",
                     "max_size": "0", "shared_dir": "false"}
    changed = {"cache": {"prune_interval": "40", "shared_dir": "true"}}
    return "storaged.cmd.cache", conf, changed, [
        r"Option cache\.prune_interval changed from \[30\] to \[40\]",
        r"cache-prune reloaded its configuration \(interval 40\.0s\)",
        r"Ignoring change to immutable option cache\.shared_dir",
    ]


def _api(tmp_path):
    conf = _base(tmp_path)
    port = _free_port()
    conf["api"] = {"bind_host": "127.0.0.1", "bind_port": str(port),
                   "shutdown_timeout": "5", "token_secret": "functional-tests",
                   "max_clients": "1024"}
    # [DEFAULT] debug is oslo.log's mutable option (its mutate hook sets
    # the root log level again); no [api] option is mutable.
    changed = {"DEFAULT": {"debug": "true"}, "api": {"max_clients": "512"}}
    return "storaged.cmd.api", conf, changed, [
        r"Option DEFAULT\.debug changed from \[[Ff]alse\] to \[[Tt]rue\]",
        r"Ignoring change to immutable option api\.max_clients",
    ]


def _merge(conf, changed):
    for section, values in changed.items():
        conf.setdefault(section, {}).update(values)
    return conf


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
@pytest.mark.parametrize("daemon", [_sync, _heartbeat, _cache, _api],
                         ids=["sync", "heartbeat", "cache", "api"])
def test_sighup_applies_mutable_options_and_reports_immutable(tmp_path, daemon,
                                                              backend):
    module, conf, changed, expected = daemon(tmp_path)
    if backend == concurrency.THREADING:
        # The supervisor restarts the service process on the new options.
        expected = [p.replace(r"reloaded its configuration \(", r"started \(.*")
                    for p in expected]
    path = tmp_path / "storaged.conf"
    log = tmp_path / "storaged.log"
    _write(path, conf)
    out = open(tmp_path / "daemon.out", "w")
    proc = tools.spawn(module, "--config-file", str(path), backend=backend,
                       stdout=out)
    try:
        def text() -> str:
            return log.read_text() if log.exists() else ""

        started = {"storaged.cmd.api": r"listening on",
                   "storaged.cmd.cache": r"cache-prune started \(pid"}.get(
                       module, r"started \(pid")
        tools.wait_for(lambda: re.search(started, text()), "start-up",
                       procs=[proc])
        if module == "storaged.cmd.api":
            # "listening on" comes before the launcher takes SIGHUP over:
            # a request answered means it has.
            tools.wait_for(lambda: _answers(conf["api"]["bind_port"]), "a request",
                           procs=[proc])
        before = len(text())
        _write(path, _merge(conf, changed))
        proc.send_signal(signal.SIGHUP)
        for pattern in expected:
            tools.wait_for(lambda p=pattern: re.search(p, text()[before:]),
                           "%r in the log" % pattern, timeout=30, procs=[proc])
        assert proc.poll() is None, "the daemon died on SIGHUP"
        assert "Traceback" not in text()[before:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()
