"""Large objects against a real storaged-api: ``swift upload`` DLO and SLO.

python-swiftclient's ``swift upload --segment-size --use-dlo`` makes a
dynamic large object (segments in ``<container>_segments``, a manifest
with ``X-Object-Manifest``), ``--use-slo`` (its default when ``/info``
advertises ``slo``) a static one; ``swift download``
must give back the bytes uploaded and ``swift delete`` must remove the
segments too.  A large SLO (many references to one segment) is read
while the serving process's memory is watched: it must stay bounded.
"""

from __future__ import annotations

import hashlib
import http.client as http_client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from tests.functional.api.apiserver import ROOT
from tests.functional.api.apiserver import ApiServer

swiftclient = pytest.importorskip("swiftclient")

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request, tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"), backend=request.param)
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def cli(server, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "swiftclient.shell", "-A", server.auth_url,
         "-U", "test:tester", "-K", "testing", *args],
        cwd=cwd or ROOT, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("slo", [False, True], ids=["dlo", "slo"])
def test_swift_upload_segmented_download_delete(server, tmp_path, slo):
    container = "big-slo" if slo else "big-dlo"
    data = os.urandom(3 * MiB + 12345)
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(data)
    args = ["upload", container, "big.bin", "--segment-size", str(MiB)]
    args.append("--use-slo" if slo else "--use-dlo")
    up = cli(server, *args, cwd=src)
    assert up.returncode == 0, up.stderr + server.output()[-3000:]

    conn = server.connection()
    headers = conn.head_object(container, "big.bin")
    assert int(headers["content-length"]) == len(data)
    if slo:
        assert headers["x-static-large-object"] == "True"
        assert headers["etag"].startswith('"')
    else:
        assert headers["x-object-manifest"].startswith(container + "_segments/")
    _, segments = conn.get_container(container + "_segments")
    assert len(segments) == 4
    _, listing = conn.get_container(container)
    assert [e["bytes"] for e in listing] == [len(data) if slo else 0]

    out = tmp_path / "out"
    out.mkdir()
    down = cli(server, "download", container, "big.bin", cwd=out)
    assert down.returncode == 0, down.stderr
    assert hashlib.md5((out / "big.bin").read_bytes()).digest() == \
        hashlib.md5(data).digest()
    # A range across two segments.
    _, part = conn.get_object(container, "big.bin",
                              headers={"Range": "bytes=%d-%d" % (MiB - 5, MiB + 4)})
    assert part == data[MiB - 5:MiB + 5]

    gone = cli(server, "delete", container, "big.bin")
    assert gone.returncode == 0, gone.stderr
    _, segments = conn.get_container(container + "_segments")
    assert segments == []
    _, listing = conn.get_container(container)
    assert listing == []


def rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_all(conn, container, name, keep):
    """Return the announced length, the bytes read and the first ``keep``."""
    headers, body = conn.get_object(container, name, resp_chunk_size=MiB)
    total = 0
    head = b""
    for chunk in body:
        if len(head) < keep:
            head += chunk[:keep - len(head)]
        total += len(chunk)
    return int(headers["content-length"]), total, head


def test_large_slo_streams_in_bounded_memory(server):
    """A 2000 MiB SLO (1000 references to one 2 MiB segment) read whole.

    The serving process's RSS is sampled while it sends; after a first,
    smaller read has warmed its pools (eventlet's threads, malloc's
    arenas), reading 2000 MiB must not grow it by more than a few chunks.
    """
    conn = server.connection()
    conn.put_container("mem")
    segment = os.urandom(2 * MiB)
    etag = conn.put_object("mem", "seg", segment)
    for name, count in (("warm", 64), ("huge", 1000)):
        manifest = [{"path": "/mem/seg", "etag": etag,
                     "size_bytes": len(segment)}] * count
        conn.put_object("mem", name, json.dumps(manifest),
                        query_string="multipart-manifest=put")
    assert read_all(conn, "mem", "warm", 0)[1] == 64 * len(segment)
    pids = server.serving_pids()
    before = max(rss_kib(p) for p in pids)
    peak = [before]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max([peak[0]] + [rss_kib(p) for p in pids])
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        announced, total, head = read_all(conn, "mem", "huge", 2 * len(segment))
    finally:
        done.set()
        watcher.join()
    assert announced == total == 1000 * len(segment)
    assert head == segment * 2
    assert peak[0] - before < 48 * 1024, (before, peak[0])


def test_manifest_put_with_heartbeat(server):
    """``?heartbeat=on``: 202 at once, the final status in the body."""
    conn = server.connection()
    conn.put_container("hb")
    etag = conn.put_object("hb", "seg", b"x" * 100)
    url, token = conn.get_auth()
    path = urllib.parse.urlsplit(url).path + "/hb/m"
    http = http_client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        http.request("PUT", path + "?multipart-manifest=put&heartbeat=on",
                     json.dumps([{"path": "/hb/seg", "etag": etag}]).encode(),
                     {"X-Auth-Token": token, "Accept": "application/json"})
        resp = http.getresponse()
        body = resp.read()
    finally:
        http.close()
    assert resp.status == 202
    assert body.startswith(b" ")
    result = json.loads(body)
    assert result["Response Status"] == "201 Created"
    assert result["Errors"] == []
    headers = conn.head_object("hb", "m")
    assert headers["etag"] == result["Etag"]
    assert headers["content-length"] == "100"
