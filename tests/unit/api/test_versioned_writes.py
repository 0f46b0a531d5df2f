"""Versioned writes (Swift's X-Versions-Location and X-History-Location)."""

from __future__ import annotations

import threading

import pytest

from storaged.api.handlers import name_lock
from storaged.api.handlers.versioned_writes import DELETE_MARKER_CONTENT_TYPE
from storaged.api.handlers.versioned_writes import versions_prefix
from storaged.api.protocol import HTTPError

A = "/v1/AUTH_test"


def put(client, path, body=b"", headers=None, **kw):
    res = client.as_user("PUT", A + path, headers or {}, body=body, **kw)
    assert res.status in (201, 202), res
    return res


def listing(client, container, **params):
    query = "&".join("%s=%s" % kv for kv in {"format": "json", **params}.items())
    res = client.as_user("GET", A + "/" + container, query=query)
    assert res.status == 200, res
    return res.json()


def versioned(client, header="X-Versions-Location", location="arch"):
    put(client, "/arch")
    put(client, "/c", headers={header: location})


def test_the_location_is_kept_and_shown(client):
    versioned(client)
    head = client.as_user("HEAD", A + "/c")
    assert head.headers["x-versions-location"] == "arch"
    assert "x-history-location" not in head.headers
    # Setting the other mode replaces it: never both.
    res = client.as_user("POST", A + "/c", {"X-History-Location": "arch2"})
    assert res.status == 204
    head = client.as_user("HEAD", A + "/c")
    assert head.headers["x-history-location"] == "arch2"
    assert "x-versions-location" not in head.headers


@pytest.mark.parametrize("headers", [
    {"X-Versions-Location": ""},
    {"X-Remove-Versions-Location": "x"},
    {"X-Remove-History-Location": "x"},
    {"X-History-Location": ""},
])
def test_removal(client, headers):
    versioned(client)
    res = client.as_user("POST", A + "/c", headers)
    assert res.status == 204
    head = client.as_user("HEAD", A + "/c")
    assert "x-versions-location" not in head.headers
    assert "x-history-location" not in head.headers


def test_setting_wins_over_a_removal(client):
    put(client, "/c")
    res = client.as_user("POST", A + "/c", {"X-Remove-Versions-Location": "arch",
                                            "X-Versions-Location": "arch"})
    assert res.status == 204
    assert client.as_user("HEAD", A + "/c").headers["x-versions-location"] == "arch"


def test_both_modes_at_once_is_400(client):
    res = client.as_user("PUT", A + "/c", {"X-Versions-Location": "a",
                                           "X-History-Location": "b"})
    assert res.status == 400
    assert res.body == (b"Only one of x-versions-location or "
                        b"x-history-location may be specified")
    assert res.headers["content-type"] == "text/plain"
    # An empty one of the two is ignored.
    res = client.as_user("PUT", A + "/c", {"X-Versions-Location": "a",
                                           "X-History-Location": ""})
    assert res.status == 201
    assert client.as_user("HEAD", A + "/c").headers["x-versions-location"] == "a"


def test_a_slash_is_412(client):
    res = client.as_user("PUT", A + "/c", {"X-Versions-Location": "a/b"})
    assert res.status == 412
    assert res.body == b"Container name cannot contain slashes"


def test_info_advertises_it(client):
    info = client.call("GET", "/info").json()
    assert info["versioned_writes"] == {
        "allowed_flags": ["x-versions-location", "x-history-location"]}
    assert "object_versioning" not in info


def test_versions_enabled_stays_refused(client):
    res = client.as_user("PUT", A + "/c", {"X-Versions-Enabled": "true"})
    assert res.status == 501


def test_stack_mode_archives_and_restores(client):
    versioned(client)
    put(client, "/c/o", b"one", {"Content-Type": "text/one",
                                 "X-Object-Meta-Color": "red"})
    first = client.as_user("HEAD", A + "/c/o")
    assert listing(client, "arch") == []
    put(client, "/c/o", b"two", {"Content-Type": "text/two"})
    [entry] = listing(client, "arch")
    assert entry["name"] == "001o/" + _internal(first.headers["x-timestamp"])
    assert entry["content_type"] == "text/one"
    old = client.as_user("GET", A + "/arch/" + entry["name"])
    assert old.body == b"one"
    assert old.headers["x-object-meta-color"] == "red"
    # A POST archives nothing.
    assert client.as_user("POST", A + "/c/o", {"X-Object-Meta-A": "b"}).status == 202
    assert len(listing(client, "arch")) == 1
    put(client, "/c/o", b"three")
    assert [e["content_type"] for e in listing(client, "arch")] == [
        "text/one", "text/two"]
    # Each DELETE puts the newest archived version back.
    assert client.as_user("DELETE", A + "/c/o").status == 204
    assert client.as_user("GET", A + "/c/o").body == b"two"
    assert client.as_user("DELETE", A + "/c/o").status == 204
    back = client.as_user("GET", A + "/c/o")
    assert back.body == b"one"
    assert back.headers["content-type"] == "text/one"
    assert back.headers["x-object-meta-color"] == "red"
    assert listing(client, "arch") == []
    assert client.as_user("DELETE", A + "/c/o").status == 204
    assert client.as_user("GET", A + "/c/o").status == 404
    assert client.as_user("DELETE", A + "/c/o").status == 404


def test_history_mode_archives_and_marks_deletes(client):
    versioned(client, "X-History-Location")
    put(client, "/c/o", b"one")
    put(client, "/c/o", b"two")
    assert client.as_user("DELETE", A + "/c/o").status == 204
    assert client.as_user("GET", A + "/c/o").status == 404
    entries = listing(client, "arch")
    assert [e["content_type"] for e in entries][2] == DELETE_MARKER_CONTENT_TYPE
    assert [client.as_user("GET", A + "/arch/" + e["name"]).body
            for e in entries] == [b"one", b"two", b""]
    # Another DELETE: a marker more, and Swift's 404.
    assert client.as_user("DELETE", A + "/c/o").status == 404
    assert len(listing(client, "arch")) == 4


def test_stack_mode_over_history_markers(client):
    versioned(client, "X-History-Location")
    put(client, "/c/o", b"one")
    put(client, "/c/o", b"two")
    assert client.as_user("DELETE", A + "/c/o").status == 204
    client.as_user("POST", A + "/c", {"X-Versions-Location": "arch"})
    # The newest is a marker and nothing is there: restore what it hid.
    assert client.as_user("DELETE", A + "/c/o").status == 204
    assert client.as_user("GET", A + "/c/o").body == b"two"
    assert len(listing(client, "arch")) == 1


def test_copy_onto_a_versioned_object_archives_it(client):
    versioned(client)
    put(client, "/other")
    put(client, "/other/src", b"copied")
    put(client, "/c/o", b"before")
    res = client.as_user("COPY", A + "/other/src", {"Destination": "c/o"})
    assert res.status == 201
    put(client, "/c/o", b"", {"X-Copy-From": "other/src"})
    assert client.as_user("GET", A + "/c/o").body == b"copied"
    bodies = [client.as_user("GET", A + "/arch/" + e["name"]).body
              for e in listing(client, "arch")]
    assert bodies == [b"before", b"copied"]


def test_a_missing_archive_container_fails_the_overwrite(client):
    put(client, "/c", headers={"X-Versions-Location": "nowhere"})
    put(client, "/c/o", b"one")  # nothing to archive yet
    res = client.as_user("PUT", A + "/c/o", body=b"two")
    assert res.status == 412
    assert client.as_user("GET", A + "/c/o").body == b"one"


def test_a_utf8_name_is_prefixed_with_its_byte_length(client):
    versioned(client, location="%61rch")  # percent-decoded: "arch"
    name = "\u00e9t\u00e9"
    path = "/c/" + name
    put(client, path, b"one")
    put(client, path, b"two")
    [entry] = listing(client, "arch")
    assert entry["name"].startswith("005" + name + "/")
    assert versions_prefix(name) == "005" + name + "/"


def test_two_puts_at_once_lose_no_version(client):
    versioned(client)
    put(client, "/c/o", b"v0")
    statuses = []

    def write(i):
        res = client.as_user("PUT", A + "/c/o", body=b"v%d" % i)
        statuses.append(res.status)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 8
    bodies = {client.as_user("GET", A + "/arch/" + e["name"]).body
              for e in listing(client, "arch")}
    bodies.add(client.as_user("GET", A + "/c/o").body)
    assert bodies == {b"v%d" % i for i in range(9)}


def test_a_held_name_lock_excludes_another_holder(tmp_path):
    locks = name_lock.NameLocks(str(tmp_path), wait=0)
    with locks.hold("a", "c", "o"):
        with pytest.raises(HTTPError) as err:
            with locks.hold("a", "c", "o"):
                pass
        assert err.value.response.status == 503
    with locks.hold("a", "c", "o"):
        pass


def _internal(normal):
    # A normal timestamp without offset is its internal form.
    return normal


def test_stack_mode_deletes_what_a_marker_did_not_hide(client):
    versioned(client, "X-History-Location")
    put(client, "/c/o", b"one")
    put(client, "/c/o", b"two")
    assert client.as_user("DELETE", A + "/c/o").status == 204
    put(client, "/c/o", b"three")  # nothing in place: nothing archived
    assert len(listing(client, "arch")) == 3
    client.as_user("POST", A + "/c", {"X-Versions-Location": "arch"})
    # The newest archived entry is a marker, but an object is in place:
    # that object is deleted, the marker stays.
    assert client.as_user("DELETE", A + "/c/o").status == 204
    assert client.as_user("GET", A + "/c/o").status == 404
    assert len(listing(client, "arch")) == 3
    # Now the marker hides nothing: what it hid comes back.
    assert client.as_user("DELETE", A + "/c/o").status == 204
    assert client.as_user("GET", A + "/c/o").body == b"two"
    [left] = listing(client, "arch")
    assert client.as_user("GET", A + "/arch/" + left["name"]).body == b"one"
