"""One option names the realms file; the old spelling still works.

``[sync] realms_conf`` is read by storaged-sync (to sign) and storaged-api
(to accept realm targets and verify signed requests); ``[api] realms_file``,
its former API-side twin, is a deprecated alias of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from oslo_config import cfg
import pytest

from storaged.api import app as app_mod
from storaged.common import config
from storaged.conf import api as api_conf
from tests.unit.api.conftest import REALMS
from tests.unit.api.conftest import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

SPELLINGS = {
    "current": "[sync]\nrealms_conf = %s\n",
    "deprecated": "[api]\nrealms_file = %s\n",
}


def _conf(tmp_path, spelling):
    realms = tmp_path / "realms.conf"
    realms.write_text(REALMS)
    path = tmp_path / "storaged.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\n[api]\nuser_test_tester = testing .admin\n"
        % (tmp_path / "state") + SPELLINGS[spelling] % realms
    )
    conf = config.prepare_service(
        ["--config-file", str(path)], prog="t", setup_logging=False,
        conf=cfg.ConfigOpts(), validators=[api_conf.check_users],
    )
    return conf, str(realms)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_api_and_sync_read_the_same_realms_file(tmp_path, spelling):
    conf, realms = _conf(tmp_path, spelling)
    # storaged-sync signs with this file
    assert conf.sync.realms_conf == realms
    app = app_mod.make_app(conf)
    try:
        res = Client(app).as_user(
            "PUT", "/v1/AUTH_test/c",
            {"X-Container-Sync-To": "//us/here/AUTH_b/dst",
             "X-Container-Sync-Key": "k"},
        )
    finally:
        app.close()
    # storaged-api knows the realm from the same option
    assert res.status == 201, res


def test_config_check_names_the_deprecated_spelling(tmp_path):
    conf, realms = _conf(tmp_path, "deprecated")
    proc = subprocess.run(
        [sys.executable, "-m", "storaged.manage.cli", "--config-file",
         conf.config_file[0], "config", "check", "--format", "json"],
        cwd=ROOT, env=dict(os.environ, STORAGED_CONCURRENCY_BACKEND="threading"),
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["sync"]["realms_conf"] == realms
    assert "api" not in json.loads(proc.stdout)["config"] or "realms_file" not in (
        json.loads(proc.stdout)["config"]["api"])
    (line,) = proc.stderr.splitlines()
    assert '"realms_file" from group "api" is deprecated' in line
    assert '"realms_conf" from group "sync"' in line


def test_sample_names_one_realms_option():
    with open(os.path.join(ROOT, "etc", "storaged", "storaged.conf.sample")) as f:
        sample = f.read()
    assert "#realms_conf = " in sample
    assert "#realms_file = " not in sample


HOSTS = {
    "current": "[sync]\nallowed_sync_hosts = peer.example.com\n",
    "deprecated": "[api]\nallowed_sync_hosts = peer.example.com\n",
}


@pytest.mark.parametrize("spelling", sorted(HOSTS))
def test_api_and_sync_read_the_same_allowed_hosts(tmp_path, spelling):
    path = tmp_path / "storaged.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\n[api]\nuser_test_tester = testing .admin\n"
        % (tmp_path / "state") + HOSTS[spelling]
    )
    conf = config.prepare_service(
        ["--config-file", str(path)], prog="t", setup_logging=False,
        conf=cfg.ConfigOpts(), validators=[api_conf.check_users],
    )
    # storaged-sync sends to these hosts only
    assert conf.sync.allowed_sync_hosts == ["peer.example.com"]
    app = app_mod.make_app(conf)
    try:
        client = Client(app)
        ok = client.as_user("PUT", "/v1/AUTH_test/c", {
            "X-Container-Sync-To": "http://peer.example.com/v1/AUTH_b/dst",
            "X-Container-Sync-Key": "k"})
        refused = client.as_user("PUT", "/v1/AUTH_test/d", {
            "X-Container-Sync-To": "http://127.0.0.1/v1/AUTH_b/dst",
            "X-Container-Sync-Key": "k"})
    finally:
        app.close()
    assert ok.status == 201, ok
    assert refused.status == 400, refused
