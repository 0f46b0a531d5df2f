"""Symlinks, as Swift's symlink middleware makes, follows and lists them."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.unit.api.conftest import sync_headers

BODY = b"the target's body"
TARGET = "/v1/AUTH_test/tc/target"
EMPTY = hashlib.md5(b"").hexdigest()


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def env(client):
    for path in ("/v1/AUTH_test/tc", "/v1/AUTH_test/lc"):
        assert client.as_user("PUT", path).status == 201
    res = client.as_user("PUT", TARGET, {"Content-Type": "application/target",
                                         "X-Object-Meta-Color": "red"}, body=BODY)
    assert res.status == 201
    return client


def link(client, name, target="tc/target", **headers):
    all_headers = {"X-Symlink-Target": target}
    all_headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.as_user("PUT", "/v1/AUTH_test/lc/" + name, all_headers)


def test_info_advertises_symlinks(client):
    info = client.call("GET", "/info").json()
    assert info["symlink"] == {"symloop_max": 2, "static_links": True}


def test_put_get_head_follow_the_link(env):
    res = link(env, "l1")
    assert res.status == 201
    assert res.headers["etag"] == EMPTY
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1")
    assert res.status == 200
    assert res.body == BODY
    assert res.headers["etag"] == md5(BODY)
    assert res.headers["content-location"] == TARGET
    assert res.headers["x-object-meta-color"] == "red"
    assert res.headers["content-type"] == "application/target"
    res = env.as_user("HEAD", "/v1/AUTH_test/lc/l1")
    assert res.status == 200
    assert res.headers["content-length"] == str(len(BODY))
    assert res.headers["content-location"] == TARGET
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1", {"Range": "bytes=4-9"})
    assert res.status == 206
    assert res.body == BODY[4:10]
    # Conditions apply to the target, never to the (empty) link.
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1", {"If-Match": md5(BODY)})
    assert (res.status, res.body) == (200, BODY)
    res = env.as_user("HEAD", "/v1/AUTH_test/lc/l1", {"If-None-Match": EMPTY})
    assert res.status == 200
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1", {"If-None-Match": md5(BODY)})
    assert res.status == 304
    assert res.headers["content-location"] == TARGET


def test_an_empty_object_is_no_link(env):
    assert env.as_user("PUT", "/v1/AUTH_test/lc/empty", body=b"").status == 201
    for headers in ({}, {"If-Match": "other"}, {"Range": "bytes=5-"}):
        res = env.as_user("GET", "/v1/AUTH_test/lc/empty", headers)
        assert res.status in (200, 412, 416)
        assert "content-location" not in res.headers


def test_symlink_get_shows_the_link_itself(env):
    link(env, "l1", X_Object_Meta_Alpha="a")
    for method in ("GET", "HEAD"):
        res = env.as_user(method, "/v1/AUTH_test/lc/l1", query="symlink=get")
        assert res.status == 200
        assert res.body == b""
        assert res.headers["content-length"] == "0"
        assert res.headers["x-symlink-target"] == "tc/target"
        assert "x-symlink-target-account" not in res.headers
        assert res.headers["content-type"] == "application/symlink"
        assert res.headers["x-object-meta-alpha"] == "a"
        assert "content-location" not in res.headers
        assert not any(k.startswith("x-object-sysmeta") for k in res.headers)


def test_target_is_kept_percent_encoded(env):
    assert env.as_user("PUT", "/v1/AUTH_test/tc/a%20b", body=b"x").status == 201
    assert link(env, "l1", target="tc/a b").status == 201
    res = env.as_user("HEAD", "/v1/AUTH_test/lc/l1", query="symlink=get")
    assert res.headers["x-symlink-target"] == "tc/a%20b"
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1")
    assert res.body == b"x"
    assert res.headers["content-location"] == "/v1/AUTH_test/tc/a%20b"


def test_users_cannot_set_the_reserved_keys(env):
    res = env.as_user("PUT", "/v1/AUTH_test/lc/o", {
        "X-Object-Sysmeta-Symlink-Target": "tc/target"}, body=b"")
    assert res.status == 201
    res = env.as_user("GET", "/v1/AUTH_test/lc/o")
    assert res.status == 200
    assert "content-location" not in res.headers
    assert "x-symlink-target" not in res.headers


@pytest.mark.parametrize("headers, status, body", [
    ({"X-Symlink-Target": "target"}, 412,
     b"X-Symlink-Target header must be of the form <container name>/<object name>"),
    ({"X-Symlink-Target": "/tc/target"}, 412,
     b"X-Symlink-Target header must be of the form <container name>/<object name>"),
    ({"X-Symlink-Target": "lc/l1"}, 400, b"Symlink cannot target itself"),
    ({"X-Symlink-Target": "tc/t", "X-Symlink-Target-Account": ""}, 412,
     b"Account name cannot be empty"),
    ({"X-Symlink-Target": "tc/t", "X-Symlink-Target-Account": "a/b"}, 412,
     b"Account name cannot contain slashes"),
    ({"X-Symlink-Target": "tc/t", "X-Symlink-Target-Etag": 'a"b'}, 400,
     b"Bad X-Symlink-Target-Etag format"),
])
def test_bad_targets(env, headers, status, body):
    res = env.as_user("PUT", "/v1/AUTH_test/lc/l1", headers)
    assert (res.status, res.body) == (status, body)


def test_a_body_is_refused(env):
    res = env.as_user("PUT", "/v1/AUTH_test/lc/l1", {"X-Symlink-Target": "tc/t"},
                      body=b"data")
    assert res.status == 400
    assert res.body == b"Symlink requests require a zero byte body"
    assert res.headers["content-type"] == "text/plain"


def test_missing_target_is_404_with_its_location(env):
    link(env, "l1", target="tc/nowhere")
    for method in ("GET", "HEAD"):
        res = env.as_user(method, "/v1/AUTH_test/lc/l1")
        assert res.status == 404
        assert res.headers["content-location"] == "/v1/AUTH_test/tc/nowhere"


def test_chains_stop_at_symloop_max(env):
    link(env, "l1")
    link(env, "l2", target="lc/l1")
    res = env.as_user("GET", "/v1/AUTH_test/lc/l2")
    assert (res.status, res.body) == (200, BODY)
    assert res.headers["content-location"] == TARGET
    link(env, "l3", target="lc/l2")
    res = env.as_user("GET", "/v1/AUTH_test/lc/l3")
    assert res.status == 409
    assert res.body == b"Too many levels of symbolic links, maximum allowed is 2"
    assert env.as_user("HEAD", "/v1/AUTH_test/lc/l3").status == 409
    assert env.as_user("GET", "/v1/AUTH_test/lc/l3", query="symlink=get").status == 200


def test_links_to_each_other(env):
    link(env, "a", target="lc/b")
    link(env, "b", target="lc/a")
    assert env.as_user("GET", "/v1/AUTH_test/lc/a").status == 409


def test_static_link(env):
    etag = md5(BODY)
    res = link(env, "s1", X_Symlink_Target_Etag='"%s"' % etag)
    assert res.status == 201
    res = env.as_user("HEAD", "/v1/AUTH_test/lc/s1", query="symlink=get")
    assert res.headers["x-symlink-target-etag"] == etag
    assert res.headers["x-symlink-target-bytes"] == str(len(BODY))
    # The target's type, when the PUT gives none.
    assert res.headers["content-type"] == "application/target"
    res = env.as_user("GET", "/v1/AUTH_test/lc/s1", {"If-Match": etag})
    assert (res.status, res.body) == (200, BODY)
    res = env.as_user("GET", "/v1/AUTH_test/lc/s1", {"If-Match": "nope"})
    assert res.status == 412
    assert res.headers["content-location"] == TARGET
    # The target changes: the link is broken (409 before any condition).
    env.as_user("PUT", TARGET, body=b"new body")
    for headers in ({}, {"If-Match": "nope"}):
        res = env.as_user("GET", "/v1/AUTH_test/lc/s1", headers)
        assert res.status == 409
        assert res.headers["content-location"] == TARGET
    assert res.body == (b"Object Etag %r does not match X-Symlink-Target-Etag "
                        b"header %r" % (md5(b"new body").encode(), etag.encode())
                        ).replace(b"b'", b"'")
    env.as_user("DELETE", TARGET)
    res = env.as_user("GET", "/v1/AUTH_test/lc/s1")
    assert res.status == 404


def test_static_link_put_checks_its_target(env):
    res = link(env, "s1", X_Symlink_Target_Etag="not-the-etag")
    assert res.status == 409
    assert res.body == (
        b"Object Etag '%s' does not match X-Symlink-Target-Etag header "
        b"'not-the-etag'" % md5(BODY).encode())
    res = link(env, "s1", target="tc/nowhere", X_Symlink_Target_Etag=EMPTY)
    assert (res.status, res.body) == (409, b"X-Symlink-Target does not exist")
    assert res.headers["content-location"] == "/v1/AUTH_test/tc/nowhere"


def test_static_link_to_links(env):
    link(env, "dyn")
    # A static link to a dynamic link checks the link's own (empty) ETag.
    assert link(env, "s1", target="lc/dyn", X_Symlink_Target_Etag=EMPTY).status == 201
    res = env.as_user("GET", "/v1/AUTH_test/lc/s1")
    assert (res.status, res.body) == (200, BODY)
    res = env.as_user("HEAD", "/v1/AUTH_test/lc/s1", query="symlink=get")
    assert res.headers["x-symlink-target-bytes"] == "0"
    assert link(env, "s2", target="lc/dyn",
                X_Symlink_Target_Etag=md5(BODY)).status == 409
    # A static link to a static link is checked through it.
    link(env, "s3", X_Symlink_Target_Etag=md5(BODY))
    assert link(env, "s4", target="lc/s3",
                X_Symlink_Target_Etag=md5(BODY)).status == 201
    res = link(env, "s5", target="lc/s3", X_Symlink_Target_Etag="other")
    assert (res.status, res.body) == (
        409, b"X-Symlink-Target-Etag headers do not match")


def test_post_is_applied_to_the_link_and_redirected(env):
    link(env, "l1")
    res = env.as_user("POST", "/v1/AUTH_test/lc/l1", {"X-Object-Meta-Alpha": "apple"})
    assert res.status == 307
    assert res.headers["location"] == TARGET
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1", query="symlink=get")
    assert res.headers["x-object-meta-alpha"] == "apple"
    assert res.headers["x-symlink-target"] == "tc/target"
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1")
    assert res.body == BODY
    assert "x-object-meta-alpha" not in res.headers
    res = env.as_user("POST", TARGET, {"X-Symlink-Target": "tc/x"})
    assert res.status == 400
    assert res.body == b"A PUT request is required to set a symlink target"


def test_post_to_static_link_gives_its_etag(env):
    link(env, "s1", X_Symlink_Target_Etag=md5(BODY))
    res = env.as_user("POST", "/v1/AUTH_test/lc/s1", {"Content-Type": "app/foo"})
    assert res.status == 307
    assert res.headers["x-symlink-target-etag"] == md5(BODY)
    listing = env.as_user("GET", "/v1/AUTH_test/lc", query="format=json").json()
    assert listing[0]["content_type"] == "app/foo"
    assert listing[0]["symlink_etag"] == md5(BODY)


def test_delete_removes_the_link_only(env):
    link(env, "l1")
    assert env.as_user("DELETE", "/v1/AUTH_test/lc/l1").status == 204
    assert env.as_user("GET", "/v1/AUTH_test/lc/l1").status == 404
    assert env.as_user("GET", TARGET).body == BODY


def test_listings(env):
    link(env, "l1")
    link(env, "s1", X_Symlink_Target_Etag=md5(BODY))
    listing = env.as_user("GET", "/v1/AUTH_test/lc", query="format=json").json()
    for entry in listing:
        entry.pop("last_modified")
    assert listing == [
        {"name": "l1", "hash": EMPTY, "bytes": 0,
         "content_type": "application/symlink", "symlink_path": TARGET},
        {"name": "s1", "hash": EMPTY, "bytes": 0,
         "content_type": "application/target", "symlink_path": TARGET,
         "symlink_etag": md5(BODY), "symlink_bytes": len(BODY)},
    ]
    xml = env.as_user("GET", "/v1/AUTH_test/lc", query="format=xml").body
    assert b"symlink" not in xml.replace(b"application/symlink", b"")


def test_account_of_the_target(env):
    link(env, "l1", X_Symlink_Target_Account="AUTH_test")
    res = env.as_user("HEAD", "/v1/AUTH_test/lc/l1", query="symlink=get")
    assert res.headers["x-symlink-target-account"] == "AUTH_test"
    assert env.as_user("GET", "/v1/AUTH_test/lc/l1").body == BODY
    # Another account's target needs read access to it, as a direct GET.
    assert env.as_user("PUT", "/v1/AUTH_other/oc", login="other:admin").status == 201
    res = env.as_user("PUT", "/v1/AUTH_other/oc/l2", {
        "X-Symlink-Target": "tc/target", "X-Symlink-Target-Account": "AUTH_test",
    }, login="other:admin")
    assert res.status == 201
    res = env.as_user("GET", "/v1/AUTH_other/oc/l2", login="other:admin")
    assert res.status == 403
    assert res.headers["content-location"] == TARGET
    listing = env.as_user("GET", "/v1/AUTH_other/oc", query="format=json",
                          login="other:admin").json()
    assert listing[0]["symlink_path"] == TARGET


def test_copy_of_a_link(env):
    link(env, "l1")
    # Without ?symlink=get: the target is copied.
    res = env.as_user("PUT", "/v1/AUTH_test/lc/copy", {"X-Copy-From": "lc/l1"})
    assert res.status == 201
    res = env.as_user("GET", "/v1/AUTH_test/lc/copy", query="symlink=get")
    assert res.body == BODY
    assert "x-symlink-target" not in res.headers
    # With it: the link.
    res = env.as_user("PUT", "/v1/AUTH_test/lc/copy2", {"X-Copy-From": "lc/l1"},
                      query="symlink=get")
    assert res.status == 201
    res = env.as_user("HEAD", "/v1/AUTH_test/lc/copy2", query="symlink=get")
    assert res.headers["x-symlink-target"] == "tc/target"
    res = env.as_user("COPY", "/v1/AUTH_test/lc/l1", {"Destination": "lc/copy3"},
                      query="symlink=get")
    assert res.status == 201
    res = env.as_user("GET", "/v1/AUTH_test/lc/copy3")
    assert res.body == BODY
    assert res.headers["content-location"] == TARGET


def test_link_to_a_large_object(env):
    seg = env.as_user("PUT", "/v1/AUTH_test/tc/seg", body=b"x" * 10)
    manifest = json.dumps([{"path": "/tc/seg", "etag": seg.headers["etag"]}])
    res = env.as_user("PUT", "/v1/AUTH_test/tc/slo", body=manifest.encode(),
                      query="multipart-manifest=put")
    assert res.status == 201
    raw = env.as_user("HEAD", "/v1/AUTH_test/tc/slo", query="multipart-manifest=get")
    link(env, "l1", target="tc/slo")
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1")
    assert (res.status, res.body) == (200, b"x" * 10)
    res = env.as_user("GET", "/v1/AUTH_test/lc/l1", query="multipart-manifest=get")
    assert json.loads(res.body)[0]["name"] == "/tc/seg"
    # A static link to it names the manifest's ETag, and lists the SLO's.
    slo_etag = env.as_user("HEAD", "/v1/AUTH_test/tc/slo").headers["etag"]
    res = link(env, "s1", target="tc/slo", X_Symlink_Target_Etag=slo_etag)
    assert res.status == 409
    res = link(env, "s1", target="tc/slo", X_Symlink_Target_Etag=raw.headers["etag"])
    assert res.status == 201
    assert env.as_user("GET", "/v1/AUTH_test/lc/s1").body == b"x" * 10
    listing = env.as_user("GET", "/v1/AUTH_test/lc", query="format=json").json()
    entry = next(e for e in listing if e["name"] == "s1")
    assert entry["symlink_bytes"] == 10
    assert entry["slo_etag"] == slo_etag
    assert entry["bytes"] == 0


def test_sync_sender_puts_a_link_as_sent(client):
    client.as_user("PUT", "/v1/AUTH_test/c", {"X-Container-Sync-Key": "sync-secret"})
    path = "/v1/AUTH_test/c/l1"
    headers = sync_headers("PUT", path)
    # A static link whose target has not arrived yet is taken as sent.
    headers.update({"X-Symlink-Target": "c/t", "X-Symlink-Target-Etag": "abc",
                    "X-Symlink-Target-Bytes": "3", "Content-Length": "0"})
    res = client.call("PUT", path, headers)
    assert res.status == 201, res
    res = client.as_user("HEAD", path, query="symlink=get")
    assert res.headers["x-symlink-target"] == "c/t"
    assert res.headers["x-symlink-target-etag"] == "abc"
    assert res.headers["x-symlink-target-bytes"] == "3"
    assert res.headers["x-timestamp"] == "1700000000.00000"
    listing = client.as_user("GET", "/v1/AUTH_test/c", query="format=json").json()
    assert listing[0]["symlink_path"] == "/v1/AUTH_test/c/t"
