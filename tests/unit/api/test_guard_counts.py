"""Every server-side failure is counted, the application's own 500s included."""

from __future__ import annotations

from storaged.api import guard
from storaged.api.handlers import Handlers
from tests.unit.api.conftest import Client


class Broken:
    """An object service whose every call fails unexpectedly."""

    def __getattr__(self, name):
        raise RuntimeError("the disk caught fire")


def test_an_unexpected_error_answered_500_is_counted(app, caplog):
    wrapped = guard.ResponseGuard(app)
    client = Client(wrapped)
    token = client.token()
    app.handlers = Handlers(Broken(), app.realms, app.settings)
    res = client.call("HEAD", "/v1/AUTH_test/c/o", {"X-Auth-Token": token})
    assert res.status == 500
    assert wrapped.failures == 1
    assert "the disk caught fire" in caplog.text  # the traceback, logged once
    res = client.call("GET", "/healthcheck")
    assert res.status == 200 and wrapped.failures == 1


def test_client_errors_are_not_failures(app):
    wrapped = guard.ResponseGuard(app)
    client = Client(wrapped)
    assert client.call("GET", "/v1/AUTH_test").status == 401
    assert client.call("GET", "/v1/AUTH_test/c", {
        "X-Auth-Token": client.token()}).status == 404
    assert wrapped.failures == 0
