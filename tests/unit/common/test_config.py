"""prepare_service: every bad configuration is one clear line, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from storaged import exception
from storaged.common import config


def _prepare(*argv: str):
    return config.prepare_service(list(argv), prog="storaged-test", setup_logging=False)


def _error(tmp_path, text: str | bytes) -> str:
    path = tmp_path / "storaged.conf"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(exception.ConfigError) as info:
        _prepare("--config-file", str(path))
    return str(info.value).replace(str(path), "F")


# (file contents, the exact message with the file name replaced by F)
BAD_FILES = [
    ("[DEFAULT\nstate_path = /x\n",
     "F: malformed file: line 1: Invalid section (must end with ]): '[DEFAULT'"),
    ("[kvs]\ntimeout\n",
     "F: malformed file: line 2: No ':' or '=' found in assignment: 'timeout'"),
    (b"[kvs]\ntimeout = \xff\n", "F: line 2: not valid UTF-8 text"),
    ("[kvs]\ntimeout = soon\n",
     "F: [kvs] timeout: could not convert string to float: 'soon'"),
    ("[kvs]\ndefault_lock_ttl = 0\n",
     "F: [kvs] default_lock_ttl: Should be greater than or equal to 0.1 (got '0')"),
    ("[daemon]\nstop_timeout = 7200\n",
     "F: [daemon] stop_timeout: Should be less than or equal to 3600 (got '7200')"),
    ("[daemon]\npublish_status = maybe\n",
     "F: [daemon] publish_status: Unexpected boolean value 'maybe'"),
    ("[DEFAULT]\nconcurrency_backend = gevent\n",
     "F: [DEFAULT] concurrency_backend: Valid values are [eventlet, threading], "
     "but found 'gevent'"),
    ("[kvs]\nbackend_url = mongodb://db:27017/\n",
     "F: [kvs] backend_url: unknown state store driver 'mongodb' "
     "(known: memory, postgres, postgresql, redis, rediss, sqlite)"),
    ("[kvs]\nbackend_url = postgresql://storaged:hunter2@db.example.org/\n",
     "F: [kvs] backend_url: postgresql URL names no database "
     "(postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=NAME])"),
    ("[kvs]\nbackend = redis://localhost\n", "F: [kvs] backend: unknown option"),
    ("[kvss]\nbackend_url = redis://localhost\n",
     "F: [kvss]: unknown section (known: DEFAULT, api, cache, catalog, "
     "coordination, daemon, expirer, heartbeat, kvs, local, metrics, store, sync)"),
    ("[DEFAULT]\nstate_path = var/lib/storaged\n",
     "F: [DEFAULT] state_path: must be an absolute path, not 'var/lib/storaged'"),
    ("[DEFAULT]\nnode_id = node 1\n",
     "F: [DEFAULT] node_id: Value 'node 1' doesn't match regex "
     "'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'"),
    ("[DEFAULT]\ngraceful_shutdown_timeout = 10\n",
     "F: [DEFAULT] graceful_shutdown_timeout: must be larger than "
     "[daemon] stop_timeout (30.0), or 0"),
    ("[DEFAULT]\nlog_options = yes please\n",
     "F: [DEFAULT] log_options: Unexpected boolean value 'yes please'"),
    ("[kvs]\nbackend_url = sqlite://relative/state.sqlite\n",
     "F: [kvs] backend_url: sqlite URL needs an absolute path after "
     "sqlite:/// (e.g. sqlite:////var/lib/storaged/state.sqlite)"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_file_is_one_exact_line(tmp_path, text, expected):
    message = _error(tmp_path, text)
    assert message == expected
    assert "\n" not in message


def test_secret_value_never_echoed(tmp_path):
    message = _error(tmp_path, "[kvs]\nbackend_url = mongodb://u:s3cr3t@db/\n")
    assert "s3cr3t" not in message
    assert message.startswith("F: [kvs] backend_url: unknown state store driver")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.conf"
    with pytest.raises(exception.ConfigError) as info:
        _prepare("--config-file", str(path))
    assert str(info.value) == "%s: configuration file not found" % path


def test_directory_given_as_file(tmp_path):
    with pytest.raises(exception.ConfigError) as info:
        _prepare("--config-file", str(tmp_path))
    assert str(info.value) == (
        "%s: is a directory, not a configuration file (use --config-dir)" % tmp_path
    )


def test_missing_config_dir(tmp_path):
    path = tmp_path / "conf.d"
    with pytest.raises(exception.ConfigError) as info:
        _prepare("--config-dir", str(path))
    assert str(info.value) == "%s: configuration directory not found" % path


def test_error_names_the_drop_in_that_set_it(tmp_path):
    main = tmp_path / "storaged.conf"
    main.write_text("[kvs]\ntimeout = 5\n")
    confd = tmp_path / "conf.d"
    confd.mkdir()
    (confd / "50-local.conf").write_text("[kvs]\ntimeout = -1\n")
    with pytest.raises(exception.ConfigError) as info:
        _prepare("--config-file", str(main), "--config-dir", str(confd))
    assert str(info.value).startswith(str(confd / "50-local.conf") + ": [kvs] timeout:")


def test_bad_substitution(tmp_path):
    message = _error(tmp_path, "[kvs]\nbackend_url = sqlite:///$nosuch/x.sqlite\n")
    assert message.startswith("F: [kvs] backend_url: bad substitution")


def test_valid_file_parses(tmp_path):
    path = tmp_path / "storaged.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\nnode_id = n1\n[kvs]\ntimeout = 2.5\n" % tmp_path
    )
    conf = _prepare("--config-file", str(path))
    assert conf.kvs.timeout == 2.5
    assert conf.kvs.backend_url == "sqlite:///%s/state.sqlite" % tmp_path
    assert conf.node_id == "n1"


def test_mask_value_hides_url_password():
    from oslo_config import cfg

    opt = cfg.StrOpt("x", secret=True)
    assert config.mask_value(opt, "redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert config.mask_value(opt, "redis://u:pw@h/0") == "redis://u:***@h/0"
    assert config.mask_value(opt, "plain-key") == "***"
    assert config.mask_value(cfg.StrOpt("y"), "visible") == "visible"


def test_command_line_error_exits_2_with_one_line(tmp_path):
    path = tmp_path / "storaged.conf"
    path.write_text("[kvs]\ntimeout = soon\n")
    proc = subprocess.run(
        [sys.executable, "-m", "storaged.manage.cli", "--config-file", str(path),
         "config", "check"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, STORAGED_CONCURRENCY_BACKEND="threading"),
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "storaged-manage: %s: [kvs] timeout: could not convert string to "
        "float: 'soon'\n" % path
    )


def test_api_drain_must_fit_in_the_launchers_grace(tmp_path):
    from storaged.conf import api as api_conf

    path = tmp_path / "storaged.conf"
    path.write_text("[DEFAULT]\ngraceful_shutdown_timeout = 40\n"
                    "[api]\nshutdown_timeout = 45\n")
    with pytest.raises(exception.ConfigError) as info:
        config.prepare_service(["--config-file", str(path)], prog="storaged-api",
                               setup_logging=False,
                               validators=[api_conf.check_shutdown])
    assert str(info.value).replace(str(path), "F") == (
        "F: [DEFAULT] graceful_shutdown_timeout: must be larger than "
        "[api] shutdown_timeout (45.0), or 0")
    path.write_text("[DEFAULT]\ngraceful_shutdown_timeout = 0\n"
                    "[api]\nshutdown_timeout = 45\n")
    config.prepare_service(["--config-file", str(path)], prog="storaged-api",
                           setup_logging=False, validators=[api_conf.check_shutdown])
