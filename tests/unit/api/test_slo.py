"""Static large objects (``?multipart-manifest=``) through WSGI calls, as Swift."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from storaged.api.handlers import slo_manifest

A = "/v1/AUTH_test"
PUT = "multipart-manifest=put"


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def segs(client):
    """Segments ``segs/a..e``: 1 KiB of one letter each."""
    for name in ("c", "segs"):
        assert client.as_user("PUT", "%s/%s" % (A, name)).status == 201
    out = {}
    for letter in "abcde":
        data = letter.encode() * 1024
        assert client.as_user("PUT", "%s/segs/%s" % (A, letter),
                              body=data).status == 201
        out[letter] = data
    return out


def entry(segs, letter, **extra):
    item = {"path": "/segs/" + letter, "etag": md5(segs[letter]),
            "size_bytes": len(segs[letter])}
    item.update(extra)
    return item


def put_manifest(client, name, manifest, headers=None, query=PUT):
    return client.as_user("PUT", A + "/c/" + name, headers or {},
                          body=json.dumps(manifest).encode(), query=query)


def slo_etag(*parts):
    return md5("".join(parts).encode())


def test_put_get_head(client, segs):
    manifest = [entry(segs, x) for x in "abcde"]
    res = put_manifest(client, "big", manifest, {"Content-Type": "text/x-big",
                                                  "X-Object-Meta-Kind": "slo"})
    assert res.status == 201, res
    etag = slo_etag(*(md5(segs[x]) for x in "abcde"))
    assert res.headers["etag"] == '"%s"' % etag
    whole = b"".join(segs[x] for x in "abcde")
    res = client.as_user("GET", A + "/c/big")
    assert res.status == 200
    assert res.body == whole
    assert res.headers["etag"] == '"%s"' % etag
    assert res.headers["content-length"] == str(len(whole))
    assert res.headers["content-type"] == "text/x-big"
    assert res.headers["x-static-large-object"] == "True"
    assert res.headers["x-object-meta-kind"] == "slo"
    assert not any(k.startswith("x-object-sysmeta") for k in res.headers)
    head = client.as_user("HEAD", A + "/c/big")
    assert head.headers["content-length"] == str(len(whole))
    assert head.headers["etag"] == '"%s"' % etag
    assert head.headers["x-manifest-etag"] == res.headers["x-manifest-etag"]


def test_manifest_get_and_raw(client, segs):
    manifest = [entry(segs, "a"), entry(segs, "b", range="10-19")]
    assert put_manifest(client, "m", manifest).status == 201
    res = client.as_user("GET", A + "/c/m", query="multipart-manifest=get")
    assert res.status == 200
    assert res.headers["content-type"] == "application/json; charset=utf-8"
    assert res.headers["etag"] == md5(res.body)      # the manifest's, bare
    stored = json.loads(res.body)
    assert [s["name"] for s in stored] == ["/segs/a", "/segs/b"]
    assert stored[0]["bytes"] == 1024 and stored[0]["hash"] == md5(segs["a"])
    assert stored[1]["range"] == "10-19"
    assert set(stored[0]) == {"name", "bytes", "hash", "content_type",
                              "last_modified"}
    res = client.as_user("GET", A + "/c/m", query="multipart-manifest=get&format=raw")
    raw = json.loads(res.body)
    assert raw == [
        {"path": "/segs/a", "etag": md5(segs["a"]), "size_bytes": 1024},
        {"path": "/segs/b", "etag": md5(segs["b"]), "size_bytes": 1024,
         "range": "10-19"},
    ]
    assert res.headers["etag"] == md5(res.body)
    # The raw form PUT again makes the same large object.
    assert client.as_user("PUT", A + "/c/m2", body=res.body, query=PUT).status == 201
    assert client.as_user("GET", A + "/c/m2").body == segs["a"] + segs["b"][10:20]


def test_ranges_data_segments_and_etag(client, segs):
    manifest = [entry(segs, "a", range="-3"),
                {"data": base64.b64encode(b"XY").decode()},
                {"path": "/segs/b", "range": "5-"}]
    res = put_manifest(client, "r", manifest)
    assert res.status == 201, res
    expect = b"aaa" + b"XY" + segs["b"][5:]
    etag = slo_etag("%s:1021-1023;" % md5(segs["a"]), md5(b"XY"),
                    "%s:5-1023;" % md5(segs["b"]))
    assert res.headers["etag"] == '"%s"' % etag
    assert client.as_user("GET", A + "/c/r").body == expect
    for rng, want in [("bytes=2-4", expect[2:5]), ("bytes=-1", expect[-1:]),
                      ("bytes=4-", expect[4:])]:
        res = client.as_user("GET", A + "/c/r", {"Range": rng})
        assert res.status == 206, rng
        assert res.body == want
    res = client.as_user("GET", A + "/c/r", {"Range": "bytes=9999-"})
    assert res.status == 416


def test_single_range_across_segments(client, segs):
    assert put_manifest(client, "big", [entry(segs, x) for x in "abc"]).status == 201
    res = client.as_user("GET", A + "/c/big", {"Range": "bytes=1000-2100"})
    assert res.status == 206
    assert res.body == b"a" * 24 + b"b" * 1024 + b"c" * 53
    assert res.headers["content-range"] == "bytes 1000-2100/3072"
    # A range that is not valid is ignored: the whole object.
    res = client.as_user("GET", A + "/c/big", {"Range": "bytes=5-1"})
    assert res.status == 200 and len(res.body) == 3072


def test_nested_manifests(client, segs):
    inner = put_manifest(client, "inner", [entry(segs, "a"), entry(segs, "b")])
    inner_etag = inner.headers["etag"].strip('"')
    outer = [{"path": "/c/inner", "etag": inner_etag, "size_bytes": 2048},
             entry(segs, "c")]
    res = put_manifest(client, "outer", outer)
    assert res.status == 201, res
    assert res.headers["etag"] == '"%s"' % slo_etag(inner_etag, md5(segs["c"]))
    stored = json.loads(client.as_user("GET", A + "/c/outer",
                                       query="multipart-manifest=get").body)
    assert stored[0]["sub_slo"] is True and stored[0]["bytes"] == 2048
    res = client.as_user("GET", A + "/c/outer")
    assert res.body == segs["a"] + segs["b"] + segs["c"]
    res = client.as_user("GET", A + "/c/outer", {"Range": "bytes=2040-2050"})
    assert res.body == b"b" * 8 + b"c" * 3


def test_validation_errors_listed_together(client, segs):
    manifest = [entry(segs, "a", etag="0" * 32), entry(segs, "b", size_bytes=5),
                {"path": "/segs/missing"}, {"path": "/segs/c", "range": "2000-"}]
    res = put_manifest(client, "bad", manifest)
    assert res.status == 400
    assert res.body.decode() == (
        "Errors:\n/segs/a, Etag Mismatch\n/segs/b, Size Mismatch\n"
        "/segs/missing, 404 Not Found\n/segs/c, Unsatisfiable Range\n"
    )
    res = put_manifest(client, "bad", manifest, {"Accept": "application/json"})
    assert res.status == 400
    assert res.headers["content-type"].startswith("application/json")
    assert res.json()["Errors"][0] == ["/segs/a", "Etag Mismatch"]
    res = put_manifest(client, "bad", manifest, {"Accept": "application/xml"})
    assert b"<errors>\n<object><name>/segs/a</name><status>Etag Mismatch" in res.body
    assert client.as_user("HEAD", A + "/c/bad").status == 404


@pytest.mark.parametrize("body, message", [
    (b"not json", b"Manifest must be valid JSON.\n"),
    (b"{}", b"Manifest must be a list.\n"),
    (b'[{"path": "/segs/a", "foo": 1}]', b'Index 0: extraneous keys "foo"\n'),
    (b'[{"size_bytes": 1}]',
     b"Index 0: expected keys to include one of 'data' or 'path'\n"),
    (b'[{"path": "nocontainer"}]',
     b"Index 0: path does not refer to an object. Path must be of the form "
     b"/container/object.\n"),
    (b'[{"path": "/c/self"}]',
     b"Index 0: manifest must not include itself as a segment\n"),
    (b'[{"path": "/segs/a", "range": "1-2,3-4"}]',
     b"Index 0: multiple ranges (only one allowed)\n"),
    (b'[{"path": "/segs/a", "range": "x"}]', b"Index 0: invalid range\n"),
    (b'[{"data": "!!"}, {"path": "/segs/a"}]',
     b"Index 0: data must be valid base64\n"),
    (b'[{"data": "QQ=="}]',
     b"Inline data segments require at least one object-backed segment.\n"),
    (b'[{"path": "/segs/a", "size_bytes": 0}, {"path": "/segs/b"}]',
     b"Index 0: too small; each segment must be at least 1 byte.\n"),
])
def test_parse_errors(client, segs, body, message):
    res = client.as_user("PUT", A + "/c/self", body=body, query=PUT)
    assert (res.status, res.body) == (400, message)


def test_limits_and_client_etag(client, segs):
    too_many = [entry(segs, "a")] * (slo_manifest.MAX_MANIFEST_SEGMENTS + 1)
    assert put_manifest(client, "m", too_many).status == 413
    res = client.as_user("PUT", A + "/c/m", {"Content-Length": "99999999"},
                         environ={"CONTENT_LENGTH": str(8 * 1024 * 1024 + 1)},
                         query=PUT)
    assert res.status == 413
    manifest = [entry(segs, "a")]
    assert put_manifest(client, "m", manifest, {"Etag": "0" * 32}).status == 422
    good = slo_etag(md5(segs["a"]))
    assert put_manifest(client, "m", manifest, {"Etag": good}).status == 201
    res = client.as_user("PUT", A + "/c/x", {"X-Static-Large-Object": "true"},
                         body=b"[]")
    assert res.status == 400
    assert b"reserved header" in res.body


def test_listing_and_post(client, segs):
    assert put_manifest(client, "big", [entry(segs, x) for x in "ab"],
                        {"Content-Type": "text/x-big"}).status == 201
    manifest_etag = client.as_user("GET", A + "/c/big",
                                   query="multipart-manifest=get").headers["etag"]
    slo = client.as_user("HEAD", A + "/c/big").headers["etag"]

    def listed():
        res = client.as_user("GET", A + "/c", query="format=json")
        return next(e for e in res.json() if e["name"] == "big")

    item = listed()
    assert item["bytes"] == 2048
    assert item["hash"] == manifest_etag
    assert item["slo_etag"] == slo
    assert item["content_type"] == "text/x-big"
    res = client.as_user("POST", A + "/c/big", {"Content-Type": "image/jpeg",
                                                "X-Object-Meta-T": "x"})
    assert res.status == 202
    item = listed()
    assert (item["bytes"], item["slo_etag"], item["content_type"]) == (
        2048, slo, "image/jpeg")
    res = client.as_user("GET", A + "/c/big")
    assert res.body == segs["a"] + segs["b"]
    assert res.headers["content-type"] == "image/jpeg"
    xml = client.as_user("GET", A + "/c", query="format=xml").body
    assert b"<bytes>2048</bytes>" in xml


def test_conditions(client, segs):
    etag = put_manifest(client, "m", [entry(segs, "a")]).headers["etag"]
    res = client.as_user("GET", A + "/c/m", {"If-None-Match": etag})
    assert res.status == 304 and res.headers["etag"] == etag
    assert client.as_user("GET", A + "/c/m", {"If-Match": etag}).status == 200
    assert client.as_user("HEAD", A + "/c/m", {"If-Match": '"nope"'}).status == 412


def test_changed_segment_is_409_first_and_cut_later(client, segs):
    put_manifest(client, "m", [entry(segs, "a"), entry(segs, "b")])
    client.as_user("PUT", A + "/segs/b", body=b"changed")
    with pytest.raises(Exception, match="no longer valid"):
        client.as_user("GET", A + "/c/m")
    client.as_user("PUT", A + "/segs/a", body=b"changed")
    assert client.as_user("GET", A + "/c/m").status == 409


def test_multipart_delete(client, segs):
    put_manifest(client, "inner", [entry(segs, "a")])
    inner = client.as_user("HEAD", A + "/c/inner").headers["etag"].strip('"')
    put_manifest(client, "outer", [
        {"path": "/c/inner", "etag": inner}, entry(segs, "b"),
        {"data": base64.b64encode(b"zz").decode()}])
    client.as_user("DELETE", A + "/segs/b")     # already gone: not found
    res = client.as_user("DELETE", A + "/c/outer", {"Accept": "application/json"},
                         query="multipart-manifest=delete")
    assert res.status == 200
    assert res.json() == {"Number Deleted": 3, "Number Not Found": 1,
                          "Response Status": "200 OK", "Response Body": "",
                          "Errors": []}
    for name in ("c/outer", "c/inner", "segs/a"):
        assert client.as_user("HEAD", A + "/" + name).status == 404
    assert client.as_user("HEAD", A + "/segs/c").status == 200


def test_multipart_delete_of_a_plain_object(client, segs):
    res = client.as_user("DELETE", A + "/segs/c", query="multipart-manifest=delete")
    assert res.status == 200
    assert res.body == (b"Number Deleted: 0\nNumber Not Found: 0\nResponse Body: \n"
                        b"Response Status: 400 Bad Request\nErrors:\n"
                        b"/segs/c, Not an SLO manifest\n")
    assert client.as_user("HEAD", A + "/segs/c").status == 200
    res = client.as_user("DELETE", A + "/segs/nope", query="multipart-manifest=delete")
    assert b"Number Not Found: 1\n" in res.body
    assert b"Response Status: 200 OK" in res.body


def test_heartbeat(client, segs):
    res = put_manifest(client, "m", [entry(segs, "a")], {"Accept": "application/json"},
                       query=PUT + "&heartbeat=on")
    assert res.status == 202
    assert res.body.startswith(b" \r\n\r\n")
    result = json.loads(res.body)
    assert result["Response Status"] == "201 Created"
    assert result["Etag"] == '"%s"' % slo_etag(md5(segs["a"]))
    assert result["Errors"] == []
    res = put_manifest(client, "m", [entry(segs, "a", etag="0" * 32)],
                       query=PUT + "&heartbeat=on")
    assert res.status == 202
    assert b"Response Status: 400 Bad Request\n" in res.body
    assert res.body.endswith(b"Errors:\n/segs/a, Etag Mismatch\n")


def test_info_advertises_slo_and_dlo(client):
    info = client.call("GET", "/info").json()
    assert info["slo"]["max_manifest_segments"] == 1000
    assert info["slo"]["max_manifest_size"] == 8 * 1024 * 1024
    assert info["slo"]["min_segment_size"] == 1
    assert info["dlo"] == {"max_get_time": 86400}


def test_several_ranges_are_multipart_byteranges(client, segs):
    assert put_manifest(client, "big", [entry(segs, x) for x in "abc"]).status == 201
    res = client.as_user("GET", A + "/c/big", {"Range": "bytes=1020-1027,2046-2049"})
    assert res.status == 206
    ctype = res.headers["content-type"]
    assert ctype.startswith("multipart/byteranges;boundary=")
    boundary = ctype.split("=", 1)[1].encode()
    assert res.body.count(b"--" + boundary) == 3
    assert b"Content-Range: bytes 1020-1027/3072\r\n\r\naaaabbbb\r\n" in res.body
    assert b"Content-Range: bytes 2046-2049/3072\r\n\r\nbbcc\r\n" in res.body
    assert res.headers["content-length"] == str(len(res.body))
