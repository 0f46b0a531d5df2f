"""Headers that would change a request's meaning, for features storaged lacks.

Each is refused with 501 naming the header, after authentication and before
anything is read or stored: the container, the object and its metadata are
exactly as before the request.
"""

from __future__ import annotations

import pytest

from storaged.api import unsupported

OBJ = "/v1/AUTH_test/c/o"
CONT = "/v1/AUTH_test/c"


@pytest.fixture
def state(client):
    assert client.as_user("PUT", CONT).status == 201
    res = client.as_user("PUT", OBJ, {"X-Object-Meta-Keep": "1"}, body=b"original")
    assert res.status == 201

    def snapshot():
        obj = client.as_user("GET", OBJ)
        cont = client.as_user("GET", CONT, query="format=json")
        meta = {k: v for k, v in obj.headers.items() if k.startswith("x-object-meta")}
        cmeta = {k: v for k, v in cont.headers.items()
                 if k.startswith("x-container-meta")}
        return obj.status, obj.body, meta, cont.body, cmeta

    return snapshot


CASES = [
    ("POST", CONT, {"X-Versions-Enabled": "true"}, "", "X-Versions-Enabled",
     "object versioning"),
]


@pytest.mark.parametrize("method, path, headers, query, name, feature", CASES,
                         ids=[c[4] + "-" + c[0] for c in CASES])
def test_refused_and_nothing_changes(client, state, method, path, headers, query,
                                     name, feature):
    before = state()
    body = b"new data" if method == "PUT" else b""
    res = client.as_user(method, path, headers, body=body, query=query)
    assert res.status == 501, res
    assert res.body.decode() == (
        "%s is not supported: %s is not available on this server" % (name, feature))
    assert state() == before


def test_auth_comes_first(client, state):
    res = client.call("PUT", OBJ, {"X-Delete-At": "2000000000"}, body=b"")
    assert res.status == 401


@pytest.mark.parametrize("header", ["X-Versions-Location"])
def test_empty_container_setting_is_a_removal(client, state, header):
    assert client.as_user("POST", CONT, {header: ""}).status == 204


PATHS = {"object": OBJ, "container": CONT, "account": "/v1/AUTH_test"}
EVERY = [(e, kind, method) for e in unsupported.UNSUPPORTED
         for kind in sorted(e.kinds) for method in sorted(e.methods)]


@pytest.mark.parametrize("entry, kind, method", EVERY, ids=[
    "%s-%s-%s" % (e.name.lstrip("?"), k, m) for e, k, m in EVERY])
def test_every_entry_is_refused(client, state, entry, kind, method):
    before = state()
    name = entry.name.lstrip("?")
    value = entry.only or "x"
    if entry.is_query:
        res = client.as_user(method, PATHS[kind], query=name + "=" + value)
    else:
        res = client.as_user(method, PATHS[kind], {name: value})
    assert res.status == 501, res
    assert res.body.decode().startswith(name + " is not supported: ")
    assert state() == before


@pytest.mark.parametrize("policy, status", [
    ("Policy-0", 201), ("policy-0", 201), ("gold", 400),
])
def test_storage_policy(client, policy, status):
    res = client.as_user("PUT", "/v1/AUTH_test/p", {"X-Storage-Policy": policy})
    assert res.status == status, res
    if status == 400:
        assert res.body == b"Invalid X-Storage-Policy 'gold'"
        assert client.as_user("HEAD", "/v1/AUTH_test/p").status == 404


def test_other_multipart_manifest_values_are_plain_deletes(client, state):
    res = client.as_user("DELETE", OBJ, query="multipart-manifest=get")
    assert res.status == 204, res
    assert client.as_user("HEAD", OBJ).status == 404
