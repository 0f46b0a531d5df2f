"""Who may do what: tempauth's rules, container ACLs and account ACLs."""

from __future__ import annotations

import json

import pytest

ACCT = "/v1/AUTH_test"
CONT = ACCT + "/c"
OBJ = CONT + "/o"


@pytest.fixture
def filled(client):
    assert client.as_user("PUT", CONT).status == 201
    assert client.as_user("PUT", OBJ, body=b"data").status == 201
    return client


def acl(client, **headers):
    names = {"read": "X-Container-Read", "write": "X-Container-Write"}
    res = client.as_user("POST", CONT, {names[k]: v for k, v in headers.items()})
    assert res.status == 204, res


def account_acl(client, value):
    res = client.as_user("POST", ACCT, {"X-Account-Access-Control": json.dumps(value)})
    assert res.status == 204, res


def test_a_user_without_admin_is_not_the_owner(filled):
    for method, path in [("GET", ACCT), ("HEAD", CONT), ("GET", CONT), ("GET", OBJ),
                         ("PUT", OBJ), ("DELETE", OBJ), ("POST", CONT),
                         ("PUT", CONT + "2")]:
        res = filled.as_user(method, path, login="test:reader")
        assert res.status == 403, (method, path, res)
    assert filled.as_user("GET", OBJ).body == b"data"


def test_anonymous_requests_are_401_with_the_realm(filled):
    res = filled.call("GET", OBJ)
    assert res.status == 401
    assert res.headers["www-authenticate"] == 'Swift realm="AUTH_test"'
    # A token of another system is no token; a bad token of ours is 401.
    assert filled.call("GET", OBJ, {"X-Auth-Token": "gAAAA-not-ours"}).status == 401
    assert filled.call("GET", OBJ, {"X-Auth-Token": "AUTH_tkbad"}).status == 401


def test_read_acl_lets_a_user_read_and_list_but_not_write(filled):
    acl(filled, read="test:reader")
    assert filled.as_user("GET", OBJ, login="test:reader").body == b"data"
    assert filled.as_user("HEAD", OBJ, login="test:reader").status == 200
    listing = filled.as_user("GET", CONT, login="test:reader")
    assert (listing.status, listing.body) == (200, b"o\n")
    assert "x-container-read" not in listing.headers  # owner-only
    assert filled.as_user("HEAD", CONT).headers["x-container-read"] == "test:reader"
    for method in ("PUT", "POST", "DELETE"):
        assert filled.as_user(method, OBJ, login="test:reader").status == 403
    assert filled.as_user("GET", OBJ, login="other:admin").status == 403


def test_write_acl_lets_a_user_write_objects_not_the_container(filled):
    acl(filled, write="test:reader")
    res = filled.as_user("PUT", CONT + "/new", login="test:reader", body=b"x")
    assert res.status == 201
    assert filled.as_user("POST", CONT + "/new", login="test:reader").status == 202
    assert filled.as_user("DELETE", OBJ, login="test:reader").status == 204
    assert filled.as_user("GET", CONT + "/new", login="test:reader").status == 403
    assert filled.as_user("POST", CONT, {"X-Container-Meta-A": "1"},
                          login="test:reader").status == 403
    assert filled.as_user("DELETE", CONT, login="test:reader").status == 403


def test_an_account_grants_all_its_users(filled):
    acl(filled, read="other")
    assert filled.as_user("GET", OBJ, login="other:admin").status == 200
    acl(filled, read="AUTH_other")  # only the other account's owners
    assert filled.as_user("GET", OBJ, login="other:admin").status == 200
    assert filled.as_user("GET", OBJ, login="test:reader").status == 403


def test_referrers_open_objects_and_listings_with_rlistings(filled):
    acl(filled, read=".r:*")
    assert filled.call("GET", OBJ).body == b"data"
    assert filled.call("GET", CONT).status == 401
    acl(filled, read=".r:*,.rlistings")
    assert filled.call("GET", CONT).body == b"o\n"
    acl(filled, read=".r:.example.com,.r:-evil.example.com")
    good, evil = "http://www.example.com/x", "http://evil.example.com/"
    assert filled.call("GET", OBJ, {"Referer": good}).status == 200
    assert filled.call("GET", OBJ, {"Referer": evil}).status == 401
    assert filled.call("GET", OBJ).status == 401
    assert filled.call("PUT", OBJ, {"Referer": "http://www.example.com/x"},
                       body=b"x").status == 401


def test_acls_are_cleaned_and_checked(filled):
    acl(filled, read=".referrer : * , .rlistings")
    assert filled.as_user("HEAD", CONT).headers["x-container-read"] == ".r:*,.rlistings"
    res = filled.as_user("POST", CONT, {"X-Container-Write": ".r:*"})
    assert res.status == 400
    assert res.body == b"Referrers not allowed in write ACL: '.r:*'"
    res = filled.as_user("PUT", CONT + "2", {"X-Container-Read": ".r:"})
    assert res.status == 400
    assert res.body == b"No host/domain value after referrer designation in ACL: '.r:'"
    assert filled.as_user("HEAD", CONT + "2").status == 404
    acl(filled, read="")
    assert "x-container-read" not in filled.as_user("HEAD", CONT).headers
    acl(filled, read="other", write="other")
    res = filled.as_user("POST", CONT, {"X-Remove-Container-Read": "x",
                                        "X-Remove-Container-Write": "x",
                                        "X-Container-Write": "kept"})
    assert res.status == 204
    head = filled.as_user("HEAD", CONT).headers
    assert "x-container-read" not in head
    assert head["x-container-write"] == "kept"  # a set wins over a removal


def test_account_acl_read_only(filled):
    account_acl(filled, {"read-only": ["test:reader"]})
    assert filled.as_user("GET", ACCT, login="test:reader").body == b"c\n"
    assert filled.as_user("GET", OBJ, login="test:reader").body == b"data"
    assert filled.as_user("PUT", OBJ, login="test:reader", body=b"x").status == 403
    assert filled.as_user("POST", ACCT, login="test:reader").status == 403
    head = filled.as_user("HEAD", ACCT, login="test:reader")
    assert "x-account-access-control" not in head.headers


def test_account_acl_read_write_and_owner_headers(filled):
    account_acl(filled, {"read-write": ["test:reader"]})
    res = filled.as_user("PUT", CONT + "2", {"X-Container-Read": ".r:*"},
                         login="test:reader")
    assert res.status == 201
    # The ACL header is owner-only: dropped from a read-write user's request.
    assert "x-container-read" not in filled.as_user("HEAD", CONT + "2").headers
    assert filled.as_user("PUT", OBJ, login="test:reader", body=b"x").status == 201
    assert filled.as_user("DELETE", OBJ, login="test:reader").status == 204
    assert filled.as_user("POST", ACCT, {"X-Account-Meta-A": "1"},
                          login="test:reader").status == 403


def test_account_acl_admin_is_an_owner(filled):
    account_acl(filled, {"admin": ["test:reader"]})
    res = filled.as_user("POST", ACCT, {"X-Account-Meta-A": "1"}, login="test:reader")
    assert res.status == 204
    acl(filled, read="x:y")
    head = filled.as_user("HEAD", CONT, login="test:reader")
    assert head.headers["x-container-read"] == "x:y"
    head = filled.as_user("HEAD", ACCT, login="test:reader")
    assert head.headers["x-account-access-control"] == '{"admin":["test:reader"]}'


def test_account_acl_is_checked_and_owner_only(filled):
    res = filled.as_user("POST", ACCT, {"X-Account-Access-Control": '{"owner":[]}'})
    assert res.status == 400
    assert res.body == (b'X-Account-Access-Control invalid: Key "owner" not '
                        b'recognized\n\nInput: {"owner":[]}\n')
    res = filled.as_user("POST", ACCT, {"X-Account-Access-Control": "{garbage"},
                         login="other:admin")
    assert res.status == 400  # checked before anything else, as tempauth
    account_acl(filled, {"read-only": ["other:admin"], "admin": []})
    assert filled.as_user("HEAD", ACCT).headers["x-account-access-control"] == (
        '{"admin":[],"read-only":["other:admin"]}')
    res = filled.as_user("POST", ACCT, {"X-Account-Access-Control": ""})
    assert res.status == 204
    assert "x-account-access-control" not in filled.as_user("HEAD", ACCT).headers
    assert filled.as_user("GET", OBJ, login="other:admin").status == 403


def test_copy_needs_read_on_the_source_and_write_on_the_destination(filled):
    res = filled.as_user("PUT", "/v1/AUTH_other/dst", login="other:admin")
    assert res.status == 201
    copy = {"Destination": "dst/copied", "Destination-Account": "AUTH_other"}
    assert filled.as_user("COPY", OBJ, copy, login="other:admin").status == 403
    acl(filled, read="other")
    res = filled.as_user("COPY", OBJ, copy, login="other:admin")
    assert res.status == 201, res
    assert filled.as_user("GET", "/v1/AUTH_other/dst/copied",
                          login="other:admin").body == b"data"
    # Into AUTH_test: the write ACL decides.
    res = filled.as_user("PUT", CONT + "/back", {
        "X-Copy-From": "dst/copied", "X-Copy-From-Account": "AUTH_other"},
        login="other:admin")
    assert res.status == 403
    acl(filled, write="other")
    res = filled.as_user("PUT", CONT + "/back", {
        "X-Copy-From": "dst/copied", "X-Copy-From-Account": "AUTH_other"},
        login="other:admin")
    assert res.status == 201


def test_reseller_admins_own_every_account_but_dot_accounts(filled):
    assert filled.as_user("GET", OBJ, login="ops:root").body == b"data"
    assert filled.as_user("HEAD", "/v1/AUTH_.hidden", login="ops:root").status == 403
    assert filled.as_user("HEAD", "/v1/OTHER_x", login="ops:root").status == 403
    assert filled.call("HEAD", "/v1/OTHER_x").status == 401


def test_large_object_segments_are_read_as_the_caller(filled):
    acl(filled, read="other")  # the manifest's container, not the segments'
    assert filled.as_user("PUT", ACCT + "/segs").status == 201
    assert filled.as_user("PUT", ACCT + "/segs/1", body=b"abc").status == 201
    manifest = json.dumps([{"path": "/segs/1"}]).encode()
    res = filled.as_user("PUT", CONT + "/slo", body=manifest,
                         query="multipart-manifest=put")
    assert res.status == 201
    res = filled.as_user("PUT", CONT + "/dlo", {"X-Object-Manifest": "segs/1"})
    assert res.status == 201
    # A segment the reader may not read: SLO 409, DLO (its listing) 403.
    assert filled.as_user("GET", CONT + "/slo", login="other:admin").status == 409
    assert filled.as_user("GET", CONT + "/dlo", login="other:admin").status == 403
    res = filled.as_user("POST", "/v1/AUTH_test/segs",
                         {"X-Container-Read": "other"})
    assert res.status == 204
    assert filled.as_user("GET", CONT + "/slo", login="other:admin").body == b"abc"
    assert filled.as_user("GET", CONT + "/dlo", login="other:admin").body == b"abc"


def test_a_manifest_put_heads_segments_as_the_caller(filled):
    # test:tester may write into AUTH_other/m, not read it: Swift HEADs each
    # segment as the caller, so the segment is a 403 problem, not a 404.
    res = filled.as_user("PUT", "/v1/AUTH_other/m", {"X-Container-Write": "test"},
                         login="other:admin")
    assert res.status == 201
    assert filled.as_user("PUT", "/v1/AUTH_other/m/seg", body=b"abc",
                          login="other:admin").status == 201
    manifest = json.dumps([{"path": "/m/seg"}, {"path": "/m/none"}]).encode()
    res = filled.as_user("PUT", "/v1/AUTH_other/m/slo", body=manifest,
                         query="multipart-manifest=put")
    assert res.status == 400
    assert res.body.count(b"403 Forbidden") == 2, res.body
    res = filled.as_user("POST", "/v1/AUTH_other/m", {"X-Container-Read": "test"},
                         login="other:admin")
    assert res.status == 204
    res = filled.as_user("PUT", "/v1/AUTH_other/m/slo", body=manifest,
                         query="multipart-manifest=put")
    assert res.status == 400
    assert b"/m/none, 404 Not Found" in res.body and b"403" not in res.body


def test_a_container_key_url_reads_no_segment_outside_its_container(filled):
    from tests.unit.api.test_tempurl import query

    assert filled.as_user("POST", CONT, {
        "X-Container-Meta-Temp-URL-Key": "ckey"}).status == 204
    assert filled.as_user("PUT", ACCT + "/segs").status == 201
    assert filled.as_user("PUT", ACCT + "/segs/1", body=b"abc").status == 201
    assert filled.as_user("PUT", CONT + "/1", body=b"def").status == 201
    for name, segment in (("/outside", "/segs/1"), ("/inside", "/c/1")):
        body = json.dumps([{"path": segment}]).encode()
        res = filled.as_user("PUT", CONT + name, body=body,
                             query="multipart-manifest=put")
        assert res.status == 201
    inside = filled.call("GET", CONT + "/inside",
                         query=query(path=CONT + "/inside", key="ckey"))
    assert (inside.status, inside.body) == (200, b"def")
    outside = filled.call("GET", CONT + "/outside",
                          query=query(path=CONT + "/outside", key="ckey"))
    assert outside.status == 409  # its segment is refused, as in Swift
    # The owner reads it whole.
    assert filled.as_user("GET", CONT + "/outside").body == b"abc"
