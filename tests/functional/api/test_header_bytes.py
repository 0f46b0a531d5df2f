"""A real ``storaged-api`` sends back the exact header bytes it was sent.

Through both servers (eventlet's and the threading one), with raw HTTP (the
bytes on the wire) and with python-swiftclient (what users run): object,
container and account requests, values from every length of UTF-8, and
object metadata that is not UTF-8 at all (kept, as Swift keeps it).
"""

from __future__ import annotations

import http.client

import pytest

from tests.functional.api.apiserver import ApiServer

swiftclient = pytest.importorskip("swiftclient")

VALUES = ["värde ñ", "名前", "🙂 ok", "𝄞𠜎"]


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request, tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api-" + request.param),
                    backend=request.param)
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.output()


def request(server, token, method, path, headers=(), body=None):
    """One request with header values given as bytes; the answer's raw bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("X-Auth-Token", token)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None or method in ("PUT", "POST"):
            conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        # http.client reads header bytes as latin-1: these are the bytes.
        raw = {k.lower(): v.encode("latin-1") for k, v in resp.getheaders()}
        return resp.status, raw, data
    finally:
        conn.close()


def test_raw_bytes_round_trip(server):
    conn = server.connection()
    url, token = conn.get_auth()
    base = url[url.index("/v1/"):]
    for i, value in enumerate(VALUES):
        b = value.encode("utf-8")
        cont = "%s/c%d" % (base, i)
        status, _h, _b = request(server, token, "PUT", cont,
                                 [("X-Container-Meta-Note", b)])
        assert status == 201
        status, headers, _b = request(server, token, "HEAD", cont)
        assert status == 204 and headers["x-container-meta-note"] == b
        status, _h, _b = request(server, token, "PUT", cont + "/o", [
            ("X-Object-Meta-Color", b), ("Content-Type", b"text/plain; n=" + b),
            ("Content-Disposition", b"inline; filename=" + b),
        ], body=b"data")
        assert status == 201
        for method in ("GET", "HEAD"):
            status, headers, _b = request(server, token, method, cont + "/o")
            assert status == 200, (method, status)
            assert headers["x-object-meta-color"] == b
            assert headers["content-type"] == b"text/plain; n=" + b
            assert headers["content-disposition"] == b"inline; filename=" + b
        status, _h, _b = request(server, token, "POST", cont + "/o",
                                 [("X-Object-Meta-Shade", b + b"!")])
        assert status == 202
        status, headers, _b = request(server, token, "HEAD", cont + "/o")
        assert headers["x-object-meta-shade"] == b + b"!"
    # Object metadata that is not UTF-8 is kept as it came (Swift does so);
    # container metadata that is not UTF-8 is refused.
    status, _h, _b = request(server, token, "PUT", base + "/c0/raw",
                             [("X-Object-Meta-Raw", b"\xff\xfe\xe4")], body=b"")
    assert status == 201
    status, headers, _b = request(server, token, "GET", base + "/c0/raw")
    assert headers["x-object-meta-raw"] == b"\xff\xfe\xe4"
    status, _h, body = request(server, token, "POST", base + "/c0",
                               [("X-Container-Meta-Raw", b"\xff")])
    assert (status, body) == (400, b"Metadata must be valid UTF-8")
    # Account metadata: UTF-8 round-trips, anything else is refused.
    for value in VALUES:
        b = value.encode("utf-8")
        status, _h, _b = request(server, token, "POST", base,
                                 [("X-Account-Meta-Note", b)])
        assert status == 204
        for method in ("HEAD", "GET"):
            status, headers, _b = request(server, token, method, base)
            assert headers["x-account-meta-note"] == b, method
    status, _h, body = request(server, token, "POST", base,
                               [("X-Account-Meta-Raw", b"\xff")])
    assert (status, body) == (400, b"Metadata must be valid UTF-8")
    request(server, token, "POST", base, [("X-Remove-Account-Meta-Note", b"x")])
    # Account listing and HEAD still answer.
    status, headers, body = request(server, token, "GET", base + "?format=json")
    assert status == 200 and len(body) > 2
    assert "Traceback" not in server.output()


def test_swiftclient_round_trip(server):
    conn = server.connection()
    for value in VALUES:
        conn.put_container("sc", headers={"X-Container-Meta-Note": value})
        conn.put_object("sc", value, b"x", content_type="text/x; n=" + value,
                        headers={"X-Object-Meta-Color": value})
        headers = conn.head_object("sc", value)
        assert headers["x-object-meta-color"] == value
        assert headers["content-type"] == "text/x; n=" + value
        conn.post_object("sc", value, headers={"X-Object-Meta-Color": value + "2"})
        assert conn.head_object("sc", value)["x-object-meta-color"] == value + "2"
        assert conn.head_container("sc")["x-container-meta-note"] == value
        conn.post_container("sc", headers={"X-Container-Meta-Note": value + "3"})
        assert conn.get_container("sc")[0]["x-container-meta-note"] == value + "3"
        conn.post_account({"X-Account-Meta-Note": value})
        assert conn.head_account()["x-account-meta-note"] == value
        assert conn.get_account()[0]["x-account-meta-note"] == value
    _h, containers = conn.get_account()
    assert "sc" in [c["name"] for c in containers]
    _h, objects = conn.get_container("sc")
    assert sorted(o["name"] for o in objects) == sorted(VALUES)
    for value in VALUES:
        conn.delete_object("sc", value)
    conn.post_account({"X-Remove-Account-Meta-Note": "x"})
