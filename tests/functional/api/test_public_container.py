"""A container made public with the ``swift`` CLI, read anonymously with curl."""

from __future__ import annotations

import pytest

from tests.functional.api.apiserver import ApiServer
from tests.functional.api.test_swiftclient import cli
from tests.functional.api.test_tempurl import curl  # without credentials

pytest.importorskip("swiftclient")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ApiServer(tmp_path_factory.mktemp("api"), backend="eventlet")
    srv.start()
    yield srv
    status = srv.stop()
    assert status == 0, srv.output()


def test_a_public_container_is_read_anonymously(server, tmp_path):
    page = tmp_path / "index.html"
    page.write_bytes(b"<h1>hello</h1>\n")
    assert cli(server, "upload", "--object-name", "index.html", "site",
               str(page)).returncode == 0
    url = server.url + "/v1/AUTH_test/site"

    # Private: anonymous requests are 401, for the object and the listing.
    assert curl(url + "/index.html")[0] == 401
    assert curl(url)[0] == 401

    # Objects public, listing not (no .rlistings).
    assert cli(server, "post", "-r", ".r:*", "site").returncode == 0
    assert curl(url + "/index.html") == (200, b"<h1>hello</h1>\n")
    assert curl(url)[0] == 401
    assert curl(url + "/index.html", "-X", "DELETE")[0] == 401
    assert curl(url + "/other", "-T", str(page))[0] == 401

    # And the listing too.
    assert cli(server, "post", "-r", ".r:*,.rlistings", "site").returncode == 0
    assert curl(url) == (200, b"index.html\n")

    # A referrer ACL: only pages of example.com, never evil.example.com.
    acl = ".r:.example.com,.r:-evil.example.com"
    assert cli(server, "post", "-r", acl, "site").returncode == 0
    good = ("-H", "Referer: http://www.example.com/page")
    evil = ("-H", "Referer: http://evil.example.com/page")
    assert curl(url + "/index.html", *good)[0] == 200
    assert curl(url + "/index.html", *evil)[0] == 401
    assert curl(url + "/index.html")[0] == 401

    # The owner sees the ACL; anonymous readers never do.
    stat = cli(server, "stat", "site")
    assert ".r:.example.com,.r:-evil.example.com" in stat.stdout
    status, _body = curl(url + "/index.html", "-I", *good)
    assert status == 200

    # Private again.
    assert cli(server, "post", "-r", "", "site").returncode == 0
    assert curl(url + "/index.html", *good)[0] == 401
