"""A source (catalog + object store) and a real API application as the target.

The target is :func:`storaged.api.app.make_app` served over real HTTP by a
threaded ``wsgiref`` server in this process; a WSGI wrapper can make it
fail chosen requests.
"""

from __future__ import annotations

import socketserver
import threading
from wsgiref import simple_server

from oslo_config import cfg
import pytest

from storaged.api import app as app_mod
from storaged.catalog import Timestamp
from storaged.common import config
from storaged.conf import api as api_conf
from storaged.objects import ObjectRepository
from storaged.sync import client as client_mod
from storaged.sync import engine as engine_mod
from storaged.sync import realms as realms_mod

REALM_KEY = "unit-realm-key"
SYNC_KEY = "unit-sync-key"


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _Quiet(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Target:
    """The real API app over HTTP; ``fail(name, method, times)`` injects 503s."""

    def __init__(self, tmp_path):
        realms = tmp_path / "target-realms.conf"
        realms.write_text("[us]\nkey = %s\n" % REALM_KEY)
        path = tmp_path / "target.conf"
        path.write_text("[DEFAULT]\nstate_path = %s\n[api]\nrealms_file = %s\n"
                        "user_test_tester = testing .admin\n"
                        % (tmp_path / "target-state", realms))
        files = [str(path)]
        self.conf = config.prepare_service(
            ["--config-file", str(path)], prog="t", setup_logging=False,
            conf=cfg.ConfigOpts(),
            register=lambda c: api_conf.register_dynamic_opts(c, files))
        self.app = app_mod.make_app(self.conf)
        self.failures: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str]] = []
        self.server = simple_server.make_server(
            "127.0.0.1", 0, self._wsgi, server_class=_Server, handler_class=_Quiet)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.service: ObjectRepository = self.app.service
        self.service.create_container("AUTH_test", "dst",
                                      {"X-Container-Sync-Key": SYNC_KEY})

    def _wsgi(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        name = environ["PATH_INFO"].encode("latin-1").decode("utf-8").split(
            "/", 4)[-1]
        self.requests.append((method, name))
        left = self.failures.get((method, name), 0)
        if left:
            self.failures[(method, name)] = left - 1
            start_response("503 Service Unavailable", [("Content-Length", "8")])
            return [b"injected"]
        return self.app(environ, start_response)

    def fail(self, name, method="PUT", times=1):
        self.failures[(method, name)] = times

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def objects(self):
        return {o.name: o.etag for o in self.service.list_objects(
            "AUTH_test", "dst", limit=10000)}

    def timestamp(self, name):
        return self.service.head_object("AUTH_test", "dst", name).timestamp

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.app.close()


@pytest.fixture
def target(tmp_path):
    t = Target(tmp_path)
    yield t
    t.close()


@pytest.fixture
def source(tmp_path, target):
    path = tmp_path / "source.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\n" % (tmp_path / "source-state"))
    conf = config.prepare_service(["--config-file", str(path)], prog="t",
                                  setup_logging=False, conf=cfg.ConfigOpts())
    svc = ObjectRepository.from_conf(conf)
    svc.create_container("AUTH_test", "src", {
        "X-Container-Sync-To": "//us/dst/AUTH_test/dst",
        "X-Container-Sync-Key": SYNC_KEY})
    yield svc
    svc.close()


@pytest.fixture
def realms(target):
    return realms_mod.Realms(realms={"US": realms_mod.Realm(
        "US", REALM_KEY, "", {"DST": target.url + "/v1/"})})


@pytest.fixture
def make_engine(source, realms):
    made = []

    def make(worker="node:sync", **settings):
        http = client_mod.HttpClient(timeout=5)
        eng = engine_mod.SyncEngine(
            source.catalog, source, realms, http, worker,
            engine_mod.SyncSettings(**settings))
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.http.close()


def put(svc, name, data=b"x", **kw):
    return svc.put_object("AUTH_test", "src", name, [data], len(data),
                          timestamp=kw.pop("timestamp", None) or Timestamp.now(), **kw)
