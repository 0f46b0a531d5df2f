"""``config check --changed``: only what differs from the defaults, masked."""

from __future__ import annotations

import json
import os

from tests.functional.test_manage import ROOT
from tests.functional.test_manage import run


def _conf(tmp_path):
    conf = tmp_path / "storaged.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\nnode_id = node-a\n"
        "[kvs]\nbackend_url = redis://:hunter2@127.0.0.1:1/0\n"
        "[coordination]\n"
        "# the default, spelled out: not a change\n"
        "heartbeat_interval = 1.0\n"
        "backend_url = file://$state_path/coordination\n"
        "[api]\ntoken_secret = s3cr3t-token\nuser_demo_admin = k3y .admin\n"
        "bind_port = 8081\nverify_reads = false\n" % (tmp_path / "state")
    )
    return conf


def test_changed_human_shows_only_what_differs(tmp_path):
    conf = _conf(tmp_path)
    proc = run("--config-file", str(conf), "config", "check", "--changed")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Configuration is valid." in out
    assert "[DEFAULT]\nnode_id = node-a\nstate_path = %s\n" % (
        tmp_path / "state") in out
    assert "[kvs]\nbackend_url = redis://:***@127.0.0.1:1/0\n" in out
    assert "bind_port = 8081" in out
    assert "verify_reads = false" in out  # as a file would say it
    assert "token_secret = ***" in out
    assert "user_demo_admin = ***" in out
    for secret in ("hunter2", "s3cr3t-token", "k3y"):
        assert secret not in out + proc.stderr
    # defaults, even when a file spells them out, are not shown
    assert "heartbeat_interval" not in out
    assert "[coordination]" not in out
    assert "workers" not in out
    assert len(out.splitlines()) < 25, out


def test_changed_json(tmp_path):
    conf = _conf(tmp_path)
    proc = run("--config-file", str(conf), "config", "check", "--changed",
               "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["valid"] is True and data["changed_only"] is True
    assert data["config"] == {
        "DEFAULT": {"node_id": "node-a", "state_path": str(tmp_path / "state")},
        "kvs": {"backend_url": "redis://:***@127.0.0.1:1/0"},
        "api": {"bind_port": 8081, "token_secret": "***", "verify_reads": False,
                "user_demo_admin": "***"},
    }


def test_changed_on_the_sample_is_short():
    sample = os.path.join(ROOT, "etc", "storaged", "storaged.conf.sample")
    proc = run("--config-file", sample, "config", "check", "--changed")
    assert proc.returncode == 0, proc.stderr
    assert "every option has its default value" in proc.stdout
    assert len(proc.stdout.splitlines()) <= 4, proc.stdout


def test_full_check_still_shows_everything(tmp_path):
    conf = _conf(tmp_path)
    proc = run("--config-file", str(conf), "config", "check")
    assert proc.returncode == 0, proc.stderr
    assert "heartbeat_interval = 1.0" in proc.stdout
    assert "workers = auto" in proc.stdout
