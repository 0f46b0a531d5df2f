"""Container and account quotas, as Swift's container_quotas and account_quotas.

Settings are checked as Swift checks them (400 for a bad value, 403 for an
account quota from other than a reseller admin); an object PUT that would
exceed a quota gets 413 ``Upload exceeds quota.`` and stores nothing.
"""

from __future__ import annotations

import hashlib
import json

import pytest

ACCOUNT = "/v1/AUTH_test"
CONT = "/v1/AUTH_test/c"
OBJ = "/v1/AUTH_test/c/o"
EXCEEDED = b"Upload exceeds quota."


@pytest.fixture
def cont(client):
    assert client.as_user("PUT", CONT).status == 201
    return client


def set_account_quota(client, value):
    res = client.as_user("POST", ACCOUNT, {"X-Account-Meta-Quota-Bytes": value},
                         login="ops:root")
    assert res.status == 204, res


def listing(client, path=CONT):
    return [e["name"] for e in client.as_user("GET", path, query="format=json").json()]


def assert_exceeded(res):
    assert res.status == 413, res
    assert res.body == EXCEEDED
    assert res.headers["content-type"] == "text/html; charset=UTF-8"


# -- container quota settings -------------------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("header, body", [
    ("X-Container-Meta-Quota-Bytes", b"Invalid bytes quota."),
    ("X-Container-Meta-Quota-Count", b"Invalid count quota."),
])
@pytest.mark.parametrize("value", ["abc", "-1", "1.5", " 5"])
def test_bad_container_quota_is_400(cont, method, header, body, value):
    res = cont.as_user(method, CONT, {header: value})
    assert res.status == 400, res
    assert res.body == body
    head = cont.as_user("HEAD", CONT)
    assert header.lower() not in head.headers


@pytest.mark.parametrize("method, status", [("PUT", 201), ("POST", 204)])
def test_container_quotas_are_metadata(client, method, status):
    if method == "POST":
        client.as_user("PUT", CONT)
    res = client.as_user(method, CONT, {"X-Container-Meta-Quota-Bytes": "10",
                                        "X-Container-Meta-Quota-Count": "0"})
    assert res.status == status, res
    head = client.as_user("HEAD", CONT).headers
    assert head["x-container-meta-quota-bytes"] == "10"
    assert head["x-container-meta-quota-count"] == "0"


def test_info_advertises_both(client):
    info = client.call("GET", "/info").json()
    assert info["container_quotas"] == {}
    assert info["account_quotas"] == {}


# -- container quotas enforced -------------------------------------------------------

def test_bytes_quota(cont):
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": "10"})
    assert cont.as_user("PUT", OBJ, body=b"123456").status == 201
    assert_exceeded(cont.as_user("PUT", CONT + "/p", body=b"12345"))
    assert cont.as_user("PUT", CONT + "/q", body=b"1234").status == 201
    assert listing(cont) == ["o", "q"]
    # Removing the quota (empty value) lifts it.
    res = cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": ""})
    assert res.status == 204
    assert cont.as_user("PUT", CONT + "/p", body=b"12345").status == 201


def test_bytes_quota_counts_the_stored_bytes_not_the_old_object(cont):
    # As Swift: an overwrite still adds its whole length to the bytes used.
    cont.as_user("PUT", OBJ, body=b"12345678")
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": "10"})
    assert_exceeded(cont.as_user("PUT", OBJ, body=b"123"))
    assert cont.as_user("GET", OBJ).body == b"12345678"


def test_count_quota(cont):
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Count": "1"})
    assert cont.as_user("PUT", OBJ, body=b"x").status == 201
    assert_exceeded(cont.as_user("PUT", CONT + "/p", body=b""))
    assert_exceeded(cont.as_user("PUT", OBJ, body=b"y"))  # an overwrite counts one
    assert listing(cont) == ["o"]
    assert cont.as_user("POST", CONT, {"X-Remove-Container-Meta-Quota-Count": "x"}
                        ).status == 204
    assert cont.as_user("PUT", CONT + "/p", body=b"").status == 201


def test_zero_quota_refuses_even_an_empty_object(cont):
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Count": "0"})
    assert_exceeded(cont.as_user("PUT", OBJ, body=b""))


def test_refused_before_the_body_is_read(cont):
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": "10"})
    big = b"x" * 1_000_000
    res = cont.as_user("PUT", OBJ, body=big)
    assert_exceeded(res)
    # The body was left unread: the connection is closed instead.
    assert res.headers.get("connection") == "close"


def test_chunked_upload_counts_zero_bytes(cont):
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": "3"})
    assert cont.as_user("PUT", OBJ, body=b"12345", chunked=True).status == 201
    # The quota is now reached: the next one is refused, chunked or not.
    assert_exceeded(cont.as_user("PUT", CONT + "/p", body=b"1", chunked=True))


def test_missing_container_is_still_404(client):
    assert client.as_user("PUT", OBJ, body=b"x").status == 404


def test_copy_counts_the_source_length(cont):
    assert cont.as_user("PUT", "/v1/AUTH_test/src").status == 201
    assert cont.as_user("PUT", "/v1/AUTH_test/src/o", body=b"x" * 8).status == 201
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": "10"})
    cont.as_user("PUT", CONT + "/small", body=b"123")
    assert_exceeded(cont.as_user("PUT", OBJ, {"X-Copy-From": "src/o"}))
    assert_exceeded(cont.as_user("COPY", "/v1/AUTH_test/src/o",
                                 {"Destination": "c/o"}))
    assert listing(cont) == ["small"]
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": "11"})
    assert cont.as_user("PUT", OBJ, {"X-Copy-From": "src/o"}).status == 201


def test_slo_manifest_counts_its_own_length(cont):
    assert cont.as_user("PUT", "/v1/AUTH_test/segs").status == 201
    seg = b"s" * 100
    assert cont.as_user("PUT", "/v1/AUTH_test/segs/1", body=seg).status == 201
    manifest = json.dumps([{"path": "/segs/1",
                            "etag": hashlib.md5(seg).hexdigest()}]).encode()
    # The large object (100 bytes) is over the quota, its manifest is not.
    cont.as_user("POST", CONT, {"X-Container-Meta-Quota-Bytes": str(len(manifest))})
    res = cont.as_user("PUT", OBJ, body=manifest, query="multipart-manifest=put")
    assert res.status == 201, res
    res = cont.as_user("PUT", CONT + "/m2", body=manifest,
                       query="multipart-manifest=put")
    assert_exceeded(res)


# -- account quota settings -----------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"X-Account-Meta-Quota-Bytes": "100"},
    {"X-Account-Meta-Quota-Bytes": ""},
    {"X-Remove-Account-Meta-Quota-Bytes": "x"},
])
@pytest.mark.parametrize("login", ["test:tester", "test:reader"])
def test_only_a_reseller_admin_sets_the_account_quota(client, headers, login):
    res = client.as_user("POST", ACCOUNT, headers, login=login)
    assert res.status == 403, res
    assert b"Forbidden" in res.body


@pytest.mark.parametrize("path", [CONT, OBJ])
def test_account_quota_header_is_403_on_any_write(cont, path):
    res = cont.as_user("PUT", path, {"X-Account-Meta-Quota-Bytes": "1"}, body=b"x")
    assert res.status == 403, res
    assert listing(cont) == []


def test_reseller_admin_sets_and_removes_it(client):
    set_account_quota(client, "100")
    head = client.as_user("HEAD", ACCOUNT)
    assert head.headers["x-account-meta-quota-bytes"] == "100"
    set_account_quota(client, "")
    assert "x-account-meta-quota-bytes" not in client.as_user("HEAD", ACCOUNT).headers
    set_account_quota(client, "5")
    res = client.as_user("POST", ACCOUNT, {"X-Remove-Account-Meta-Quota-Bytes": "y"},
                         login="ops:root")
    assert res.status == 204
    assert "x-account-meta-quota-bytes" not in client.as_user("HEAD", ACCOUNT).headers


@pytest.mark.parametrize("value", ["abc", "-1"])
def test_reseller_admin_bad_value_is_400(client, value):
    res = client.as_user("POST", ACCOUNT, {"X-Account-Meta-Quota-Bytes": value},
                         login="ops:root")
    assert res.status == 400, res
    assert "x-account-meta-quota-bytes" not in client.as_user("HEAD", ACCOUNT).headers


OTHERS = ["X-Account-Quota-Bytes", "X-Account-Quota-Count",
          "X-Account-Quota-Bytes-Policy-Policy-0",
          "X-Account-Quota-Count-Policy-Policy-0"]


@pytest.mark.parametrize("header", OTHERS)
def test_other_account_quotas_are_refused(client, header):
    res = client.as_user("POST", ACCOUNT, {header: "10"}, login="ops:root")
    assert res.status == 501, res
    assert res.body.decode() == (
        "%s is not supported: only X-Account-Meta-Quota-Bytes is available on"
        " this server" % header)
    assert header.lower() not in client.as_user("HEAD", ACCOUNT).headers
    # Removing one (never set) is trivially done.
    res = client.as_user("POST", ACCOUNT, {header: ""}, login="ops:root")
    assert res.status == 204
    res = client.as_user("POST", ACCOUNT, {"X-Remove-" + header[2:]: "t"},
                         login="ops:root")
    assert res.status == 204


@pytest.mark.parametrize("header", OTHERS)
@pytest.mark.parametrize("remove", [False, True])
def test_other_account_quotas_are_403_for_others(client, header, remove):
    if remove:
        header = "X-Remove-" + header[2:]
    assert client.as_user("POST", ACCOUNT, {header: "1"}).status == 403


# -- account quota enforced ------------------------------------------------------------

def test_account_quota_spans_containers(cont):
    assert cont.as_user("PUT", "/v1/AUTH_test/d").status == 201
    set_account_quota(cont, "10")
    assert cont.as_user("PUT", OBJ, body=b"123456").status == 201
    assert_exceeded(cont.as_user("PUT", "/v1/AUTH_test/d/o", body=b"12345"))
    assert cont.as_user("PUT", "/v1/AUTH_test/d/o", body=b"1234").status == 201
    # Copies count too.
    assert_exceeded(cont.as_user("COPY", OBJ, {"Destination": "d/copy"}))
    assert listing(cont, "/v1/AUTH_test/d") == ["o"]
    # Deleting frees room.
    assert cont.as_user("DELETE", OBJ).status == 204
    assert cont.as_user("COPY", "/v1/AUTH_test/d/o",
                        {"Destination": "d/copy"}).status == 201


def test_account_quota_of_zero_refuses_everything(cont):
    set_account_quota(cont, "0")
    assert_exceeded(cont.as_user("PUT", OBJ, body=b"x"))
    set_account_quota(cont, "")
    assert cont.as_user("PUT", OBJ, body=b"x").status == 201


def test_account_quota_applies_to_the_reseller_admin_too(cont):
    set_account_quota(cont, "2")
    assert_exceeded(cont.as_user("PUT", OBJ, body=b"xyz", login="ops:root"))
