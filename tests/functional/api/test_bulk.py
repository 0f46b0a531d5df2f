"""Bulk delete against a real storaged-api: 10,000 objects in one request.

The objects are made by one ``PUT ?extract-archive=tar.gz`` of a
10,000-entry archive, sent chunked; one ``POST ?bulk-delete`` then lists
them all (Swift's limit) and the container itself, first in the body but
deleted after its objects.  The answers stream: whitespace while working,
the counts at the end.  Smaller sets are made by concurrent PUTs.
"""

from __future__ import annotations

from concurrent import futures
import http.client as http_client
import io
import json
import tarfile
import urllib.parse

import pytest

from tests.functional.api.apiserver import ApiServer

COUNT = 10000
THREADS = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"))
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def _session(server):
    conn = server.connection()
    url, token = conn.get_auth()
    parts = urllib.parse.urlsplit(url)
    return parts, token


def _put_many(server, container: str, names: list[str]) -> None:
    parts, token = _session(server)

    def put_slice(chunk: list[str]) -> int:
        http = http_client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        done = 0
        try:
            for name in chunk:
                path = "%s/%s/%s" % (parts.path, container, urllib.parse.quote(name))
                http.request("PUT", path, body=b"x", headers={"X-Auth-Token": token})
                resp = http.getresponse()
                resp.read()
                assert resp.status == 201, (name, resp.status)
                done += 1
        finally:
            http.close()
        return done

    slices = [names[i::THREADS] for i in range(THREADS)]
    with futures.ThreadPoolExecutor(THREADS) as pool:
        assert sum(pool.map(put_slice, slices)) == len(names)


def _tar_gz(names: list[str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return out.getvalue()


def test_extract_then_bulk_delete_ten_thousand(server):
    conn = server.connection()
    names = ["obj/%05d" % i for i in range(COUNT - 1)]
    archive = _tar_gz(["many/" + n for n in names])
    parts, token = _session(server)
    http = http_client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    try:
        http.putrequest("PUT", parts.path + "?extract-archive=tar.gz")
        http.putheader("X-Auth-Token", token)
        http.putheader("Accept", "application/json")
        http.putheader("Transfer-Encoding", "chunked")
        http.endheaders()
        for i in range(0, len(archive), 65536):
            chunk = archive[i:i + 65536]
            http.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        http.send(b"0\r\n\r\n")
        resp = http.getresponse()
        body = resp.read()
    finally:
        http.close()
    assert resp.status == 200
    assert json.loads(body) == {"Number Files Created": COUNT - 1,
                                "Response Status": "201 Created",
                                "Response Body": "", "Errors": []}
    assert int(conn.head_container("many")["x-container-object-count"]) == COUNT - 1

    parts, token = _session(server)
    lines = ["/many"] + ["/many/%s" % urllib.parse.quote(n) for n in names]
    assert len(lines) == COUNT
    http = http_client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    try:
        http.request("POST", parts.path + "?bulk-delete",
                     body="\n".join(lines).encode("ascii"),
                     headers={"X-Auth-Token": token, "Accept": "application/json",
                              "Content-Type": "text/plain"})
        resp = http.getresponse()
        body = resp.read()
    finally:
        http.close()
    assert resp.status == 200
    data = json.loads(body)
    assert data == {"Number Deleted": COUNT, "Number Not Found": 0,
                    "Response Status": "200 OK", "Response Body": "", "Errors": []}
    _headers, containers = conn.get_account()
    assert "many" not in [c["name"] for c in containers]


def test_bulk_delete_leaves_an_empty_listing(server):
    conn = server.connection()
    conn.put_container("keep")
    names = ["k%04d" % i for i in range(300)]
    _put_many(server, "keep", names)
    parts, token = _session(server)
    lines = ["/keep/%s" % n for n in names] + ["/keep/never-there"]
    http = http_client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        http.request("DELETE", parts.path + "?bulk-delete",
                     body="\n".join(lines).encode("ascii"),
                     headers={"X-Auth-Token": token, "Content-Type": "text/plain"})
        resp = http.getresponse()
        body = resp.read().decode()
    finally:
        http.close()
    assert resp.status == 200
    assert "Number Deleted: 300\nNumber Not Found: 1\n" in body
    assert "Response Status: 200 OK\n" in body
    _headers, objects = conn.get_container("keep")
    assert objects == []
