"""rclone's swift back end against a real storaged-api: chunked uploads.

rclone uploads a file larger than ``--swift-chunk-size`` as a dynamic
large object: its chunks go to ``<container>_segments``, then a zero-byte
manifest with ``X-Object-Manifest`` is put; reading the object back
concatenates the chunks; deleting it deletes its chunks with Swift's bulk
delete (``DELETE /v1/<account>?bulk-delete``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.servers import skip_or_fail

KiB = 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"))
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def rclone(server, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("rclone")
    if exe is None:
        skip_or_fail("rclone is not installed (Debian package rclone)")
    env = dict(os.environ)
    env.update({
        "RCLONE_CONFIG": os.devnull,
        "RCLONE_CONFIG_SD_TYPE": "swift",
        "RCLONE_CONFIG_SD_AUTH": server.auth_url,
        "RCLONE_CONFIG_SD_USER": "test:tester",
        "RCLONE_CONFIG_SD_KEY": "testing",
        "RCLONE_CONFIG_SD_AUTH_VERSION": "1",
    })
    return subprocess.run([exe, *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_chunked_upload_reads_back(server, tmp_path):
    data = os.urandom(1024 * KiB * 3 + 4321)  # 3 whole chunks and a part
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    up = rclone(server, "copyto", str(src), "sd:photos/big.bin",
                "--swift-chunk-size", "1M")
    assert up.returncode == 0, up.stderr

    conn = server.connection()
    headers = conn.head_object("photos", "big.bin")
    assert headers["x-object-manifest"].startswith("photos_segments/")
    assert int(headers["content-length"]) == len(data)
    _, segments = conn.get_container("photos_segments")
    assert len(segments) == 4
    assert sum(s["bytes"] for s in segments) == len(data)

    back = tmp_path / "back.bin"
    down = rclone(server, "copyto", "sd:photos/big.bin", str(back))
    assert down.returncode == 0, down.stderr
    assert hashlib.md5(back.read_bytes()).digest() == hashlib.md5(data).digest()

    listed = rclone(server, "lsl", "sd:photos")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[0] == str(len(data))


def test_chunked_delete_removes_the_chunks(server, tmp_path):
    src = tmp_path / "gone.bin"
    src.write_bytes(os.urandom(1024 * KiB * 2 + 17))
    up = rclone(server, "copyto", str(src), "sd:trash/gone.bin",
                "--swift-chunk-size", "1M")
    assert up.returncode == 0, up.stderr
    conn = server.connection()
    _, segments = conn.get_container("trash_segments")
    assert len(segments) == 3

    gone = rclone(server, "deletefile", "sd:trash/gone.bin")
    assert gone.returncode == 0, gone.stderr
    _, segments = conn.get_container("trash_segments")
    assert segments == []
    _, objects = conn.get_container("trash")
    assert objects == []
