"""Object expiry as Swift's proxy and object server answer it."""

from __future__ import annotations

import io
import json
import time

import pytest

from storaged.objects import expiry

OBJ = "/v1/AUTH_test/c/o"


@pytest.fixture
def container(client):
    assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
    return client


def expired_object(app, name="o", delete_at=None):
    """Store an object that expired a minute ago, as the service keeps it."""
    delete_at = delete_at or int(time.time()) - 60
    app.service.put_object(
        "AUTH_test", "c", name, io.BytesIO(b"old"), 3,
        metadata={"X-Delete-At": "%010d" % delete_at},
    )
    return delete_at


def test_delete_after_becomes_delete_at(container):
    before = int(time.time())
    res = container.as_user("PUT", OBJ, {"X-Delete-After": "1000"}, body=b"x")
    assert res.status == 201
    res = container.as_user("HEAD", OBJ)
    assert res.status == 200
    value = res.headers["x-delete-at"]
    assert len(value) == 10
    assert before + 1000 <= int(value) <= int(time.time()) + 1000


def test_delete_after_wins_over_delete_at(container):
    far = str(int(time.time()) + 100000)
    container.as_user("PUT", OBJ, {"X-Delete-After": "50", "X-Delete-At": far},
                      body=b"x")
    value = int(container.as_user("HEAD", OBJ).headers["x-delete-at"])
    assert value < int(far)


@pytest.mark.parametrize("header,value,body", [
    ("X-Delete-After", "*", b"Non-integer X-Delete-After"),
    ("X-Delete-After", "1.5", b"Non-integer X-Delete-After"),
    ("X-Delete-After", "0", b"X-Delete-After in past"),
    ("X-Delete-After", "-10", b"X-Delete-After in past"),
    ("X-Delete-At", "*", b"Non-integer X-Delete-At"),
    ("X-Delete-At", "0", b"X-Delete-At in past"),
    ("X-Delete-At", "-5", b"X-Delete-At in past"),
])
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_bad_values_are_swifts_400(container, header, value, body, method):
    container.as_user("PUT", OBJ, body=b"x")
    res = container.as_user(method, OBJ, {header: value}, body=b"")
    assert res.status == 400
    assert res.body == body
    assert res.headers["content-type"] == "text/plain"


def test_far_future_is_clamped(container):
    res = container.as_user("PUT", OBJ, {"X-Delete-At": "1" * 100}, body=b"")
    assert res.status == 201
    assert container.as_user("HEAD", OBJ).headers["x-delete-at"] == "9" * 10


def test_post_replaces_the_expiry(container):
    container.as_user("PUT", OBJ, {"X-Delete-After": "1000"}, body=b"x")
    assert container.as_user("POST", OBJ, {"X-Remove-Delete-At": "x"}).status == 202
    assert "x-delete-at" not in container.as_user("HEAD", OBJ).headers
    assert container.as_user("POST", OBJ, {"X-Delete-After": "500"}).status == 202
    assert "x-delete-at" in container.as_user("GET", OBJ).headers


def test_expired_object_is_404_at_once_but_listed(app, container):
    expired_object(app)
    for method in ("GET", "HEAD"):
        assert container.as_user(method, OBJ).status == 404
    assert container.as_user("GET", OBJ, {"Range": "bytes=0-1"}).status == 404
    assert container.as_user("POST", OBJ, {"X-Object-Meta-A": "b"}).status == 404
    copy = container.as_user("COPY", OBJ, {"Destination": "c/copy"})
    assert copy.status == 404
    listing = container.as_user("GET", "/v1/AUTH_test/c", query="format=json")
    assert [o["name"] for o in listing.json()] == ["o"]


def test_expired_segment_is_not_served(app, container):
    container.as_user("PUT", "/v1/AUTH_test/c/seg/1", body=b"aaa")
    expired_object(app, "seg/2")
    manifest = json.dumps([
        {"path": "/c/seg/1"}, {"path": "/c/seg/2"},
    ]).encode()
    res = container.as_user("PUT", "/v1/AUTH_test/c/slo", body=manifest,
                            query="multipart-manifest=put")
    assert res.status == 400  # a segment that is not there, as Swift's slo


def test_plain_delete_of_an_expired_object_is_404_and_removes_it(app, container):
    expired_object(app)
    assert container.as_user("DELETE", OBJ).status == 404
    listing = container.as_user("GET", "/v1/AUTH_test/c", query="format=json")
    assert listing.json() == []


def test_if_delete_at(app, container):
    res = container.as_user("DELETE", OBJ, {"X-If-Delete-At": "bad"})
    assert (res.status, res.body) == (400, b"Bad X-If-Delete-At header value")
    assert container.as_user("DELETE", OBJ, {"X-If-Delete-At": "5"}).status == 404
    delete_at = expired_object(app)
    res = container.as_user("DELETE", OBJ, {"X-If-Delete-At": str(delete_at + 1)})
    assert (res.status, res.body) == (
        412, b"X-If-Delete-At and X-Delete-At do not match")
    res = container.as_user("DELETE", OBJ, {"X-If-Delete-At": str(delete_at)})
    assert res.status == 204
    container.as_user("PUT", OBJ, body=b"no expiry")
    assert container.as_user("DELETE", OBJ, {"X-If-Delete-At": "0"}).status == 204


def test_copy_keeps_the_sources_expiry(container):
    container.as_user("PUT", OBJ, {"X-Delete-After": "1000"}, body=b"x")
    delete_at = container.as_user("HEAD", OBJ).headers["x-delete-at"]
    assert container.as_user("COPY", OBJ, {"Destination": "c/kept"}).status == 201
    assert container.as_user(
        "HEAD", "/v1/AUTH_test/c/kept").headers["x-delete-at"] == delete_at
    res = container.as_user("COPY", OBJ, {"Destination": "c/fresh",
                                          "X-Fresh-Metadata": "true"})
    assert res.status == 201
    assert "x-delete-at" not in container.as_user(
        "HEAD", "/v1/AUTH_test/c/fresh").headers
    container.as_user("COPY", OBJ, {"Destination": "c/later",
                                    "X-Delete-After": "5000"})
    later = container.as_user("HEAD", "/v1/AUTH_test/c/later").headers
    assert int(later["x-delete-at"]) > int(delete_at)


def test_every_expiring_write_is_queued(app, container):
    container.as_user("PUT", OBJ, {"X-Delete-After": "1000"}, body=b"x")
    container.as_user("PUT", "/v1/AUTH_test/c/p", body=b"x")
    container.as_user("POST", "/v1/AUTH_test/c/p", {"X-Delete-After": "2000"})
    queue = app.service.queue
    now = time.time() + 3000
    entries = [e for b in queue.buckets(now) for e in queue.due(b, now)]
    assert sorted(e.path for e in entries) == ["AUTH_test/c/o", "AUTH_test/c/p"]
    for entry in entries:
        assert entry.delete_at > time.time()


def test_queue_is_not_a_container_of_the_api(app, container):
    container.as_user("PUT", OBJ, {"X-Delete-After": "1000"}, body=b"x")
    res = container.as_user("GET", "/v1/AUTH_test", query="format=json")
    assert [c["name"] for c in res.json()] == ["c"]
    assert expiry.QUEUE_ACCOUNT not in app.service.catalog.list_accounts()
