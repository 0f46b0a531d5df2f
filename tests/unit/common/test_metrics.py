"""storaged.metrics: the facade, statsd, /metrics, textfiles, multiprocess mode."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import urllib.request

from oslo_config import cfg
import pytest

from storaged import exception
from storaged import metrics as metrics_mod
from storaged.common import daemon as daemon_mod
from storaged.conf import metrics as metrics_conf
from storaged.metrics import http
from storaged.metrics import registry
from storaged.metrics import statsd
from storaged.metrics import textfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


@pytest.fixture(autouse=True)
def _fresh_process_metrics():
    metrics_mod.reset()
    yield
    metrics_mod.reset()


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def value(m, name, **labels):
    return m.registry.get_sample_value(name, labels or None)


def test_facade_updates_prometheus_and_statsd(udp):
    client = statsd.StatsdClient("127.0.0.1", udp.getsockname()[1], "node1.")
    m = registry.Metrics("api", statsd=client)
    m.counter("api_requests", "Requests.", ["method", "status"])
    m.counter("api_requests", "declared twice: nothing happens", ["method", "status"])
    m.histogram("api_request_duration_seconds", "Latency.", ["method"])
    m.gauge("api_open_connections", "Open.")

    m.incr("api_requests", method="GET", status="2xx")
    m.incr("api_requests", 2, method="GET", status="2xx")
    m.observe("api_request_duration_seconds", 0.25, method="GET")
    m.set("api_open_connections", 3)

    assert value(m, "storaged_api_requests_total", method="GET", status="2xx") == 3
    assert value(m, "storaged_api_request_duration_seconds_count", method="GET") == 1
    assert value(m, "storaged_api_request_duration_seconds_sum", method="GET") == 0.25
    assert value(m, "storaged_api_open_connections") == 3
    packets = [udp.recv(512).decode() for _ in range(4)]
    assert packets == [
        "node1.api.api_requests.GET.2xx:1|c",
        "node1.api.api_requests.GET.2xx:2|c",
        "node1.api.api_request_duration.GET:250|ms",
        "node1.api.api_open_connections:3|g",
    ]


def test_counter_refuses_to_go_down():
    m = registry.Metrics("t")
    m.counter("things", "Things.")
    with pytest.raises(ValueError):
        m.incr("things", -1)


def test_statsd_name_is_swift_style():
    assert registry.statsd_name("sync", "sync_bytes_total") == "sync.sync_bytes"
    assert (registry.statsd_name("api", "x_seconds", ["a.b", "c:d"])
            == "api.x.a_b.c_d")


def test_statsd_server_down_never_raises(caplog):
    client = statsd.StatsdClient("statsd.example", 8125)

    def unreachable():
        raise OSError("Name or service not known")

    client._socket = unreachable
    client.send("a", 1, statsd.COUNTER)
    client.send("a", 1, statsd.COUNTER)
    assert caplog.text.count("Cannot send metrics to statsd") == 1


def test_endpoint_serves_the_registry_and_a_clash_is_one_line():
    m = registry.Metrics("t")
    m.counter("scrapes_seen", "Test counter.")
    m.incr("scrapes_seen", 5)
    sock = http.bind("127.0.0.1", 0, "sync")
    endpoint = http.serve(sock, m.registry)
    try:
        host, port = endpoint.address
        body = urllib.request.urlopen(
            "http://%s:%d/metrics" % (host, port), timeout=10).read().decode()
        assert "storaged_scrapes_seen_total 5.0" in body
        with pytest.raises(http.MetricsPortInUse) as info:
            http.bind("127.0.0.1", port, "sync")
        text = str(info.value)
        assert isinstance(info.value, exception.ConfigError)
        assert "\n" not in text
        assert "[sync] metrics_port" in text and str(port) in text
    finally:
        endpoint.close()


def test_textfile_is_written_whole(tmp_path):
    m = registry.Metrics("t")
    m.gauge("answer", "The answer.")
    m.set("answer", 42)
    path = textfile.path_for(str(tmp_path), "cache-prune", "node/1")
    assert path == str(tmp_path / "cache-prune-node_1.prom")
    textfile.write(path, m.registry)
    assert "storaged_answer 42.0" in open(path).read()
    assert os.listdir(tmp_path) == ["cache-prune-node_1.prom"]


def _conf(tmp_path, **metrics):
    conf = cfg.ConfigOpts()
    metrics_conf.register_opts(conf)
    conf.register_opt(metrics_conf.port_opt("storaged-sync"), group="sync")
    conf.register_opt(cfg.StrOpt("node_id", default="n1"))
    conf([], project="storaged-test", default_config_files=[])
    for key, value in metrics.items():
        group, _, name = key.partition("__")
        conf.set_override(name, value, group=group)
    return conf


def test_setup_once_writes_the_textfile(tmp_path):
    conf = _conf(tmp_path, metrics__textfile_dir=str(tmp_path), sync__metrics_port=1)
    m = metrics_mod.setup(conf, "sync", "sync", once=True)
    assert metrics_mod.serve() is None  # --once: no endpoint, the port unbound
    m.counter("rows", "Rows.")
    m.incr("rows", 7)
    path = metrics_mod.write_textfile()
    assert path == str(tmp_path / "sync-n1.prom")
    assert "storaged_rows_total 7.0" in open(path).read()


def test_setup_without_textfile_dir_writes_nothing(tmp_path):
    metrics_mod.setup(_conf(tmp_path), "sync", "sync", once=True)
    assert metrics_mod.write_textfile() is None


def test_setup_binds_and_serves_once_per_process(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    conf = _conf(tmp_path, sync__metrics_port=port)
    metrics_mod.setup(conf, "sync", "sync").counter("x", "X.")
    endpoint = metrics_mod.serve()
    assert endpoint is not None and endpoint.address[1] == port
    assert metrics_mod.serve() is endpoint
    body = urllib.request.urlopen(
        "http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    assert "storaged_x_total 0.0" in body


class _Worker:
    name = "demo"

    def __init__(self, fail=()):
        self.fail = fail

    def run_pass(self, ctx):
        ctx.each(range(4), self.item)

    def item(self, i):
        if i in self.fail:
            raise RuntimeError("broken %d" % i)


def test_reporter_measures_each_pass():
    m = registry.Metrics("demo")
    reporter = daemon_mod.Reporter("demo", "n1", None, metrics=m)
    reporter.up(True)
    reporter.pass_done(daemon_mod.run_pass(_Worker()), None)
    reporter.pass_done(daemon_mod.run_pass(_Worker(fail=(1, 2))), None)
    d = {"daemon": "demo"}
    assert value(m, "storaged_daemon_up", **d) == 1
    assert value(m, "storaged_passes_total", outcome="ok", **d) == 1
    assert value(m, "storaged_passes_total", outcome="failed", **d) == 1
    assert value(m, "storaged_pass_items_total", outcome="succeeded", **d) == 6
    assert value(m, "storaged_pass_items_total", outcome="failed", **d) == 2
    assert value(m, "storaged_pass_duration_seconds_count", **d) == 2
    last_ok = value(m, "storaged_last_success_timestamp_seconds", **d)
    assert last_ok == reporter.last_success
    assert value(m, "storaged_last_pass_timestamp_seconds", **d) > last_ok


def test_reporter_uses_the_process_metrics_by_default():
    reporter = daemon_mod.Reporter("demo", "n1", None)
    reporter.pass_done(daemon_mod.run_pass(_Worker()), None)
    assert metrics_mod.process().registry.get_sample_value(
        "storaged_passes_total", {"daemon": "demo", "outcome": "ok"}) == 1


MULTIPROCESS = textwrap.dedent("""
    import os, sys
    from storaged.metrics import multiproc, registry
    directory = sys.argv[1]
    open(os.path.join(directory, "stale_counter_1.db"), "w").close()
    multiproc.enable(directory)
    assert os.listdir(directory) == []  # a previous run's files are gone
    m = registry.Metrics("api")
    m.counter("requests", "Requests.", ["method"])
    m.gauge("open", "Open.", multiprocess_mode="livesum")
    children = []
    for n in (2, 3):
        pid = os.fork()
        if pid == 0:
            m.incr("requests", n, method="GET")
            m.set("open", n)
            if n == 3:
                multiproc.mark_dead(os.getpid())
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    reg = multiproc.collector_registry(directory)
    print(reg.get_sample_value("storaged_requests_total", {"method": "GET"}))
    print(reg.get_sample_value("storaged_open"))
""")


def test_forked_workers_add_up(tmp_path):
    # A process of its own: multiprocess mode changes prometheus_client's
    # value class for the whole process.
    directory = tmp_path / "mp"
    directory.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS, str(directory)], cwd=ROOT,
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert result.returncode == 0, result.stderr
    # 2 + 3 requests; the open gauge counts the live worker only.
    assert result.stdout.split() == ["5.0", "2.0"]


def test_gauge_changes_are_statsd_gauge_deltas(udp):
    client = statsd.StatsdClient("127.0.0.1", udp.getsockname()[1])
    m = registry.Metrics("api", statsd=client)
    m.gauge("in_progress", "In progress.")
    m.incr("in_progress")
    m.incr("in_progress", -1)
    assert value(m, "storaged_in_progress") == 0
    assert [udp.recv(512).decode() for _ in range(2)] == [
        "api.in_progress:+1|g", "api.in_progress:-1|g"]


def _daemon_conf(tmp_path, textfiles):
    from storaged.common import config

    path = tmp_path / "storaged.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\nnode_id = n1\n[metrics]\n"
                    "textfile_dir = %s\n" % (tmp_path / "state", textfiles))
    return config.prepare_service(
        ["--config-file", str(path), "--once"], prog="t", setup_logging=False,
        cli_opts=[daemon_mod.ONCE_OPT], conf=cfg.ConfigOpts())


def test_run_daemon_once_writes_its_textfile(tmp_path):
    for run in ("one", "two"):
        # Each run with its own configuration: nothing carried over.
        textfiles = tmp_path / run
        textfiles.mkdir()
        conf = _daemon_conf(tmp_path, textfiles)
        status = daemon_mod.run_daemon(conf, _Worker(fail=(3,)), lambda: 1.0, None)
        assert status == 1
        text = (textfiles / "demo-n1.prom").read_text()
        assert 'storaged_passes_total{daemon="demo",outcome="failed"} 1.0' in text
        assert ('storaged_pass_items_total{daemon="demo",outcome="succeeded"} 3.0'
                in text)
        assert "storaged_last_success_timestamp_seconds{" not in text


_POOL_CHILD = textwrap.dedent("""
    import sys
    from storaged import concurrency
    concurrency.setup("eventlet")
    import eventlet
    from storaged.metrics import multiproc
    from storaged.metrics.registry import Metrics

    if sys.argv[1] == "multiprocess":
        multiproc.enable(sys.argv[2])
    m = Metrics("api")
    m.counter("api_requests", "Requests.", ("method",))
    m.histogram("api_request_duration_seconds", "Latency.", ("method",))

    def update(n):
        for i in range(400):
            m.incr("api_requests", method="GET")
            m.observe("api_request_duration_seconds", 0.001, method="PUT")

    def worker(n):
        # Half on the hub's thread, half in the pool's native threads.
        for _ in range(5):
            update(n)
            concurrency.run_blocking(update, n)

    threads = [eventlet.spawn(worker, n) for n in range(16)]
    with eventlet.Timeout(90):
        for thread in threads:
            thread.wait()
    print("done")
""")


@pytest.mark.parametrize("mode", ["memory", "multiprocess"])
def test_figures_updated_from_the_hub_and_the_pool_at_once(tmp_path, mode):
    """A daemon under eventlet updates figures from green threads and from
    run_blocking's native threads at once: prometheus_client's locks are
    native (a green one, waited on by two OS threads, hung storaged-api)."""
    child = subprocess.run(
        [sys.executable, "-c", _POOL_CHILD, mode, str(tmp_path / "prom")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": "eventlet"},
    )
    assert "Cannot switch" not in child.stderr, child.stderr[-3000:]
    assert (child.returncode, child.stdout) == (0, "done\n"), child.stderr[-3000:]
