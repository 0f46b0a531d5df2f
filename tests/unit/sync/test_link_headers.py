"""A symlink's reserved metadata goes as the headers of a link's PUT."""

from __future__ import annotations

from storaged.sync.engine import link_headers


def test_a_link_goes_with_its_target_headers():
    headers = link_headers({
        "X-Object-Meta-Color": "red",
        "X-Object-Sysmeta-Symlink-Target": "c/a%20b",
        "X-Object-Sysmeta-Symlink-Target-Account": "AUTH_x",
        "X-Object-Sysmeta-Symlink-Target-Etag": "abc",
        "X-Object-Sysmeta-Symlink-Target-Bytes": "3",
        "X-Object-Sysmeta-Symlink-Path": "/v1/AUTH_x/c/a%20b",
        "X-Object-Sysmeta-Symlink-Slo-Etag": "def",
        "X-Object-Sysmeta-Slo-Etag": "kept",
    })
    assert headers == {
        "X-Object-Meta-Color": "red",
        "X-Symlink-Target": "c/a%20b",
        "X-Symlink-Target-Account": "AUTH_x",
        "X-Symlink-Target-Etag": "abc",
        "X-Symlink-Target-Bytes": "3",
        "X-Object-Sysmeta-Slo-Etag": "kept",
    }


def test_an_object_goes_as_it_is():
    meta = {"X-Object-Meta-Color": "red", "Content-Encoding": "gzip"}
    assert link_headers(meta) == meta
