"""A real storaged-api driven by python-swiftclient: the ``swift`` CLI and its API."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys

import pytest

from tests.functional.api.apiserver import ROOT
from tests.functional.api.apiserver import ApiServer

swiftclient = pytest.importorskip("swiftclient")
from swiftclient import client as swift  # noqa: E402

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request, tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"), backend=request.param)
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


@pytest.fixture
def conn(server):
    return server.connection()


def cli(server, *args, login="test:tester", key="testing", cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "swiftclient.shell", "-A", server.auth_url,
         "-U", login, "-K", key, *args],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=120,
    )


def test_cli_upload_list_stat_download_delete(server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "docs").mkdir()
    (src / "docs" / "b.bin").write_bytes(os.urandom(300_000))
    (src / "ünï cödé.txt").write_text("unicode\n")
    up = cli(server, "upload", "cli", ".", cwd=src)
    assert up.returncode == 0, up.stderr
    listed = cli(server, "list", "cli")
    assert listed.stdout.splitlines() == ["a.txt", "docs/b.bin", "ünï cödé.txt"]
    assert cli(server, "list", "cli", "--delimiter", "/").stdout.splitlines() == [
        "a.txt", "docs/", "ünï cödé.txt"]
    assert cli(server, "list").stdout.splitlines() == ["cli"]
    stat = cli(server, "stat", "cli")
    assert "Objects: 3" in stat.stdout
    stat = cli(server, "stat", "cli", "docs/b.bin")
    assert "Content Length: 300000" in stat.stdout
    post = cli(server, "post", "-m", "color:blue", "cli", "a.txt")
    assert post.returncode == 0, post.stderr
    assert "Meta Color: blue" in cli(server, "stat", "cli", "a.txt").stdout
    dst = tmp_path / "dst"
    dst.mkdir()
    down = cli(server, "download", "cli", cwd=dst)
    assert down.returncode == 0, down.stderr
    for name in ("a.txt", "docs/b.bin", "ünï cödé.txt"):
        assert (dst / name).read_bytes() == (src / name).read_bytes()
    delete = cli(server, "delete", "cli")
    assert delete.returncode == 0, delete.stderr
    assert cli(server, "list").stdout == ""


def test_cli_account_metadata(server):
    post = cli(server, "post", "-m", "Color:blue", "-m", "Note:värde")
    assert post.returncode == 0, post.stderr
    stat = cli(server, "stat")
    assert stat.returncode == 0, stat.stderr
    assert "Meta Color: blue" in stat.stdout
    assert "Meta Note: värde" in stat.stdout
    post = cli(server, "post", "-m", "Color:")  # an empty value removes
    assert post.returncode == 0, post.stderr
    stat = cli(server, "stat")
    assert "Meta Color" not in stat.stdout and "Meta Note: värde" in stat.stdout
    cli(server, "post", "-m", "Note:")


def test_account_post_limits(conn):
    conn.post_account({"X-Account-Meta-Team": "storage"})
    assert conn.head_account()["x-account-meta-team"] == "storage"
    with pytest.raises(swift.ClientException) as info:
        conn.post_account({"X-Account-Meta-" + "k" * 129: "v"})
    assert info.value.http_status == 400
    conn.post_account({"X-Remove-Account-Meta-Team": "x"})
    assert "x-account-meta-team" not in conn.head_account()


def test_cli_bad_key(server):
    out = cli(server, "list", key="wrong")
    assert out.returncode != 0
    assert "401" in out.stderr or "Unauthorized" in out.stderr


def md5_of_stream(chunks):
    digest = hashlib.md5()
    total = 0
    for chunk in chunks:
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


class Pattern:
    """A file-like stream of ``size`` pseudo-random bytes, made as it is read."""

    def __init__(self, size, seed=b"storaged"):
        self.size = size
        self.block = hashlib.sha256(seed).digest() * 4096   # 128 KiB
        self.pos = 0
        self.md5 = hashlib.md5()

    def read(self, n=-1):
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        out = bytearray()
        while len(out) < n:
            start = (self.pos + len(out)) % len(self.block)
            out += self.block[start:start + n - len(out)]
        self.pos += n
        data = bytes(out)
        self.md5.update(data)
        return data


@pytest.mark.slow
def test_large_object_streamed_both_ways(conn):
    conn.put_container("big")
    src = Pattern(50 * MiB)
    etag = conn.put_object("big", "50mib", contents=src, content_length=src.size,
                           chunk_size=MiB)
    assert etag == src.md5.hexdigest()
    headers, body = conn.get_object("big", "50mib", resp_chunk_size=MiB)
    assert int(headers["content-length"]) == 50 * MiB
    assert md5_of_stream(body) == (etag, 50 * MiB)


def test_chunked_upload(conn):
    conn.put_container("chunked")
    parts = [os.urandom(1000 + i * 7919) for i in range(40)]
    expected = hashlib.md5(b"".join(parts)).hexdigest()
    etag = conn.put_object("chunked", "gen", contents=iter(parts))
    assert etag == expected
    headers = conn.head_object("chunked", "gen")
    assert int(headers["content-length"]) == sum(map(len, parts))
    _, body = conn.get_object("chunked", "gen")
    assert body == b"".join(parts)


def test_etag_mismatch_is_422(conn):
    conn.put_container("etag")
    with pytest.raises(swift.ClientException) as info:
        conn.put_object("etag", "o", contents=b"data", etag="0" * 32)
    assert info.value.http_status == 422
    with pytest.raises(swift.ClientException) as info:
        conn.head_object("etag", "o")
    assert info.value.http_status == 404


def test_ranges(conn):
    conn.put_container("ranges")
    data = os.urandom(10_000)
    conn.put_object("ranges", "r", contents=data)
    headers, body = conn.get_object("ranges", "r", headers={"Range": "bytes=100-199"})
    assert body == data[100:200]
    assert headers["content-range"] == "bytes 100-199/10000"
    _, body = conn.get_object("ranges", "r", headers={"Range": "bytes=-10"})
    assert body == data[-10:]
    _, body = conn.get_object("ranges", "r", headers={"Range": "bytes=9990-"})
    assert body == data[9990:]
    with pytest.raises(swift.ClientException) as info:
        conn.get_object("ranges", "r", headers={"Range": "bytes=10000-"})
    assert info.value.http_status == 416


def test_metadata(conn):
    conn.put_container("meta", headers={"X-Container-Meta-Owner": "team"})
    assert conn.head_container("meta")["x-container-meta-owner"] == "team"
    conn.post_container("meta", {"X-Container-Meta-Owner": "other"})
    assert conn.head_container("meta")["x-container-meta-owner"] == "other"
    conn.put_object("meta", "o", contents=b"x", content_type="text/x-test",
                    headers={"X-Object-Meta-Color": "red"})
    headers = conn.head_object("meta", "o")
    assert headers["x-object-meta-color"] == "red"
    assert headers["content-type"] == "text/x-test"
    assert headers["etag"].strip('"') == hashlib.md5(b"x").hexdigest()
    assert "x-timestamp" in headers and "last-modified" in headers
    conn.post_object("meta", "o", {"X-Object-Meta-Shape": "round"})
    headers = conn.head_object("meta", "o")
    assert headers["x-object-meta-shape"] == "round"
    assert "x-object-meta-color" not in headers


def test_listings_with_delimiters_and_unicode(conn):
    conn.put_container("tree")
    names = ["a/1", "a/2", "a/b/3", "c", "é/ü", "z\u65e5\u672c"]
    for name in names:
        conn.put_object("tree", name, contents=name.encode())
    _, listing = conn.get_container("tree", delimiter="/")
    assert [e.get("name", e.get("subdir")) for e in listing] == [
        "a/", "c", "z\u65e5\u672c", "é/"]
    _, listing = conn.get_container("tree", prefix="a/", delimiter="/")
    assert [e.get("name", e.get("subdir")) for e in listing] == ["a/1", "a/2", "a/b/"]
    _, listing = conn.get_container("tree", marker="a/2", limit=2)
    assert [e["name"] for e in listing] == ["a/b/3", "c"]
    _, listing = conn.get_container("tree", full_listing=True)
    assert sorted(e["name"] for e in listing) == sorted(names)
    assert conn.get_object("tree", "é/ü")[1] == "é/ü".encode()
    account, containers = conn.get_account()
    assert "tree" in [c["name"] for c in containers]
    assert int(account["x-account-object-count"]) >= len(names)


def test_delete_statuses(conn):
    conn.put_container("del")
    conn.put_object("del", "o", contents=b"x")
    with pytest.raises(swift.ClientException) as info:
        conn.delete_container("del")
    assert info.value.http_status == 409
    conn.delete_object("del", "o")
    with pytest.raises(swift.ClientException) as info:
        conn.delete_object("del", "o")
    assert info.value.http_status == 404
    conn.delete_container("del")
    with pytest.raises(swift.ClientException) as info:
        conn.head_container("del")
    assert info.value.http_status == 404


def test_bad_tokens(server, conn):
    url, _token = conn.get_auth()
    for token in ("AUTH_tkforged.00", "nonsense"):
        with pytest.raises(swift.ClientException) as info:
            swift.get_account(url, token)
        assert info.value.http_status == 401
    with pytest.raises(swift.ClientException) as info:
        swift.get_auth(server.auth_url, "test:tester", "wrong", auth_version="1")
    assert info.value.http_status == 401
    reader = server.connection("test:reader")
    reader_url, reader_token = reader.get_auth()
    with pytest.raises(swift.ClientException) as info:
        swift.get_account(reader_url.replace("AUTH_test", "AUTH_other"),
                          reader_token)
    assert info.value.http_status == 403


def raw(server, method, path, headers=None, body=None, attempts=3):
    """Send one request as written; return (status, headers, body).

    A server may answer a request it refuses (a 414) and close before the
    client has sent all of it; the client then sees a broken pipe or a
    reset, sometimes before it could read the answer.  That transport race
    is retried: a server that never answers still fails.
    """
    for attempt in range(attempts):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            try:
                conn.endheaders(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered early: read the answer
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        except (ConnectionResetError, http.client.RemoteDisconnected):
            if attempt == attempts - 1:
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("path, status", [
    ("/v1/AUTH_test/hostile/a%00b", 412),
    ("/v1/AUTH_test/hostile/%ff%fe", 412),
    ("/v1/AUTH_test/hostile/a/../b", 400),
    ("/v1/AUTH_test/hostile/..", 400),
    ("/v1/AUTH_test/../hostile", 400),
    ("/v1/AUTH_test/hostile/a%0Ab", 400),
    ("/v1/AUTH_test/hostile/" + "n" * 1025, 400),
    ("/v1/AUTH_test/" + "c" * 257, 400),
    ("/v1/AUTH_test/hostile/" + "x" * 9000, 414),
])
def test_hostile_paths(server, conn, path, status):
    conn.put_container("hostile")
    _url, token = conn.get_auth()
    code, headers, body = raw(server, "PUT", path, {"X-Auth-Token": token}, b"x")
    assert code == status, body
    assert b"Traceback" not in body
    if code != 414:
        assert headers["X-Trans-Id"].startswith("tx")
    _, listing = conn.get_container("hostile")
    assert listing == []
