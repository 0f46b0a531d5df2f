"""A real application over a real object service, called as a WSGI server would."""

from __future__ import annotations

import io
import json
import logging
from urllib import parse as urlparse

from oslo_config import cfg
import pytest

from storaged.api import app as app_mod
from storaged.common import config
from storaged.conf import api as api_conf
from storaged.sync import realms as realms_mod

REALMS = """\
[us]
key = realm-key-1
key2 = realm-key-2
cluster_here = http://127.0.0.1:8080/v1/
"""


class Result:
    def __init__(self, status, headers, body):
        self.status_line = status
        self.status = int(status.split()[0])
        self.headers = {k.lower(): v for k, v in headers}
        self.header_list = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Result %s %r>" % (self.status_line, self.body[:200])


class Client:
    """Calls the application with environs like eventlet's server makes."""

    def __init__(self, app):
        self.app = app
        self.tokens = {}

    def call(self, method, path, headers=None, body=b"", query="", environ=None,
             chunked=False):
        raw_path = urlparse.unquote_to_bytes(path)
        env = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": raw_path.decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8080",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:8080",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(),
        }
        if body or method in ("PUT", "POST"):
            if chunked:
                env["HTTP_TRANSFER_ENCODING"] = "chunked"
            else:
                env["CONTENT_LENGTH"] = str(len(body))
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            env[key] = value
        env.update(environ or {})
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = list(headers)

        result = self.app(env, start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return Result(captured["status"], captured["headers"], data)

    def token(self, login="test:tester", key="testing"):
        if login not in self.tokens:
            res = self.call("GET", "/auth/v1.0",
                            {"X-Auth-User": login, "X-Auth-Key": key})
            assert res.status == 200, res
            self.tokens[login] = res.headers["x-auth-token"]
        return self.tokens[login]

    def as_user(self, method, path, headers=None, login="test:tester", **kw):
        keys = {"test:tester": "testing", "test:reader": "r3ader",
                "other:admin": "otherkey", "ops:root": "rootkey"}
        all_headers = {"X-Auth-Token": self.token(login, keys[login])}
        all_headers.update(headers or {})
        return self.call(method, path, all_headers, **kw)


def make_conf(tmp_path, extra=""):
    realms_file = tmp_path / "realms.conf"
    realms_file.write_text(REALMS)
    path = tmp_path / "storaged.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\n[api]\n"
        "user_test_tester = testing .admin\n"
        "user_test_reader = r3ader\n"
        "user_other_admin = otherkey .admin\n"
        "user_ops_root = rootkey .reseller_admin\n"
        "realms_file = %s\n"
        "allowed_sync_hosts = 127.0.0.1, peer.example.com\n%s"
        % (tmp_path / "state", realms_file, extra)
    )
    files = [str(path)]
    return config.prepare_service(
        ["--config-file", str(path)], prog="t", setup_logging=False,
        conf=cfg.ConfigOpts(),
        register=lambda c: api_conf.register_dynamic_opts(c, files),
        validators=[api_conf.check_users],
    )


@pytest.fixture
def conf(tmp_path):
    return make_conf(tmp_path)


@pytest.fixture
def app(conf):
    application = app_mod.make_app(conf)
    yield application
    application.close()


@pytest.fixture
def client(app):
    return Client(app)


@pytest.fixture
def access_log(caplog):
    caplog.set_level(logging.INFO, logger="storaged.api.access")

    def lines():
        return [r.getMessage() for r in caplog.records
                if r.name == "storaged.api.access"]

    return lines


def sync_headers(method, path, user_key="sync-secret", ts="1700000000.00000",
                 realm="US", realm_key="realm-key-1", nonce="n0nce"):
    canonical = realms_mod.canonical_path(urlparse.unquote_to_bytes(path))
    sig = realms_mod.sign(method, canonical, ts, nonce, realm_key, user_key)
    headers = {"X-Container-Sync-Auth": "%s %s %s" % (realm, nonce, sig)}
    if ts is not None:
        headers["X-Timestamp"] = ts
    return headers
