"""/metrics scraped from real daemons, and the textfile of a ``--once`` run.

* ``storaged-api`` under a few requests, on both backends, with one and
  with two workers: the request counter, the latency histogram and the
  bytes move, and the figures of the two workers add up in the parent's
  ``/metrics`` (prometheus_client's multiprocess mode);
* a periodic daemon (``storaged-expirer``) serves its pass figures on both
  backends (under threading, from the child that makes the passes);
* ``storaged-sync --once`` writes ``<textfile_dir>/sync-<node>.prom``
  with its pass and sync figures;
* a ``metrics_port`` in use stops the start with one line (status 2).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
import pytest

from tests.functional.api.apiserver import ROOT
from tests.functional.api.apiserver import ApiServer
from tests.functional.api.apiserver import free_port

BACKENDS = ["eventlet", "threading"]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` on ``port``: {(name, labels): value}."""
    text = urllib.request.urlopen(
        "http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s" % what)


class MeteredApi(ApiServer):
    """``storaged-api`` with a ``metrics_port`` (and more sections)."""

    def __init__(self, directory, backend, workers=1, extra=""):
        self.metrics_port = free_port()
        self.extra = extra
        super().__init__(directory, backend=backend, api={
            "workers": str(workers), "metrics_port": str(self.metrics_port)})

    def write_conf(self) -> None:
        super().write_conf()
        with open(self.conf, "a") as f:
            f.write(self.extra)


def _requests(server, n_puts, body=b"x" * 1000):
    conn = server.connection()
    conn.put_container("m")
    for i in range(n_puts):
        conn.put_object("m", "o%d" % i, body)
    for i in range(n_puts):
        conn.get_object("m", "o%d" % i)
    conn.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("workers", [1, 2])
def test_api_requests_move_the_figures(tmp_path, backend, workers):
    server = MeteredApi(tmp_path, backend, workers)
    with server:
        assert server.metrics_port != server.port
        before = scrape(server.metrics_port)
        # Several connections, so that with two workers both serve some.
        for _ in range(4):
            _requests(server, 5)
        # A wrong key: an authentication failure.
        req = urllib.request.Request(server.auth_url, headers={
            "X-Auth-User": "test:tester", "X-Auth-Key": "wrong"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(req, timeout=10)

        def moved():
            after = scrape(server.metrics_port)
            puts = sample(after, "storaged_api_requests_total", method="PUT",
                          status="2xx") - sample(before, "storaged_api_requests_total",
                                                 method="PUT", status="2xx")
            return after if puts >= 4 * 6 and sample(
                after, "storaged_api_auth_failures_total") >= 1 else None

        after = wait_for(moved, "the request counter to move")
        assert sample(after, "storaged_api_requests_total", method="GET",
                      status="2xx") >= 20
        assert sample(after, "storaged_api_received_bytes_total",
                      method="PUT") >= 20 * 1000
        assert sample(after, "storaged_api_sent_bytes_total",
                      method="GET") >= 20 * 1000
        assert sample(after, "storaged_api_request_duration_seconds_count",
                      method="PUT") >= 24
        assert sample(after, "storaged_api_requests_in_progress") == 0
        # Nothing per account or object in the label values.
        names = " ".join(repr(k) for k in after)
        assert "AUTH_test" not in names and "o1" not in names
        if workers == 2:
            _both_workers_add_up(server)
        assert server.stop() == 0


def _access_lines(server):
    return [line for line in open(server.log) if "storaged.api.access" in line]


def _both_workers_add_up(server):
    """Requests served by two processes; the parent's /metrics counts them all."""
    def info():
        # A connection of its own each: the kernel hands new connections to
        # whichever worker accepts first.
        urllib.request.urlopen(server.url + "/info", timeout=10).read()

    for _ in range(30):
        threads = [threading.Thread(target=info) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pids = {int(line.split()[2]) for line in _access_lines(server)}
        if len(pids) == 2:
            break
    assert len(pids) == 2, pids

    def counted():
        total = sum(v for (name, _labels), v in scrape(server.metrics_port).items()
                    if name == "storaged_api_requests_total")
        return total if total == len(_access_lines(server)) else None

    wait_for(counted, "/metrics to count every request of both workers")
    files = os.listdir(os.path.join(server.default["state_path"], "metrics", "api"))
    assert len({f.rsplit("_", 1)[-1] for f in files if f.startswith("counter")}) >= 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_periodic_daemon_serves_its_pass_figures(tmp_path, backend):
    port = free_port()
    conf = tmp_path / "expirer.conf"
    state = tmp_path / "state"
    conf.write_text("\n".join([
        "[DEFAULT]",
        "state_path = %s" % state,
        "node_id = n1",
        "log_file = %s" % (tmp_path / "expirer.log"),
        "[coordination]",
        "backend_url = file://%s" % (state / "coordination"),
        "[expirer]",
        "interval = 0.3",
        "metrics_port = %d" % port,
    ]) + "\n")
    env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=backend)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "storaged.cmd.expirer", "--config-file", str(conf)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        d = {"daemon": "expirer"}

        def passes():
            got = scrape(port)
            return got if sample(got, "storaged_passes_total", outcome="ok",
                                 **d) >= 2 else None

        got = wait_for(passes, "two passes in /metrics")
        assert sample(got, "storaged_daemon_up", **d) == 1
        assert sample(got, "storaged_last_success_timestamp_seconds",
                      **d) > time.time() - 60
        assert sample(got, "storaged_pass_duration_seconds_count", **d) >= 2
        later = wait_for(lambda: (lambda s: s if sample(
            s, "storaged_passes_total", outcome="ok", **d) > sample(
            got, "storaged_passes_total", outcome="ok", **d) else None)(scrape(port)),
            "the pass counter to move")
        assert sample(later, "storaged_last_pass_timestamp_seconds", **d) > sample(
            got, "storaged_last_pass_timestamp_seconds", **d)
        # SIGHUP (a service restarted in place, or a new child) keeps serving.
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(1.0)
        wait_for(lambda: sample(scrape(port), "storaged_daemon_up", **d) == 1,
                 "/metrics after SIGHUP")
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, 15)
        assert proc.wait(timeout=60) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_cache_daemon_and_a_cron_prune(tmp_path, backend):
    port = free_port()
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    conf = tmp_path / "cache.conf"
    conf.write_text("\n".join([
        "[DEFAULT]",
        "state_path = %s" % (tmp_path / "state"),
        "node_id = n1",
        "log_file = %s" % (tmp_path / "cache.log"),
        "[cache]",
        "prune_interval = 1",
        "clean_interval = 1",
        "prefetch_interval = 1",
        "metrics_port = %d" % port,
        "[metrics]",
        "textfile_dir = %s" % textfiles,
    ]) + "\n")
    env = dict(os.environ, STORAGED_CONCURRENCY_BACKEND=backend)
    env.pop("NOTIFY_SOCKET", None)
    cmd = [sys.executable, "-m", "storaged.cmd.cache", "--config-file", str(conf)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # The three loops of one process, each with its own daemon label.
        def all_three():
            got = scrape(port)
            return all(sample(got, "storaged_passes_total", daemon=name,
                              outcome="ok") >= 1
                       for name in ("cache-prune", "cache-clean", "cache-prefetch"))

        wait_for(all_three, "passes of the three cache loops")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert os.listdir(textfiles) == []  # a daemon writes no textfile
    result = subprocess.run(
        [sys.executable, "-m", "storaged.cmd.cache", "prune", "--config-file",
         str(conf)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = (textfiles / "cache-prune-n1.prom").read_text()
    assert 'storaged_passes_total{daemon="cache-prune",outcome="ok"} 1.0' in text


def test_port_in_use_is_one_line(tmp_path):
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        server = MeteredApi(tmp_path, "eventlet")
        server.api["metrics_port"] = str(port)
        server.write_conf()
        result = subprocess.run(server.args(), cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
    finally:
        busy.close()
    assert result.returncode == 2, result.stderr
    # (The test configuration's deprecated realms_file has a line of its own.)
    lines = [line for line in result.stderr.splitlines()
             if not line.startswith("Deprecated:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("storaged-api: ")
    assert "[api] metrics_port" in lines[0] and str(port) in lines[0]


def test_sync_once_writes_a_textfile(tmp_path):
    from tests.functional.sync.cluster import SYNC_KEY
    from tests.functional.sync.cluster import SyncDaemon
    from tests.functional.sync.cluster import write_realms

    (tmp_path / "target").mkdir()
    (tmp_path / "source").mkdir()
    target = ApiServer(tmp_path / "target")
    source = ApiServer(tmp_path / "source")
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    target.start()
    try:
        write_realms(source.realms, target)
        source.start()
        src = source.connection()
        target.connection().put_container("t", headers={
            "X-Container-Sync-Key": SYNC_KEY})
        src.put_container("s", headers={
            "X-Container-Sync-To": "//us/dst/AUTH_test/t",
            "X-Container-Sync-Key": SYNC_KEY})
        for i in range(3):
            src.put_object("s", "o%d" % i, b"abc")
        daemon = SyncDaemon(source, metrics_port=free_port())
        with open(daemon.conf, "a") as f:
            f.write("[metrics]\ntextfile_dir = %s\n" % textfiles)
        result = daemon.once()
        assert result.returncode == 0, result.stderr
    finally:
        source.kill()
        target.kill()
    names = os.listdir(textfiles)
    assert names == ["sync-node-a.prom"], names
    got = {}
    for family in text_string_to_metric_families((textfiles / names[0]).read_text()):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert sample(got, "storaged_passes_total", daemon="sync", outcome="ok") == 1
    assert sample(got, "storaged_pass_items_total", daemon="sync",
                  outcome="succeeded") == 1
    assert sample(got, "storaged_sync_objects_sent_total", op="put") == 3
    assert sample(got, "storaged_sync_bytes_sent_total") == 9
    assert sample(got, "storaged_sync_rows_behind_total") == 0
    assert sample(got, "storaged_sync_rows_behind", account="AUTH_test",
                  container="s", worker="node-a:sync") == 0
    # The deprecated [sync] metrics_file is still written, with a warning.
    assert "storaged_sync_rows_behind" in open(daemon.sync["metrics_file"]).read()
    assert "metrics_file is deprecated" in open(daemon.log).read()
