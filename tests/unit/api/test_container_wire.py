"""Container PUT, POST, HEAD and GET on the wire, as Swift answers them.

The storage policy header, the metadata checks of Swift's proxy (with its
texts and content types), and the ``Last-Modified`` a POST moves.
"""

from __future__ import annotations

import time

import pytest

C = "/v1/AUTH_test/c"


@pytest.mark.parametrize("name", ["Policy-0", "policy-0", "POLICY-0", ""])
def test_put_with_the_default_policy_by_name(client, name):
    res = client.as_user("PUT", C, {"X-Storage-Policy": name})
    assert res.status == 201
    for method in ("HEAD", "GET"):
        res = client.as_user(method, C)
        assert res.headers["x-storage-policy"] == "Policy-0", method


def test_put_with_an_unknown_policy(client):
    res = client.as_user("PUT", C, {"X-Storage-Policy": "gold"})
    assert (res.status, res.body) == (400, b"Invalid X-Storage-Policy 'gold'")
    assert res.headers["content-type"] == "text/plain"
    assert client.as_user("HEAD", C).status == 404


def test_policy_of_an_existing_container_stays(client):
    assert client.as_user("PUT", C).status == 201
    assert client.as_user("PUT", C, {"X-Storage-Policy": "policy-0"}).status == 202
    # Swift's POST ignores the header: 204, same policy.
    assert client.as_user("POST", C, {"X-Storage-Policy": "gold"}).status == 204
    assert client.as_user("HEAD", C).headers["x-storage-policy"] == "Policy-0"


def test_info_lists_the_policy_as_swift(client):
    info = client.call("GET", "/info").json()
    assert info["swift"]["policies"] == [
        {"name": "Policy-0", "aliases": "Policy-0", "default": True}]


def test_post_moves_last_modified_and_put_timestamp(client):
    client.as_user("PUT", C)
    before = client.as_user("HEAD", C).headers
    time.sleep(1.05)
    assert client.as_user("POST", C, {"X-Container-Meta-A": "1"}).status == 204
    after = client.as_user("HEAD", C).headers
    assert float(after["x-put-timestamp"]) > float(before["x-put-timestamp"])
    assert after["x-timestamp"] == before["x-timestamp"]
    assert after["last-modified"] != before["last-modified"]
    # The account listing follows (its last_modified is the put timestamp).
    listing = client.as_user("GET", "/v1/AUTH_test", query="format=json").json()
    head = client.as_user("HEAD", C).headers
    assert listing[0]["last_modified"].startswith(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(float(head["x-put-timestamp"]))))
    # A POST with nothing to change still moves it, as Swift's does.
    time.sleep(1.05)
    client.as_user("POST", C)
    again = client.as_user("HEAD", C).headers
    assert float(again["x-put-timestamp"]) > float(after["x-put-timestamp"])


def test_too_many_metadata_items_in_one_request(client):
    client.as_user("PUT", C)
    headers = {"X-Container-Meta-K%d" % i: "v" for i in range(91)}
    for method in ("POST", "PUT"):
        res = client.as_user(method, C, headers)
        assert (res.status, res.body) == (400, b"Too many metadata items; max 90")
        assert res.headers["content-type"] == "text/plain"


def test_metadata_checks_have_swifts_texts(client):
    client.as_user("PUT", C)
    cases = [
        ({"X-Container-Meta-" + "n" * 129: "v"},
         b"Metadata name too long: x-container-meta-" + b"n" * 129),
        ({"X-Container-Meta-Big": "v" * 257},
         b"Metadata value longer than 256: x-container-meta-big"),
    ]
    for headers, body in cases:
        res = client.as_user("POST", C, headers)
        assert (res.status, res.body.lower()) == (400, body.lower())


def test_too_many_items_once_merged(client):
    client.as_user("PUT", C)
    for start in (0, 45):
        headers = {"X-Container-Meta-K%d" % i: "v" for i in range(start, start + 45)}
        assert client.as_user("POST", C, headers).status == 204
    res = client.as_user("POST", C, {"X-Container-Meta-One-More": "v"})
    assert (res.status, res.body) == (400, b"Too many metadata items; max 90")
    assert res.headers["content-type"] == "text/html; charset=UTF-8"


def test_a_set_wins_over_a_remove_of_the_same_key(client):
    client.as_user("PUT", C, {"X-Container-Meta-Color": "blue"})
    res = client.as_user("POST", C, {"X-Remove-Container-Meta-Color": "1",
                                     "X-Container-Meta-Color": "red"})
    assert res.status == 204
    assert client.as_user("HEAD", C).headers["x-container-meta-color"] == "red"
    res = client.as_user("POST", C, {"X-Remove-Container-Meta-Color": "x"})
    assert res.status == 204
    assert "x-container-meta-color" not in client.as_user("HEAD", C).headers


def test_answers_without_a_body_have_swobs_content_type(client):
    html = "text/html; charset=UTF-8"
    res = client.as_user("PUT", C)
    assert (res.status, res.headers["content-type"]) == (201, html)
    assert client.as_user("PUT", C).headers["content-type"] == html
    assert client.as_user("POST", C).headers["content-type"] == html
    client.as_user("PUT", C + "/o", body=b"x")
    res = client.as_user("DELETE", C + "/o")
    assert (res.status, res.headers["content-type"]) == (204, html)
    assert client.as_user("DELETE", C).headers["content-type"] == html


def test_bad_urls_as_swifts_proxy(client):
    for path in ("/v1", "/v1/"):
        res = client.as_user("GET", path)
        assert (res.status, res.body) == (412, b"Bad URL"), path
        assert res.headers["content-type"] == "text/html; charset=UTF-8"
    res = client.as_user("PUT", "/v1/AUTH_test/" + "c" * 257)
    assert (res.status, res.body) == (
        400, b"Container name length of 257 longer than 256")
    assert res.headers["content-type"] == "text/html; charset=UTF-8"
    res = client.as_user("PUT", C + "/" + "o" * 1025, body=b"x")
    assert (res.status, res.body) == (
        400, b"Object name length of 1025 longer than 1024")
    assert res.headers["content-type"] == "text/plain"


def test_healthcheck_is_plain_text(client):
    res = client.call("GET", "/healthcheck")
    assert (res.status, res.body) == (200, b"OK")
    assert res.headers["content-type"] == "text/plain"
