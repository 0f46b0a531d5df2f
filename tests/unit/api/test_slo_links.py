"""Static large objects whose segments (or nested manifests) are symlinks."""

from __future__ import annotations

import hashlib
import json

ACCT = "/v1/AUTH_test"


def link(client, path, target, **headers):
    res = client.as_user("PUT", ACCT + path, {"X-Symlink-Target": target, **headers})
    assert res.status == 201, res
    return res


def manifest(client, path, *segments):
    body = json.dumps([{"path": s} for s in segments]).encode()
    return client.as_user("PUT", ACCT + path, body=body, query="multipart-manifest=put")


def test_segments_that_are_links_are_read_through(client):
    assert client.as_user("PUT", ACCT + "/c").status == 201
    assert client.as_user("PUT", ACCT + "/c/a", body=b"a" * 10).status == 201
    assert client.as_user("PUT", ACCT + "/c/b", body=b"b" * 5).status == 201
    link(client, "/c/la", "c/a")
    link(client, "/c/lla", "c/la")  # two links in a row
    link(client, "/c/lb", "c/b")
    res = manifest(client, "/c/m", "/c/lla", "/c/lb")
    assert res.status == 201, res
    # The manifest records the targets' sizes and ETags, as Swift's HEAD
    # through the link answers them.
    got = client.as_user("GET", ACCT + "/c/m", query="multipart-manifest=get").json()
    md5 = [hashlib.md5(data).hexdigest() for data in (b"a" * 10, b"b" * 5)]
    assert [(s["bytes"], s["hash"]) for s in got] == [(10, md5[0]), (5, md5[1])]
    res = client.as_user("GET", ACCT + "/c/m")
    assert (res.status, res.body) == (200, b"a" * 10 + b"b" * 5)
    res = client.as_user("GET", ACCT + "/c/m", {"Range": "bytes=8-11"})
    assert (res.status, res.body) == (206, b"aabb")


def test_a_link_loop_is_a_segment_problem(client):
    assert client.as_user("PUT", ACCT + "/c").status == 201
    link(client, "/c/x", "c/y")
    link(client, "/c/y", "c/z")
    link(client, "/c/z", "c/x")
    res = manifest(client, "/c/m", "/c/x")
    assert res.status == 400
    assert b"409 Conflict" in res.body


def test_a_nested_manifest_reached_through_a_link(client):
    assert client.as_user("PUT", ACCT + "/c").status == 201
    assert client.as_user("PUT", ACCT + "/c/s", body=b"seg").status == 201
    assert manifest(client, "/c/inner", "/c/s").status == 201
    link(client, "/c/to-inner", "c/inner")
    assert manifest(client, "/c/outer", "/c/to-inner", "/c/s").status == 201
    res = client.as_user("GET", ACCT + "/c/outer")
    assert (res.status, res.body) == (200, b"segseg")


def test_a_segment_link_replaced_after_the_manifest_ends_the_body(client):
    assert client.as_user("PUT", ACCT + "/c").status == 201
    assert client.as_user("PUT", ACCT + "/c/a", body=b"aaa").status == 201
    assert client.as_user("PUT", ACCT + "/c/other", body=b"zzz").status == 201
    link(client, "/c/la", "c/a")
    assert manifest(client, "/c/m", "/c/la").status == 201
    link(client, "/c/la", "c/other")  # same size, another ETag
    assert client.as_user("GET", ACCT + "/c/m").status == 409



def test_the_read_check_does_not_hold_its_request(client):
    # A check that reaches back to the environ holding it makes a cycle:
    # every large object body keeping the check would then wait for the
    # cycle collector, perhaps until the interpreter exits, when eventlet's
    # pool can no longer close its segments (storaged-api hung on SIGTERM).
    import gc

    from storaged.api import access
    from storaged.api import auth
    from storaged.api.protocol import Request

    env = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/AUTH_test/c/m",
           "HTTP_REFERER": "http://example.com/"}
    req = Request(env, "/v1/AUTH_test/c/m", "tx1")
    client.app.handlers.access.remember(req, auth.Identity("test:tester", "AUTH_test"))
    check = access.read_check(req)
    assert check is not None
    seen, todo = set(), [check]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        assert obj is not env and obj is not req, "the check reaches its request"
        if isinstance(obj, (tuple, list, dict)) or callable(obj):
            todo.extend(r for r in gc.get_referents(obj)
                        if isinstance(r, (tuple, list, dict, Request))
                        or (callable(r) and not isinstance(r, type)))
