"""Account POST and the account metadata of HEAD and GET, as Swift answers them."""

from __future__ import annotations

import pytest

ACCOUNT = "/v1/AUTH_test"

#: Values from each range of UTF-8 (two, three and four bytes).
VALUES = {
    "latin1": "värde ñ",
    "cjk": "名前",
    "emoji": "🙂 ok",
    "four-byte": "𝄞𠜎",
}


def meta(res):
    """The ``X-Account-Meta-*`` headers of a response (lower-case names)."""
    return {k: v for k, v in res.headers.items() if k.startswith("x-account-meta-")}


def post(client, headers, login="test:tester", path=ACCOUNT):
    return client.as_user("POST", path, headers, login=login)


def test_post_sets_updates_and_removes(client):
    res = post(client, {"X-Account-Meta-Color": "blue"})
    assert (res.status, res.body) == (204, b"")
    for method, query in (("HEAD", ""), ("GET", ""), ("GET", "format=json")):
        res = client.as_user(method, ACCOUNT, query=query)
        assert res.status in (200, 204), res
        assert meta(res) == {"x-account-meta-color": "blue"}, (method, query)
    assert post(client, {"X-Account-Meta-Color": "green",
                         "X-Account-Meta-Shape": "round"}).status == 204
    assert meta(client.as_user("HEAD", ACCOUNT)) == {
        "x-account-meta-color": "green", "x-account-meta-shape": "round"}
    # X-Remove-* removes whatever its value; an empty value removes too.
    assert post(client, {"X-Remove-Account-Meta-Color": "x"}).status == 204
    assert meta(client.as_user("HEAD", ACCOUNT)) == {"x-account-meta-shape": "round"}
    assert post(client, {"X-Account-Meta-Shape": ""}).status == 204
    assert meta(client.as_user("HEAD", ACCOUNT)) == {}
    # Removing what is not there is fine.
    assert post(client, {"X-Remove-Account-Meta-Nothing": "1"}).status == 204


def test_a_set_wins_over_a_remove_of_the_same_key(client):
    """Swift's proxy turns removals into empty values first, then sets."""
    res = post(client, {"X-Remove-Account-Meta-Color": "1",
                        "X-Account-Meta-Color": "red"})
    assert res.status == 204
    assert meta(client.as_user("HEAD", ACCOUNT)) == {"x-account-meta-color": "red"}


def test_metadata_sits_beside_the_totals_and_listing(client):
    client.as_user("PUT", ACCOUNT + "/c")
    client.as_user("PUT", ACCOUNT + "/c/o", body=b"1234")
    post(client, {"X-Account-Meta-Color": "blue"})
    res = client.as_user("GET", ACCOUNT)
    assert (res.status, res.body) == (200, b"c\n")
    assert res.headers["x-account-bytes-used"] == "4"
    assert res.headers["x-account-meta-color"] == "blue"


def test_an_account_without_containers_keeps_its_metadata(client):
    assert post(client, {"X-Account-Meta-Color": "blue"}, login="ops:root",
                path="/v1/AUTH_new").status == 204
    res = client.as_user("HEAD", "/v1/AUTH_new", login="ops:root")
    assert res.status == 204
    assert res.headers["x-account-container-count"] == "0"
    assert meta(res) == {"x-account-meta-color": "blue"}


def test_who_may_post(client):
    # Owners: the account's .admin users and reseller admins; a user of the
    # account without .admin is no owner (only an ACL gives it rights).
    assert post(client, {"X-Account-Meta-A": "1"}, login="test:reader").status == 403
    assert post(client, {"X-Account-Meta-B": "2"}, login="ops:root").status == 204
    assert post(client, {"X-Account-Meta-C": "3"}, login="other:admin").status == 403
    assert client.call("POST", ACCOUNT, {"X-Account-Meta-D": "4"}).status == 401
    assert meta(client.as_user("HEAD", ACCOUNT)) == {"x-account-meta-b": "2"}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_utf8_values_round_trip_byte_exactly(client, value):
    wire = value.encode("utf-8")
    assert post(client, {"X-Account-Meta-Note": wire}).status == 204
    for method in ("HEAD", "GET"):
        res = client.as_user(method, ACCOUNT)
        # The bytes the server sends: WSGI's latin-1 string of them.
        assert res.headers["x-account-meta-note"].encode("latin-1") == wire


def test_metadata_that_is_not_utf8_is_400(client):
    res = post(client, {"X-Account-Meta-Raw": b"\xff\xfe"})
    assert (res.status, res.body) == (400, b"Metadata must be valid UTF-8")
    assert res.headers["content-type"].startswith("text/plain")
    assert meta(client.as_user("HEAD", ACCOUNT)) == {}


def test_name_and_value_limits(client):
    res = post(client, {"X-Account-Meta-" + "k" * 128: "v"})
    assert res.status == 204
    res = post(client, {"X-Account-Meta-" + "k" * 129: "v"})
    assert res.status == 400
    assert res.body == b"Metadata name too long: x-account-meta-K" + b"k" * 128
    res = post(client, {"X-Account-Meta-Too-Long": "k" * 256})
    assert res.status == 204
    res = post(client, {"X-Account-Meta-Too-Long": "k" * 257})
    assert res.status == 400
    assert res.body == b"Metadata value longer than 256: x-account-meta-Too-Long"
    # Sizes are counted in bytes: 128 two-byte characters are 256 bytes.
    assert post(client, {"X-Account-Meta-Wide": "é".encode() * 128}).status == 204
    assert post(client, {"X-Account-Meta-Wide": "é".encode() * 129}).status == 400
    res = post(client, {"X-Account-Meta-": "v"})
    assert (res.status, res.body) == (400, b"Metadata name cannot be empty")


def test_count_limit_per_request_and_overall(client):
    headers = {"X-Account-Meta-%d" % i: "v" for i in range(90)}
    assert post(client, headers).status == 204
    headers = {"X-Account-Meta-%d" % i: "v" for i in range(91)}
    res = post(client, headers)
    assert (res.status, res.body) == (400, b"Too many metadata items; max 90")
    # Fine alone, but one too many once merged with what is stored.
    res = post(client, {"X-Account-Meta-Extra": "v"})
    assert (res.status, res.body) == (400, b"Too many metadata items; max 90")
    assert len(meta(client.as_user("HEAD", ACCOUNT))) == 90


def test_overall_size_limit_as_swift_functional_tests_probe_it(client):
    """The steps of Swift's ``test_bad_metadata3``, with its answers."""
    value = "k" * 256
    headers, size, x = {}, 0, 0
    while size < 4096 - 4 - 256:
        size += 4 + 256
        headers["X-Account-Meta-%04d" % x] = value
        x += 1
    headers["X-Account-Meta-K"] = "v" * (4096 - size - 1)
    assert post(client, headers).status == 204
    headers["X-Account-Meta-K"] = "x" * (4096 - size)
    res = post(client, headers)
    assert (res.status, res.body) == (400, b"Total metadata too large; max 4096")
    assert post(client, {"X-Account-Meta-K": "y" * (4096 - size - 1)}).status == 204
    res = post(client, {"X-Account-Meta-K": "z" * (4096 - size)})
    assert (res.status, res.body) == (400, b"Total metadata too large; max 4096")
    assert client.as_user("HEAD", ACCOUNT).headers[
        "x-account-meta-k"] == "y" * (4096 - size - 1)


def test_temp_url_keys_are_plain_metadata_for_now(client):
    assert post(client, {"X-Account-Meta-Temp-URL-Key": "secret",
                         "X-Account-Meta-Temp-URL-Key-2": "other"}).status == 204
    assert meta(client.as_user("HEAD", ACCOUNT)) == {
        "x-account-meta-temp-url-key": "secret",
        "x-account-meta-temp-url-key-2": "other"}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "COPY"])
def test_other_methods_are_405(client, method):
    res = client.as_user(method, ACCOUNT)
    assert res.status == 405
    assert res.headers["allow"] == "GET, HEAD, POST"


def test_a_full_catalog_refuses_the_post(client, app, monkeypatch):
    from storaged import exception

    def full():
        raise exception.CatalogFull(path="catalog", reason="below the reserve")

    monkeypatch.setattr(app.service.catalog, "require_space", full)
    assert post(client, {"X-Account-Meta-Color": "blue"}).status == 507
