"""container-sync-realms.conf and sync signatures, answered as Swift answers."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest

from storaged.sync import realms as realms_mod
from storaged.sync.realms import Realm
from storaged.sync.realms import Realms

REALMS_TEXT = """\
[DEFAULT]
mtime_check_interval = 60

[us]
key = realm-key-1
key2 = realm-key-2
cluster_East = http://127.0.0.1:8080/v1/
cluster_west = https://west.example.com/v1

[nokey]
cluster_a = http://a/v1/
"""


def test_swift_signature_vector():
    # The vector of Swift's own tests for ContainerSyncRealms.get_sig.
    assert realms_mod.sign(
        "GET", "/some/path", "1387212345.67890", "my_nonce", "realm_key", "user_key"
    ) == "5a6eb486eb7b44ae1b1f014187a94529c3f9c8f9"


def test_signature_is_hmac_sha1_of_the_five_lines():
    expected = hmac.new(
        b"rk", b"PUT\n/v1/AUTH_b/c/%C3%BC\n1700000000.00000\nn0nce\nuk", hashlib.sha1
    ).hexdigest()
    assert realms_mod.sign(
        "PUT", "/v1/AUTH_b/c/%C3%BC", "1700000000.00000", "n0nce", "rk", "uk"
    ) == expected


def test_canonical_path_encodes_as_swift_req_path():
    assert realms_mod.canonical_path("/v1/AUTH_a/c/a b/ü~x.txt") == (
        "/v1/AUTH_a/c/a%20b/%C3%BC~x.txt"
    )
    assert realms_mod.canonical_path(b"/v1/a/c/%2F") == "/v1/a/c/%252F"
    assert realms_mod.canonical_path("/v1/a/c/x?y#z") == "/v1/a/c/x%3Fy%23z"


def test_parse_realms():
    realms, interval = realms_mod.parse_realms(REALMS_TEXT)
    assert interval == 60
    assert sorted(realms) == ["NOKEY", "US"]
    us = realms["US"]
    assert (us.key, us.key2) == ("realm-key-1", "realm-key-2")
    assert us.clusters == {
        "EAST": "http://127.0.0.1:8080/v1/",
        "WEST": "https://west.example.com/v1",
    }
    assert realms["NOKEY"].key == ""
    assert "realm-key" not in repr(us)


@pytest.mark.parametrize("text", [
    "key = x\n",                                     # no section
    "[DEFAULT]\nmtime_check_interval = soon\n",
    "[DEFAULT]\nmtime_check_interval = -1\n",
])
def test_parse_realms_refuses_malformed(text):
    with pytest.raises(realms_mod.RealmsFileError):
        realms_mod.parse_realms(text)


def test_load_missing_file_is_no_realm(tmp_path):
    realms = Realms.load(str(tmp_path / "none.conf"))
    assert realms.names() == []
    assert realms.key("us") == ""


def test_reload_when_file_changes(tmp_path):
    path = tmp_path / "realms.conf"
    path.write_text(REALMS_TEXT)
    now = [1000.0]
    realms = Realms.load(str(path), clock=lambda: now[0])
    assert realms.key("Us") == "realm-key-1"
    assert realms.endpoint("us", "east") == "http://127.0.0.1:8080/v1/"
    assert realms.clusters("US") == ["EAST", "WEST"]
    path.write_text("[us]\nkey = rotated\n")
    os.utime(path, (2000, 2000))
    assert realms.key("us") == "realm-key-1"      # not looked at before 60 s
    now[0] += 61
    assert realms.key("us") == "rotated"
    # A broken file later keeps the last good realms.
    path.write_text("garbage without a section\n")
    os.utime(path, (3000, 3000))
    now[0] += 400
    assert realms.key("us") == "rotated"


def test_load_malformed_file_fails(tmp_path):
    path = tmp_path / "realms.conf"
    path.write_text("no section here\n")
    with pytest.raises(realms_mod.RealmsFileError) as info:
        Realms.load(str(path))
    assert str(path) in str(info.value)


def test_as_info_lists_clusters_never_keys():
    realms = Realms(realms={"us": Realm("US", "k1", "k2", {"EAST": "http://e/v1/"})})
    info = realms.as_info()
    assert info == {"US": {"clusters": {"EAST": {}}}}
    assert "k1" not in repr(info)


# -- verification ---------------------------------------------------------------------

PATH = "/v1/AUTH_b/dst/a%20b/%C3%BC.txt"
TS = "1700000000.12345"


@pytest.fixture
def realms():
    return Realms(realms={
        "US": Realm("US", "realm-key-1", "realm-key-2", {"EAST": "http://e/v1/"}),
        "NOKEY": Realm("NOKEY", "", "", {}),
    })


def header(realm="US", key="realm-key-1", user_key="secret", method="PUT",
           path=PATH, ts=TS, nonce="abc123"):
    return "%s %s %s" % (realm, nonce,
                         realms_mod.sign(method, path, ts, nonce, key, user_key))


def verify(realms, value, method="PUT", path=PATH, ts=TS, user_key="secret"):
    return realms_mod.verify_auth(value, method, path, ts, realms, user_key)


def test_valid_with_key(realms):
    result = verify(realms, header())
    assert (result.valid, result.reason, result.realm) == (True, "valid", "US")


def test_valid_with_key2_during_rotation(realms):
    assert verify(realms, header(key="realm-key-2")).valid


def test_realm_name_is_case_insensitive(realms):
    assert verify(realms, header(realm="us")).valid


def test_auth_header_helper_round_trips(realms):
    value = realms_mod.auth_header("DELETE", PATH, TS, "us", "realm-key-2", "secret")
    assert value.startswith("US ")
    assert verify(realms, value, method="DELETE").valid


def test_wrong_realm_key(realms):
    assert verify(realms, header(key="not-the-realm-key")).reason == "invalid-sig"


def test_wrong_user_key(realms):
    assert verify(realms, header(user_key="other")).reason == "invalid-sig"


def test_wrong_path_encoding(realms):
    # Signed over the decoded path: the receiver re-encodes, so it differs.
    value = header(path="/v1/AUTH_b/dst/a b/ü.txt")
    assert verify(realms, value).reason == "invalid-sig"


def test_other_method_or_timestamp(realms):
    assert verify(realms, header(), method="DELETE").reason == "invalid-sig"
    assert verify(realms, header(), ts="1700000000.12346").reason == "invalid-sig"


def test_absent_timestamp_signs_as_zero(realms):
    assert verify(realms, header(ts="0"), ts=None).valid


def test_missing_container_key(realms):
    result = verify(realms, header(), user_key="")
    assert (result.valid, result.reason) == (False, "no-local-user-key")


def test_unknown_realm_or_realm_without_key(realms):
    assert verify(realms, header(realm="EU")).reason == "no-local-realm-key"
    assert verify(realms, header(realm="NOKEY")).reason == "no-local-realm-key"


@pytest.mark.parametrize("value", ["", "US", "US abc", "US a b c", "  "])
def test_not_three_words(realms, value):
    assert verify(realms, value).reason == "not-3-args"


def test_non_ascii_timestamp_is_invalid_not_an_error(realms):
    assert verify(realms, header(), ts="17000000\u00e900").reason == "invalid-sig"


def test_both_keys_compared_in_constant_time(realms, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(realms_mod.hmac, "compare_digest", counting)
    assert verify(realms, header()).valid
    assert len(calls) == 2          # key and key2, even when key matched
    calls.clear()
    assert realms_mod.verify_legacy_key("secret", "secret")
    assert len(calls) == 1


def test_legacy_key():
    assert realms_mod.verify_legacy_key("s3cr3t", "s3cr3t")
    assert realms_mod.verify_legacy_key(b"s3cr3t", "s3cr3t")
    assert not realms_mod.verify_legacy_key("s3cr3", "s3cr3t")
    assert not realms_mod.verify_legacy_key("", "")
    assert not realms_mod.verify_legacy_key("anything", "")


# -- X-Container-Sync-To -------------------------------------------------------------


def test_parse_sync_to_realm_form(realms):
    target = realms_mod.parse_sync_to("//us/east/AUTH_b/dst/", realms, ["127.0.0.1"])
    assert target == realms_mod.SyncTarget(
        url="http://e/v1/AUTH_b/dst", realm="US", cluster="EAST"
    )
    assert target.signed
    assert realms_mod.parse_sync_to("", realms, []) is None


def test_parse_sync_to_full_url(realms):
    target = realms_mod.parse_sync_to("http://127.0.0.1:8080/v1/AUTH_b/c", realms,
                                      ["127.0.0.1"])
    assert target is not None and not target.signed


@pytest.mark.parametrize("value, message", [
    ("//us/east/AUTH_b", "Invalid X-Container-Sync-To format"),
    ("//us/east/a/c/extra", "Invalid X-Container-Sync-To format"),
    ("//eu/east/a/c", "No realm key for 'eu'"),
    ("//nokey/a/a/c", "No realm key for 'nokey'"),
    ("//us/north/a/c", "No cluster endpoint for 'us' 'north'"),
    ("ftp://127.0.0.1/v1/a/c", "Invalid scheme 'ftp'"),
    ("http://127.0.0.1", "Path required"),
    ("http://127.0.0.1/v1/a/c?x=1", "Params, queries, and fragments"),
    ("http://10.0.0.9/v1/a/c", "Invalid host '10.0.0.9'"),
])
def test_parse_sync_to_refuses(realms, value, message):
    with pytest.raises(realms_mod.InvalidSyncTo) as info:
        realms_mod.parse_sync_to(value, realms, ["127.0.0.1"])
    assert message in str(info.value)


def test_shipped_sample_parses():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    path = os.path.join(root, "etc", "storaged", "container-sync-realms.conf.sample")
    with open(path) as f:
        realms, interval = realms_mod.parse_realms(f.read(), path)
    assert (realms, interval) == ({}, 300)
