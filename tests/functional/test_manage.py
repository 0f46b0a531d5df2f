"""storaged-manage as an operator runs it: a real process, real state store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet")


def run(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "storaged.manage.cli", *args],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout,
    )


def write_conf(tmp_path, extra=""):
    conf = tmp_path / "storaged.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\nnode_id = node-a\n"
        "[kvs]\nbackend_url = redis://:hunter2@127.0.0.1:1/0\n%s"
        % (tmp_path / "state", extra)
    )
    return conf


def test_config_check_masks_secrets_human_and_json(tmp_path):
    conf = write_conf(tmp_path)
    human = run("--config-file", str(conf), "config", "check")
    assert human.returncode == 0, human.stderr
    assert "Configuration is valid." in human.stdout
    assert "backend_url = redis://:***@127.0.0.1:1/0" in human.stdout
    assert "hunter2" not in human.stdout + human.stderr
    js = run("--config-file", str(conf), "config", "check", "--format", "json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["valid"] is True
    assert data["files"] == [str(conf)]
    assert data["config"]["kvs"]["backend_url"] == "redis://:***@127.0.0.1:1/0"
    assert data["config"]["DEFAULT"]["node_id"] == "node-a"
    assert "hunter2" not in js.stdout


def test_sample_config_is_valid():
    sample = os.path.join(ROOT, "etc", "storaged", "storaged.conf.sample")
    proc = run("--config-file", sample, "config", "check", "--format", "json")
    assert proc.returncode == 0, proc.stderr


def test_usage_errors_exit_2():
    proc = run("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice: 'frobnicate'" in proc.stderr
    proc = run("config")
    assert proc.returncode == 2


def test_help_of_each_command():
    for args in (["--help"], ["config", "check", "--help"], ["status", "--help"]):
        proc = run(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "usage: storaged-manage" in proc.stdout


def _demo_once(conf, fail=False):
    # The demo daemon's own section goes in a file only it reads: the
    # operator's CLI rightly refuses sections nothing of storaged knows.
    demo = conf.parent / "demo.conf"
    demo.write_text("[demo]\ncount = 2\nitem_time = 0\n%s"
                    % ("fail_items = 1\n" if fail else ""))
    return subprocess.run(
        [sys.executable, "-m", "tests.functional.demo_daemon",
         "--config-file", str(conf), "--config-file", str(demo), "--once"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )


def test_status_shows_daemons_and_exit_code_follows_health(tmp_path):
    conf = tmp_path / "storaged.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\nnode_id = node-a\n" % tmp_path)
    empty = run("--config-file", str(conf), "status")
    assert empty.returncode == 0, empty.stderr
    assert "No daemon has reported" in empty.stdout

    assert _demo_once(conf).returncode == 0
    ok = run("--config-file", str(conf), "status")
    assert ok.returncode == 0, ok.stderr
    header, row = ok.stdout.splitlines()[:2]
    assert header.split()[:4] == ["NODE", "DAEMON", "HEALTH", "STATE"]
    assert row.split()[:3] == ["node-a", "demo", "ok"]

    assert _demo_once(conf, fail=True).returncode == 1
    bad = run("--config-file", str(conf), "status", "--format", "json")
    assert bad.returncode == 1
    (rec,) = json.loads(bad.stdout)
    assert rec["health"] == "failed"
    assert rec["last_pass"]["errors"] == ["1: item 1 is broken on purpose"]
    human = run("--config-file", str(conf), "status")
    assert "node-a/demo: 1: item 1 is broken on purpose" in human.stdout


def test_status_with_unreachable_store_is_one_line(tmp_path):
    conf = write_conf(tmp_path)
    proc = run("--config-file", str(conf), "status")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("storaged-manage: cannot read the state store")
    assert "hunter2" not in proc.stderr
