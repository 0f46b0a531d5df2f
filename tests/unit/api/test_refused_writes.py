"""Writes that the catalog's last-writer-wins rule refuses say so, as Swift does.

A sync peer may store a row with a timestamp in the future (its clock runs
ahead, or it replays a later write).  A user's request then carries an
older timestamp (now) and changes nothing: Swift's object server answers
409 to such a DELETE and POST, and its proxy 202 to such a PUT.  Never a
2xx that claims a change which did not happen.
"""

from __future__ import annotations

import time

from tests.unit.api.conftest import sync_headers


def _future_object(client, path: str) -> str:
    ts = "%.5f" % (time.time() + 3600)
    res = client.as_user("PUT", "/v1/AUTH_test/dst",
                         {"X-Container-Sync-Key": "sync-secret"})
    assert res.status in (201, 202)
    res = client.call("PUT", path, sync_headers("PUT", path, ts=ts), body=b"future")
    assert res.status == 201, res
    return ts


def test_user_delete_of_a_newer_row_is_409(client):
    path = "/v1/AUTH_test/dst/o"
    ts = _future_object(client, path)
    res = client.as_user("DELETE", path)
    assert res.status == 409, res
    res = client.as_user("GET", path)
    assert res.status == 200 and res.body == b"future"
    assert res.headers["x-timestamp"] == ts


def test_user_post_of_a_newer_row_is_409(client):
    path = "/v1/AUTH_test/dst/o"
    _future_object(client, path)
    res = client.as_user("POST", path, {"X-Object-Meta-Color": "red"})
    assert res.status == 409, res
    assert "x-object-meta-color" not in client.as_user("HEAD", path).headers


def test_user_put_over_a_newer_row_is_202(client):
    path = "/v1/AUTH_test/dst/o"
    ts = _future_object(client, path)
    res = client.as_user("PUT", path, body=b"now")
    assert res.status == 202, res
    res = client.as_user("GET", path)
    assert res.body == b"future" and res.headers["x-timestamp"] == ts

