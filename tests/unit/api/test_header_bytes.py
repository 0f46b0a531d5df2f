"""Header values round-trip the exact bytes a client sent (UTF-8 and not).

WSGI carries header bytes as latin-1 "native strings": what a response
hands to ``start_response`` must be the latin-1 text of the UTF-8 bytes,
never the text itself (which a server would send as latin-1, or fail on).
"""

from __future__ import annotations

import pytest

from storaged.api.protocol import text_to_wsgi
from storaged.api.protocol import wsgi_to_text

#: Values from each range of UTF-8: two bytes in latin-1's range, three
#: (CJK), four (emoji, musical symbol, an ideograph outside the BMP).
VALUES = {
    "latin1": "värde ñ",
    "cjk": "名前",
    "emoji": "🙂 ok",
    "four-byte": "𝄞𠜎",
}


def wire(value: str) -> bytes:
    """What a client puts on the wire for a text value."""
    return value.encode("utf-8")


def sent(res, name: str) -> bytes:
    """The bytes the server would send for a response header."""
    return res.headers[name.lower()].encode("latin-1")


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_boundary_functions_are_inverse(value):
    native = wire(value).decode("latin-1")
    assert wsgi_to_text(native) == value
    assert text_to_wsgi(value) == native


def test_non_utf8_bytes_survive_the_lenient_boundary():
    native = b"\xff\xfeok\xe4".decode("latin-1")
    with pytest.raises(UnicodeError):
        wsgi_to_text(native)
    text = wsgi_to_text(native, strict=False)
    assert text_to_wsgi(text) == native


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_object_headers_round_trip(client, value):
    assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
    headers = {
        "X-Object-Meta-Color": wire(value),
        "Content-Type": wire("text/plain; name=" + value),
        "Content-Disposition": wire('attachment; filename="%s"' % value),
    }
    res = client.as_user("PUT", "/v1/AUTH_test/c/o", headers, body=b"data")
    assert res.status == 201, res
    for method in ("GET", "HEAD"):
        res = client.as_user(method, "/v1/AUTH_test/c/o")
        assert res.status == 200, res
        assert sent(res, "X-Object-Meta-Color") == wire(value)
        assert sent(res, "Content-Type") == wire("text/plain; name=" + value)
        assert sent(res, "Content-Disposition") == wire(
            'attachment; filename="%s"' % value)
    res = client.as_user("POST", "/v1/AUTH_test/c/o",
                         {"X-Object-Meta-Shade": wire(value + "2")})
    assert res.status == 202, res
    res = client.as_user("HEAD", "/v1/AUTH_test/c/o")
    assert sent(res, "X-Object-Meta-Shade") == wire(value + "2")
    assert "x-object-meta-color" not in res.headers
    # The container listing carries the content type as text.
    res = client.as_user("GET", "/v1/AUTH_test/c", query="format=json")
    assert res.json()[0]["content_type"] == "text/plain; name=" + value


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_container_metadata_and_account_listing(client, value):
    name = "/v1/AUTH_test/" + value
    res = client.as_user("PUT", name, {"X-Container-Meta-Note": wire(value)})
    assert res.status == 201, res
    res = client.as_user("POST", name, {"X-Container-Meta-Other": wire(value * 2)})
    assert res.status == 204, res
    for method in ("GET", "HEAD"):
        res = client.as_user(method, name)
        assert res.status in (200, 204), res
        assert sent(res, "X-Container-Meta-Note") == wire(value)
        assert sent(res, "X-Container-Meta-Other") == wire(value * 2)
    for query in ("format=json", ""):
        res = client.as_user("GET", "/v1/AUTH_test", query=query)
        assert res.status == 200, res
        if query:
            assert [c["name"] for c in res.json()] == [value]
        else:
            assert res.body == wire(value) + b"\n"
    res = client.as_user("HEAD", "/v1/AUTH_test")
    assert res.status == 204
    assert res.headers["x-account-container-count"] == "1"


def test_object_metadata_that_is_not_utf8_is_kept(client):
    """Swift keeps an object's metadata bytes as they came."""
    raw = b"\xff\xfe-\xe4"
    assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
    res = client.as_user("PUT", "/v1/AUTH_test/c/o",
                         {"X-Object-Meta-Raw": raw}, body=b"x")
    assert res.status == 201, res
    res = client.as_user("HEAD", "/v1/AUTH_test/c/o")
    assert sent(res, "X-Object-Meta-Raw") == raw
    res = client.as_user("POST", "/v1/AUTH_test/c/o", {"X-Object-Meta-Raw": raw * 2})
    assert res.status == 202
    assert sent(client.as_user("GET", "/v1/AUTH_test/c/o"),
                "X-Object-Meta-Raw") == raw * 2


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_container_metadata_that_is_not_utf8_is_400(client, method):
    assert client.as_user("PUT", "/v1/AUTH_test/c").status in (201, 202)
    res = client.as_user(method, "/v1/AUTH_test/c",
                         {"X-Container-Meta-Raw": b"\xff\xfe"})
    assert res.status == 400, res
    assert res.body == b"Metadata must be valid UTF-8"


def test_content_type_that_is_not_utf8_is_400(client):
    assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
    res = client.as_user("PUT", "/v1/AUTH_test/c/o",
                         {"Content-Type": b"text/\xff"}, body=b"x")
    assert res.status == 400, res
    assert res.body == b"Invalid Content-Type"
