"""Error answers with Swift's bodies and content types."""

from __future__ import annotations

C = "/v1/AUTH_test/c"
HTML = "text/html; charset=UTF-8"


def test_put_without_a_length(client):
    client.as_user("PUT", C)
    res = client.as_user("PUT", C + "/o", environ={"CONTENT_LENGTH": ""})
    assert (res.status, res.body) == (411, b"Missing Content-Length header.")
    assert res.headers["content-type"] == "text/plain"


def test_put_too_large(client):
    client.as_user("PUT", C)
    res = client.as_user("PUT", C + "/o", environ={"CONTENT_LENGTH": str(6 << 30)})
    assert (res.status, res.body) == (413, b"Your request is too large.")
    assert res.headers["content-type"] == "text/plain"


def test_statuses_without_a_text_have_swobs_body(client):
    res = client.as_user("GET", C + "/nothing")
    assert res.status == 404
    assert res.body == (b"<html><h1>Not Found</h1>"
                        b"<p>The resource could not be found.</p></html>")
    assert res.headers["content-type"] == HTML
    res = client.call("GET", "/v1/AUTH_test")
    assert res.status == 401
    assert res.body.startswith(b"<html><h1>Unauthorized</h1>")
    assert res.headers["content-type"] == HTML


def test_bad_parameter_encoding(client):
    client.as_user("PUT", C)
    res = client.as_user("GET", C, query="marker=%ff")
    assert (res.status, res.body) == (400, b'"marker" parameter not valid UTF-8')
    assert res.headers["content-type"] == "text/plain"


def test_a_parameter_given_twice_has_its_last_value(client):
    client.as_user("PUT", C)
    for name in ("a", "b", "c"):
        client.as_user("PUT", C + "/" + name, body=b"x")
    res = client.as_user("GET", C, query="marker=c&marker=a")
    assert res.body == b"b\nc\n"


def test_a_negative_content_length(client):
    client.as_user("PUT", C)
    res = client.as_user("PUT", C + "/o", environ={"CONTENT_LENGTH": "-1"})
    assert (res.status, res.body) == (400, b"Invalid Content-Length")
    assert res.headers["content-type"] == HTML


def test_manifest_header_errors_in_swobs_type(client):
    client.as_user("PUT", C)
    res = client.as_user("PUT", C + "/m", {"X-Object-Manifest": "nocontainer"},
                         body=b"")
    assert (res.status, res.body) == (
        400, b"X-Object-Manifest must be in the format container/prefix")
    assert res.headers["content-type"] == HTML
    res = client.as_user("PUT", C + "/m", {"X-Static-Large-Object": "True"}, body=b"")
    assert res.status == 400
    assert res.body.startswith(b"X-Static-Large-Object is a reserved header.")
    assert res.headers["content-type"] == HTML
