"""``?bulk-delete``: names deleted as direct DELETEs, the outcome in the body."""

from __future__ import annotations

import json

import pytest

from storaged.api.handlers import bulk_delete

ACCT = "/v1/AUTH_test"


@pytest.fixture
def photos(client):
    assert client.as_user("PUT", ACCT + "/photos").status == 201
    for name in ("a.jpg", "b c.jpg", "snow\u2603.jpg"):
        res = client.as_user("PUT", ACCT + "/photos/" + name, body=b"data")
        assert res.status == 201, res
    return client


def bulk(client, body, accept=None, method="POST", path=ACCT, **headers):
    if accept:
        headers["Accept"] = accept
    headers.setdefault("Content-Type", "text/plain")
    return client.as_user(method, path, headers, body=body.encode("utf-8"),
                          query="bulk-delete")


def listing(client, container):
    res = client.as_user("GET", ACCT + "/" + container, query="format=json")
    return res.status, [o["name"] for o in res.json()] if res.status == 200 else []


def test_objects_then_their_container(photos):
    body = "/photos\n/photos/a.jpg\n/photos/b%20c.jpg\n/photos/snow%E2%98%83.jpg\n"
    res = bulk(photos, body, "application/json")
    assert res.status == 200
    assert res.headers["content-type"] == "application/json"
    data = json.loads(res.body)
    assert data == {"Number Deleted": 4, "Number Not Found": 0,
                    "Response Status": "200 OK", "Response Body": "",
                    "Errors": []}
    assert listing(photos, "photos")[0] == 404


def test_plain_text_not_found_and_conflict(photos):
    res = bulk(photos, "photos/a.jpg\n/photos/gone.jpg\n/photos\n\n", method="DELETE")
    assert res.status == 200
    assert res.body.decode() == (
        "Number Deleted: 1\nNumber Not Found: 1\nResponse Body: \n"
        "Response Status: 400 Bad Request\nErrors:\n/photos, 409 Conflict\n"
    )
    assert listing(photos, "photos") == (200, ["b c.jpg", "snow\u2603.jpg"])


def test_xml(photos):
    res = bulk(photos, "/photos/a.jpg", "application/xml")
    assert res.headers["content-type"] == "application/xml"
    assert res.body.decode() == (
        "<delete>\n<number_deleted>1</number_deleted>\n"
        "<number_not_found>0</number_not_found>\n<response_body></response_body>\n"
        "<response_status>200 OK</response_status>\n<errors>\n</errors>\n"
        "</delete>\n"
    )


def test_empty_body_is_invalid(client):
    data = bulk(client, "\n  \n", "application/json").json()
    assert data["Response Status"] == "400 Bad Request"
    assert data["Response Body"] == "Invalid bulk delete."


def test_refusals_in_the_body(photos):
    res = bulk(photos, "/photos/a.jpg", **{"Content-Type": "application/json"})
    assert res.status == 200
    assert b"Response Status: 406 Not Acceptable" in res.body
    res = bulk(photos, "/photos/a.jpg", "image/png")
    assert res.status == 200 and b"406 Not Acceptable" in res.body
    too_many = "\n".join("/photos/%d" % i for i in range(10001))
    data = bulk(photos, too_many, "application/json").json()
    assert data["Response Status"] == "413 Request Entity Too Large"
    assert data["Response Body"] == "Maximum Bulk Deletes: 10000 per request"
    data = bulk(photos, "/photos/" + "x" * 3000, "application/json").json()
    assert data["Response Status"] == "400 Bad Request"
    assert data["Response Body"] == "Invalid File Name"
    assert listing(photos, "photos")[1] == ["a.jpg", "b c.jpg", "snow\u2603.jpg"]


def test_bad_names_are_listed(photos):
    data = bulk(photos, "/photos/%FF\n/photos/" + "y" * 1100 + "\n/photos/a.jpg",
                "application/json").json()
    assert data["Number Deleted"] == 1
    assert data["Response Status"] == "400 Bad Request"
    statuses = sorted(status for _name, status in data["Errors"])
    assert statuses == ["400 Bad Request", "412 Precondition Failed"]


def test_other_accounts_and_auth(photos):
    # As Swift's bulk (before the auth middleware): each item is authorized
    # as its own DELETE, and a refused one is an error of the answer.
    headers = {"Content-Type": "text/plain", "Accept": "application/json"}
    res = photos.call("POST", ACCT, headers, body=b"/photos/a.jpg",
                      query="bulk-delete")
    assert res.status == 200
    assert res.json()["Errors"] == [["/photos/a.jpg", "401 Unauthorized"]]
    res = photos.as_user("POST", ACCT, headers, login="other:admin",
                         body=b"/photos/a.jpg", query="bulk-delete")
    assert res.status == 200
    assert res.json()["Errors"] == [["/photos/a.jpg", "403 Forbidden"]]
    assert listing(photos, "photos")[1][0] == "a.jpg"


def test_chunked_body_and_container_path(photos):
    res = photos.as_user("DELETE", ACCT + "/photos",
                         {"Content-Type": "text/plain"},
                         body=b"/photos/a.jpg\n/photos/b%20c.jpg", chunked=True,
                         query="bulk-delete")
    assert res.status == 200
    assert b"Number Deleted: 2\n" in res.body
    assert listing(photos, "photos")[1] == ["snow\u2603.jpg"]


def test_max_failures_stop_the_request(photos, monkeypatch):
    monkeypatch.setattr(bulk_delete, "MAX_FAILED_DELETES", 2)
    for name in ("c1", "c2", "c3"):
        photos.as_user("PUT", ACCT + "/" + name)
        photos.as_user("PUT", ACCT + "/%s/o" % name, body=b"x")
    data = bulk(photos, "/c1\n/c2\n/c3", "application/json").json()
    assert data["Response Status"] == "400 Bad Request"
    assert data["Response Body"] == "Max delete failures exceeded"
    assert len(data["Errors"]) == 2


def test_heartbeat_while_working(photos, monkeypatch):
    photos.app.handlers.bulk_delete.yield_frequency = -1
    res = bulk(photos, "/photos/a.jpg\n/photos/b%20c.jpg", "application/json")
    assert res.body.startswith(b"  \r\n\r\n")  # a space per name, then the result
    assert json.loads(res.body)["Number Deleted"] == 2
    res = bulk(photos, "/photos/snow%E2%98%83.jpg\n/photos", "application/xml")
    assert res.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    assert b"<number_deleted>2</number_deleted>" in res.body


def test_info_advertises_the_limits(client):
    info = client.call("GET", "/info").json()
    assert info["bulk_delete"] == {"max_deletes_per_request": 10000,
                                   "max_failed_deletes": 1000}


# -- ?extract-archive -----------------------------------------------------------


def make_tar(files, mode="w"):
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("somedir")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    return out.getvalue()


def extract(client, path, body, kind="tar", accept="application/json", **kw):
    return client.as_user("PUT", path, {"Accept": accept}, body=body,
                          query="extract-archive=" + kind, **kw)


@pytest.mark.parametrize("kind, mode", [("tar", "w"), ("tar.gz", "w:gz"),
                                        ("tar.bz2", "w:bz2")])
def test_extract_to_the_account(client, kind, mode):
    body = make_tar({"top.txt": b"skipped", "docs/a.txt": b"A",
                     "./docs/sub/b.txt": b"BB", "more/c.txt": b"C"}, mode)
    res = extract(client, ACCT, body, kind)
    assert res.status == 200
    assert res.json() == {"Number Files Created": 3, "Response Status": "201 Created",
                          "Response Body": "", "Errors": []}
    assert listing(client, "docs")[1] == ["a.txt", "sub/b.txt"]
    assert client.as_user("GET", ACCT + "/docs/sub/b.txt").body == b"BB"
    assert listing(client, "more")[1] == ["c.txt"]


def test_extract_to_a_container_and_a_directory(client, photos):
    body = make_tar({"x.txt": b"x", "d/y.txt": b"y"})
    res = extract(client, ACCT + "/photos/2024/", body, chunked=True,
                  accept="text/plain")
    assert res.body.decode().endswith(
        "Number Files Created: 2\nResponse Body: \n"
        "Response Status: 201 Created\nErrors:\n")
    assert "2024/d/y.txt" in listing(client, "photos")[1]
    assert "2024/x.txt" in listing(client, "photos")[1]


def test_extract_failures(client):
    data = extract(client, ACCT, b"not a tar at all" * 100).json()
    assert data["Response Status"] == "400 Bad Request"
    assert data["Response Body"].startswith("Invalid Tar File: ")
    data = extract(client, ACCT, make_tar({"top.txt": b"x"})).json()
    assert data["Response Body"] == "Invalid Tar File: No Valid Files"
    res = extract(client, ACCT, make_tar({"c/a": b"x"}), kind="zip")
    assert res.status == 400 and res.body == b"Unsupported archive format"
    data = extract(client, ACCT, make_tar({"c/" + "z" * 1100: b"x", "c/ok": b"y"}),
                   accept="application/xml")
    assert b"<number_files_created>1</number_files_created>" in data.body
    assert b"<response_status>400 Bad Request</response_status>" in data.body


def test_extract_limits_in_info(client):
    info = client.call("GET", "/info").json()
    assert info["bulk_upload"] == {"max_containers_per_extraction": 10000,
                                   "max_failed_extractions": 1000}
