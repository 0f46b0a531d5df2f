"""Temporary URLs, as Swift's tempurl middleware grants them."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time
from urllib import parse as urlparse

import pytest

from storaged.api import routes
from storaged.api import tempurl

KEY = "s3cret-key"
KEY2 = "other-s3cret"
CKEY = "container-key"
OBJ = "/v1/AUTH_test/c/obj"


def sig_of(method, path, expires, key=KEY, digest="sha256", ip_range=None):
    lines = [method, str(expires), path]
    if ip_range:
        lines.insert(0, "ip=" + ip_range)
    message = "\n".join(lines).encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, getattr(hashlib, digest))


def query(method="GET", path=OBJ, expires=None, key=KEY, digest="sha256",
          form="hex", **extra):
    expires = int(time.time()) + 3600 if expires is None else expires
    mac = sig_of(method, extra.pop("signed_path", path), expires, key, digest,
                 extra.get("temp_url_ip_range"))
    if form == "hex":
        sig = mac.hexdigest()
    elif form == "base64":
        sig = digest + ":" + base64.b64encode(mac.digest()).decode()
    elif form == "base64-no-padding":
        sig = digest + ":" + base64.b64encode(mac.digest()).decode().rstrip("=")
    else:
        sig = digest + ":" + base64.urlsafe_b64encode(mac.digest()).decode()
    params = {"temp_url_sig": sig, "temp_url_expires": str(expires)}
    params.update(extra)
    return urlparse.urlencode(params)


@pytest.fixture
def keyed(client):
    assert client.as_user("POST", "/v1/AUTH_test", {
        "X-Account-Meta-Temp-URL-Key": KEY,
        "X-Account-Meta-Temp-URL-Key-2": KEY2,
    }).status == 204
    assert client.as_user("PUT", "/v1/AUTH_test/c").status == 201
    assert client.as_user("PUT", OBJ, {
        "X-Object-Meta-Color": "blue", "X-Object-Meta-Public-Size": "big",
    }, body=b"obj contents").status == 201
    return client


# -- pure parts -------------------------------------------------------------------


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("form", ["hex", "base64", "base64-no-padding", "url-safe"])
def test_every_digest_and_form_parses_to_its_hex(digest, form):
    for expires in range(1700000000, 1700000050):  # some have - or _ in base64
        mac = sig_of("GET", OBJ, expires, digest=digest)
        raw = mac.digest()
        value = {
            "hex": mac.hexdigest(),
            "base64": digest + ":" + base64.b64encode(raw).decode(),
            "base64-no-padding": (
                digest + ":" + base64.b64encode(raw).decode().rstrip("=")),
            "url-safe": digest + ":" + base64.urlsafe_b64encode(raw).decode(),
        }[form]
        assert tempurl.parse_signature(value) == (digest, mac.hexdigest())


@pytest.mark.parametrize("value", [
    "abc", "zz" * 32, "a" * 63, "sha256:not base64!", "sha256:YWJjZ", "\u00e9" * 64,
])
def test_bad_signatures_do_not_parse(value):
    with pytest.raises(ValueError):
        tempurl.parse_signature(value)


def test_expires_integer_iso8601_bad_and_past():
    now = 1700000000
    assert tempurl.normalize_expires("1700000100", now) == 1700000100
    iso = time.strftime(tempurl.ISO8601, time.gmtime(1700000100))
    assert tempurl.normalize_expires(iso, now) == 1700000100
    assert tempurl.normalize_expires("2023-11-14 22:15:00", now) == 0
    assert tempurl.normalize_expires("soon", now) == 0
    assert tempurl.normalize_expires("1699999999", now) == 0


def grant(method="GET", path_obj="obj", params=None, account_keys=(KEY,),
          container_keys=(), remote="127.0.0.1", kind=routes.OBJECT):
    route = routes.Route(kind, "AUTH_test", "c", path_obj)
    return tempurl.verify(method, route, "v1", params, account_keys,
                          container_keys, remote, 1700000000)


def params(method="GET", path=OBJ, expires=1700000100, key=KEY, **kw):
    ip_range = kw.get("ip_range")
    signed = kw.pop("signed", path)
    sig = kw.pop("sig", None)
    if sig is None:
        sig = sig_of(method, signed, expires, key, ip_range=ip_range).hexdigest()
    return tempurl.Params(sig=sig, expires=str(expires), **kw)


def test_verify_scopes_methods_and_head():
    got = grant(params=params())
    assert (got.account, got.container, got.scope) == ("AUTH_test", "", "account")
    got = grant(params=params(key=CKEY), account_keys=(), container_keys=(CKEY,))
    assert (got.container, got.scope) == ("c", "container")
    # A HEAD is allowed by a signature for HEAD, GET, POST or PUT, not DELETE.
    for method in ("HEAD", "GET", "POST", "PUT"):
        assert grant("HEAD", params=params(method)) is not None
    assert grant("HEAD", params=params("DELETE")) is None
    assert grant("GET", params=params("HEAD")) is None
    assert grant("PUT", params=params("GET")) is None
    assert grant("COPY", params=params("COPY")) is None
    assert grant(params=params(), account_keys=()) is None
    assert grant(params=params(expires=1699999999)) is None
    assert grant(params=params(sig="")) is None


def test_verify_prefix():
    prefixed = params(signed="prefix:/v1/AUTH_test/c/ob", prefix="ob")
    assert grant(params=prefixed) is not None
    assert grant(path_obj="other", params=prefixed) is None
    # The empty prefix covers the container (its listing stays refused).
    empty = params(signed="prefix:/v1/AUTH_test/c/", prefix="")
    assert grant(params=empty) is not None
    assert grant(path_obj="", params=empty, kind=routes.CONTAINER) is not None
    # A whole-path signature with a prefix parameter is not a prefix one.
    assert grant(params=params(prefix="obj")) is None


def test_verify_ip_range():
    ranged = params(ip_range="127.0.0.0/8")
    assert grant(params=ranged) is not None
    assert grant(params=ranged, remote="10.1.2.3") is None
    assert grant(params=ranged, remote=None) is None
    # The range is signed: another one does not verify.
    forged = tempurl.Params(sig=ranged.sig, expires=ranged.expires,
                            ip_range="10.0.0.0/8")
    assert grant(params=forged, remote="10.1.2.3") is None
    # Host bits set: not a network, as Swift's ip_network refuses it.
    assert grant(params=params(ip_range="127.0.0.1/8")) is None


def test_signatures_are_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tempurl.hmac, "compare_digest", spy)
    assert grant(params=params(key=KEY2), account_keys=(KEY, KEY2)) is not None
    assert len(calls) == 2
    assert all(isinstance(a, bytes) for a, _b in calls)


def test_info_is_swifts():
    assert tempurl.info() == {
        "methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
        "incoming_remove_headers": ["x-timestamp", "x-open-expired"],
        "incoming_allow_headers": [],
        "outgoing_remove_headers": ["x-object-meta-*"],
        "outgoing_allow_headers": ["x-object-meta-public-*"],
        "allowed_digests": ["sha1", "sha256", "sha512"],
        "deprecated_digests": ["sha1"],
    }


# -- through the application -------------------------------------------------------


def test_info_advertises_tempurl(client):
    assert client.call("GET", "/info").json()["tempurl"] == tempurl.info()


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("form", ["hex", "base64", "base64-no-padding", "url-safe"])
def test_get_and_head_with_every_digest_and_form(keyed, digest, form):
    q = query(digest=digest, form=form)
    res = keyed.call("GET", OBJ, query=q)
    assert (res.status, res.body) == (200, b"obj contents")
    assert keyed.call("HEAD", OBJ, query=q).status == 200


def test_get_with_key_2_and_iso8601(keyed):
    expires = int(time.time()) + 600
    iso = time.strftime(tempurl.ISO8601, time.gmtime(expires))
    q = query(key=KEY2, expires=expires).replace(str(expires), urlparse.quote(iso))
    assert keyed.call("GET", OBJ, query=q).status == 200


def test_invalid_is_swifts_401(keyed):
    q = query(method="PUT")
    res = keyed.call("GET", OBJ, query=q)
    assert res.status == 401
    assert res.body == b"401 Unauthorized: Temp URL invalid\n"
    assert res.headers["www-authenticate"] == 'Swift realm="AUTH_test"'
    assert res.headers["content-type"] == "text/html; charset=UTF-8"
    res = keyed.call("HEAD", OBJ, query=query(method="DELETE"))
    assert (res.status, res.body) == (401, b"")
    assert res.headers["www-authenticate"] == 'Swift realm="AUTH_test"'
    # Expired, a signature without expiry, an expiry without signature.
    past = int(time.time()) - 1
    assert keyed.call("GET", OBJ, query=query(expires=past)).status == 401
    assert keyed.call("GET", OBJ, query="temp_url_sig=abc").status == 401
    only_expires = "temp_url_expires=%d" % (past + 99)
    assert keyed.call("GET", OBJ, query=only_expires).status == 401
    # Another object, another account's path, a token does not help.
    assert keyed.call("GET", "/v1/AUTH_test/c/other", query=query()).status == 401
    res = keyed.as_user("GET", OBJ, query=query(key="wrong"))
    assert res.status == 401
    assert keyed.call("GET", "/v1/AUTH_test", query=query()).status == 401


def test_prefix_urls(keyed):
    assert keyed.as_user("PUT", "/v1/AUTH_test/c/obj2", body=b"two").status == 201
    q = query(signed_path="prefix:/v1/AUTH_test/c/ob", temp_url_prefix="ob")
    assert keyed.call("GET", "/v1/AUTH_test/c/obj2", query=q).body == b"two"
    assert keyed.call("GET", OBJ, query=q).status == 200
    q = query(signed_path="prefix:/v1/AUTH_test/c/x", temp_url_prefix="x")
    assert keyed.call("GET", OBJ, query=q).status == 401
    # The container's root with the empty prefix: never its listing.
    q = query(signed_path="prefix:/v1/AUTH_test/c/", temp_url_prefix="")
    assert keyed.call("GET", "/v1/AUTH_test/c", query=q).status == 401
    q = query(signed_path="prefix:/v1/AUTH_test/nope/", temp_url_prefix="")
    assert keyed.call("GET", "/v1/AUTH_test/nope", query=q).status == 404


def test_ip_range(keyed):
    q = query(temp_url_ip_range="127.0.0.1")
    assert keyed.call("GET", OBJ, query=q).status == 200
    res = keyed.call("GET", OBJ, query=q, environ={"REMOTE_ADDR": "10.0.0.1"})
    assert res.status == 401


def test_put_post_delete(keyed):
    path = "/v1/AUTH_test/c/new"
    put = query("PUT", path)
    assert keyed.call("PUT", path, query=put, body=b"new contents").status == 201
    assert keyed.as_user("GET", path).body == b"new contents"
    assert keyed.call("HEAD", path, query=put).status == 200
    assert keyed.call("GET", path, query=put).status == 401
    post = query("POST", path)
    assert keyed.call("POST", path, {"X-Object-Meta-A": "b"}, query=post).status == 202
    assert keyed.as_user("HEAD", path).headers["x-object-meta-a"] == "b"
    assert keyed.call("DELETE", path, query=query("DELETE", path)).status == 204
    assert keyed.as_user("HEAD", path).status == 404


def test_a_write_may_not_name_other_objects(keyed):
    path = "/v1/AUTH_test/c/new"
    for header in ("X-Object-Manifest", "X-Symlink-Target"):
        res = keyed.call("PUT", path, {header: "c/x"}, query=query("PUT", path))
        assert res.status == 400
        assert res.body == (
            "The header '%s' is not allowed in this tempurl" % header).encode()
    res = keyed.call("POST", path, {"X-Object-Manifest": "c/x"},
                     query=query("POST", path))
    assert res.status == 400
    # The query is the URL's only: a manifest's JSON is stored as it is.
    q = query("PUT", path) + "&multipart-manifest=put"
    assert keyed.call("PUT", path, query=q, body=b"[]").status == 201
    assert keyed.as_user("GET", path).body == b"[]"


def test_incoming_headers_removed(keyed):
    path = "/v1/AUTH_test/c/stamped"
    res = keyed.call("PUT", path, {"X-Timestamp": "1000000000.00000"},
                     query=query("PUT", path), body=b"x")
    assert res.status == 201
    assert float(keyed.as_user("HEAD", path).headers["x-timestamp"]) > 1600000000


def test_outgoing_headers_and_disposition(keyed):
    expires = int(time.time()) + 600
    res = keyed.call("GET", OBJ, query=query(expires=expires))
    assert "x-object-meta-color" not in res.headers
    assert res.headers["x-object-meta-public-size"] == "big"
    assert res.headers["content-disposition"] == (
        "attachment; filename=\"obj\"; filename*=UTF-8''obj")
    assert res.headers["expires"] == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(expires))
    res = keyed.call("GET", OBJ, query=query(inline=""))
    assert res.headers["content-disposition"] == "inline"
    res = keyed.call("GET", OBJ, query=query(filename="caf\u00e9 b.txt", inline=""))
    assert res.headers["content-disposition"] == (
        "inline; filename=\"caf%C3%A9 b.txt\"; filename*=UTF-8''caf%C3%A9%20b.txt")
    res = keyed.call("HEAD", OBJ, query=query(filename="a\nb"))
    assert res.headers["content-disposition"] == (
        "attachment; filename=\"a%0Ab\"; filename*=UTF-8''a%0Ab")
    res = keyed.as_user("POST", OBJ, {"Content-Disposition": "inline; x"})
    assert res.status == 202
    res = keyed.call("GET", OBJ, query=query())
    assert res.headers["content-disposition"] == "inline; x"


def test_container_keys_are_owner_only_and_scoped(keyed):
    assert keyed.as_user("POST", "/v1/AUTH_test/c", {
        "X-Container-Meta-Temp-URL-Key": CKEY}).status == 204
    assert keyed.as_user("PUT", "/v1/AUTH_test/d").status == 201
    assert keyed.as_user("PUT", "/v1/AUTH_test/d/seg1", body=b"one ").status == 201
    assert keyed.as_user("PUT", "/v1/AUTH_test/c/seg1", body=b"uno ").status == 201
    q = query(key=CKEY)
    assert keyed.call("GET", OBJ, query=q).body == b"obj contents"
    # A copy from another container is out of a container key's reach.
    path = "/v1/AUTH_test/c/copy"
    res = keyed.call("PUT", path, {"X-Copy-From": "d/seg1"},
                     query=query("PUT", path, key=CKEY))
    assert res.status == 401
    res = keyed.call("PUT", path, {"X-Copy-From": "c/seg1"},
                     query=query("PUT", path, key=CKEY))
    assert res.status == 201
    res = keyed.call("PUT", path, {"X-Copy-From": "d/seg1"}, query=query("PUT", path))
    assert res.status == 201
    # So are a dynamic large object's segments.
    for target, segments in (("inside", "c/seg"), ("outside", "d/seg")):
        manifest = "/v1/AUTH_test/c/" + target
        res = keyed.as_user("PUT", manifest, {"X-Object-Manifest": segments})
        assert res.status == 201
    inside = "/v1/AUTH_test/c/inside"
    assert keyed.call("GET", inside, query=query(path=inside, key=CKEY)).body == b"uno "
    outside = "/v1/AUTH_test/c/outside"
    for method in ("GET", "HEAD"):
        res = keyed.call(method, outside, query=query(path=outside, key=CKEY))
        assert res.status == 401
    assert keyed.call("GET", outside, query=query(path=outside)).body == b"one "
    # The keys: shown to owners only, set by owners only.
    head = keyed.as_user("HEAD", "/v1/AUTH_test/c", login="test:reader")
    assert "x-container-meta-temp-url-key" not in head.headers
    assert keyed.as_user("HEAD", "/v1/AUTH_test/c").headers[
        "x-container-meta-temp-url-key"] == CKEY


def test_account_keys_are_owner_only(keyed):
    head = keyed.as_user("HEAD", "/v1/AUTH_test")
    assert head.headers["x-account-meta-temp-url-key"] == KEY
    head = keyed.as_user("HEAD", "/v1/AUTH_test", login="test:reader")
    assert "x-account-meta-temp-url-key" not in head.headers
    assert "x-account-meta-temp-url-key-2" not in head.headers
    keyed.as_user("POST", "/v1/AUTH_test", {"X-Account-Meta-Temp-URL-Key": "mine"},
                  login="test:reader")
    assert keyed.as_user("HEAD", "/v1/AUTH_test").headers[
        "x-account-meta-temp-url-key"] == KEY


def test_the_signature_is_not_logged(keyed, access_log):
    q = query()
    assert keyed.call("GET", OBJ, query=q).status == 200
    assert keyed.call("GET", OBJ, query=query(key="bad")).status == 401
    lines = access_log()
    sig = urlparse.parse_qs(q)["temp_url_sig"][0]
    assert not any(sig in line or KEY in line or "temp_url" in line for line in lines)
    assert lines[-2].split()[2:4] == ["/v1/AUTH_test/c/obj", "200"]
    assert lines[-2].split()[-1] == "tempurl"
    assert lines[-1].split()[-1] == "tempurl:invalid"


def test_expires_iso_and_int_are_the_same_expiry():
    expires = calendar.timegm((2030, 1, 2, 3, 4, 5, 0, 0, 0))
    iso = "2030-01-02T03:04:05Z"
    assert tempurl.normalize_expires(iso, 0) == expires


def test_symlinks_followed_within_the_grant(keyed):
    assert keyed.as_user("POST", "/v1/AUTH_test/c", {
        "X-Container-Meta-Temp-URL-Key": CKEY}).status == 204
    assert keyed.as_user("PUT", "/v1/AUTH_test/d").status == 201
    assert keyed.as_user("PUT", "/v1/AUTH_test/d/target", body=b"there").status == 201
    for name, target in (("near", "c/obj"), ("far", "d/target")):
        res = keyed.as_user("PUT", "/v1/AUTH_test/c/" + name,
                            {"X-Symlink-Target": target})
        assert res.status == 201
    near = "/v1/AUTH_test/c/near"
    res = keyed.call("GET", near, query=query(path=near, key=CKEY))
    assert (res.status, res.body) == (200, b"obj contents")
    # Finished once, for the link's own name.
    assert res.headers["content-disposition"] == (
        "attachment; filename=\"near\"; filename*=UTF-8''near")
    far = "/v1/AUTH_test/c/far"
    assert keyed.call("GET", far, query=query(path=far, key=CKEY)).status == 401
    # An account key reaches the whole account.
    assert keyed.call("GET", far, query=query(path=far)).body == b"there"
