"""Temporary URLs made by the ``swift`` CLI, fetched with curl from storaged-api."""

from __future__ import annotations

import subprocess
import time
from urllib import parse as urlparse

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.api.test_swiftclient import cli

pytest.importorskip("swiftclient")

KEY = "functional-temp-url-key"
#: Seconds the expiring link lives: long enough to be fetched first on a
#: slow machine; the test waits it out.
LIFETIME = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"), backend="eventlet")
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def curl(url, *args):
    """Return (status, body) of ``curl`` on ``url``."""
    out = subprocess.run(
        ["curl", "-s", "-g", "-o", "-", "-w", "\n%{http_code}", *args, url],
        capture_output=True, timeout=120, check=True,
    )
    body, _sep, status = out.stdout.rpartition(b"\n")
    return int(status), body


def tempurl(server, *args):
    made = cli(server, "tempurl", *args)
    assert made.returncode == 0, made.stderr
    return server.url + made.stdout.strip()


def test_swift_tempurl_links_work_with_curl_and_expire(server, tmp_path):
    assert cli(server, "post", "-m", "Temp-URL-Key:" + KEY).returncode == 0
    src = tmp_path / "report.txt"
    src.write_bytes(b"quarterly numbers\n")
    assert cli(server, "upload", "--object-name", "report.txt", "links",
               str(src)).returncode == 0

    # An hour-long link, in each of the CLI's forms.
    for extra in ([], ["--iso8601"], ["--digest", "sha512"], ["--digest", "sha1"]):
        url = tempurl(server, *extra, "GET", "3600", "/v1/AUTH_test/links/report.txt",
                      KEY)
        assert curl(url) == (200, b"quarterly numbers\n"), extra
    url = tempurl(server, "--prefix-based", "GET", "3600", "/v1/AUTH_test/links/rep",
                  KEY)
    parts = urlparse.urlsplit(url)
    whole = parts._replace(path="/v1/AUTH_test/links/report.txt").geturl()
    assert curl(whole) == (200, b"quarterly numbers\n")

    # A PUT link: curl uploads with it, and it reads nothing.
    put = tempurl(server, "PUT", "3600", "/v1/AUTH_test/links/upload.bin", KEY)
    data = tmp_path / "upload.bin"
    data.write_bytes(b"\x00\x01" * 50000)
    status, _body = curl(put, "-T", str(data))
    assert status == 201
    assert curl(put)[0] == 401
    down = cli(server, "download", "links", "upload.bin", "-o", "-")
    assert down.returncode == 0

    # A short-lived link works, then stops working once expired.
    url = tempurl(server, "GET", str(LIFETIME), "/v1/AUTH_test/links/report.txt", KEY)
    query = urlparse.parse_qs(urlparse.urlsplit(url).query)
    expires = int(query["temp_url_expires"][0])
    assert curl(url) == (200, b"quarterly numbers\n")
    while time.time() <= expires + 1:
        time.sleep(1)
    status, body = curl(url)
    assert (status, body) == (401, b"401 Unauthorized: Temp URL invalid\n")

    # A key changed: its old links stop working at once.
    url = tempurl(server, "GET", "3600", "/v1/AUTH_test/links/report.txt", KEY)
    assert curl(url)[0] == 200
    assert cli(server, "post", "-m", "Temp-URL-Key:another").returncode == 0
    assert curl(url)[0] == 401
