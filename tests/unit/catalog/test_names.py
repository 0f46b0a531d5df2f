"""Naming limits: Swift's rules, with clear messages."""

from __future__ import annotations

import pytest

from storaged import exception
from storaged.catalog import names

# (kind, hostile value, words the message must hold)
HOSTILE = [
    ("account", "", "must not be empty"),
    ("container", "", "must not be empty"),
    ("object", "", "must not be empty"),
    ("container", ".", "'.' is not allowed"),
    ("container", "..", "'..' is not allowed"),
    ("account", "..", "'..' is not allowed"),
    ("container", "../etc", "must not contain '/'"),
    ("container", "a/b", "must not contain '/'"),
    ("account", "AUTH_x/..", "must not contain '/'"),
    ("container", "a\x00b", "holds NUL"),
    ("object", "a\x00", "holds NUL"),
    ("object", "\x00", "holds NUL"),
    ("object", "\ud800", "lone surrogate"),
    ("container", "x\udcff", "lone surrogate"),  # an undecodable byte, smuggled
    ("object", "\udfff/a", "lone surrogate"),
    ("object", b"\xff", "not valid UTF-8"),
    ("object", b"ok\xc3\x28", "not valid UTF-8"),  # bad continuation byte
    ("object", b"\xc0\xaf", "not valid UTF-8"),  # overlong encoding of '/'
    ("object", b"\xed\xa0\x80", "not valid UTF-8"),  # CESU-8 surrogate
    ("object", b"\xf4\x90\x80\x80", "not valid UTF-8"),  # beyond U+10FFFF
    ("container", "c" * 257, "257 bytes long, the limit is 256"),
    ("account", "a" * 257, "257 bytes long, the limit is 256"),
    ("container", "\u00e9" * 129, "258 bytes long, the limit is 256"),
    ("object", "o" * 1025, "1025 bytes long, the limit is 1024"),
    ("object", "\U0001f600" * 257, "1028 bytes long, the limit is 1024"),
    ("object", 42, "must be text, not int"),
    ("container", None, "must be text, not NoneType"),
    ("object", ".", "has a '.' or '..' path segment"),
    ("object", "..", "has a '.' or '..' path segment"),
    ("object", "../../etc/passwd", "has a '.' or '..' path segment"),
    ("object", "a/./b", "has a '.' or '..' path segment"),
    ("object", "a/..", "has a '.' or '..' path segment"),
    ("object", "line\nbreak", "control character 0x0a at 4"),
    ("object", "esc\x1b[31m", "control character 0x1b at 3"),
    ("object", "del\x7f", "control character 0x7f at 3"),
]

VALIDATORS = {
    "account": names.validate_account,
    "container": names.validate_container,
    "object": names.validate_object,
}


@pytest.mark.parametrize(("kind", "value", "words"), HOSTILE)
def test_hostile_names_are_refused(kind, value, words):
    with pytest.raises(exception.InvalidName) as info:
        VALIDATORS[kind](value)
    message = str(info.value)
    assert message.startswith(f"Invalid {kind} name: ")
    assert words in message
    assert len(message) < 200  # a huge name is not echoed in full


def test_at_least_fifteen_hostile_names():
    assert len(HOSTILE) >= 15


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("account", "AUTH_test"),
        ("container", "c" * 256),
        ("container", "\u00e9" * 128),  # 256 bytes exactly
        ("container", "with space & ?#%"),
        ("container", "..."),
        ("container", ".hidden"),
        ("object", "a/b/c"),
        ("object", "/leading/and/trailing/"),
        ("object", "...hidden/..x/x.."),  # dots, but no '.' or '..' segment
        ("object", "o" * 1024),
        ("object", "\U0001f600 \u4e2d\u6587 \u0627\u0644"),
        ("object", "nbsp\u00a0and line separator \u2028 are allowed"),
    ],
)
def test_good_names_are_kept_as_they_are(kind, value):
    assert VALIDATORS[kind](value) == value


def test_bytes_are_decoded():
    assert names.validate_object("\u00fc.txt".encode()) == "\u00fc.txt"


def test_limits_are_configurable():
    limits = names.Limits(max_object_name_length=4, max_container_name_length=3)
    assert names.validate_object("abcd", limits) == "abcd"
    with pytest.raises(exception.InvalidName, match="5 bytes long, the limit is 4"):
        names.validate_object("abcde", limits)
    with pytest.raises(exception.InvalidName, match="limit is 3"):
        names.validate_container("abcd", limits)


def _meta(metadata, **limits):
    return names.validate_metadata(
        metadata,
        kind="container metadata",
        prefix=names.CONTAINER_META_PREFIX,
        limits=names.Limits(**limits),
    )


def test_metadata_keys_are_canonical():
    given = {"x-container-meta-color": "red", "X-CONTAINER-SYNC-TO": "//a/b/c/d"}
    assert _meta(given) == {
        "X-Container-Meta-Color": "red",
        "X-Container-Sync-To": "//a/b/c/d",
    }


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"X-Container-Meta-": "v"}, "metadata name cannot be empty"),
        ({"X-Container-Meta-" + "n" * 129: "v"}, "longer than 128 bytes"),
        ({"X-Container-Meta-A": "v" * 257}, "longer than 256 bytes"),
        ({f"X-Container-Meta-{i}": "v" for i in range(91)}, "91 metadata items"),
        ({f"X-Container-Meta-{i:03d}": "v" * 200 for i in range(21)},
         "metadata is 4263 bytes, the limit is 4096"),
        ({"Bad Key": "v"}, "not a header name"),
        ({"Key:Colon": "v"}, "not a header name"),
        ({"": "v"}, "not a header name"),
        ({"X-Container-Meta-A": "a\r\nX-Injected: 1"}, "holds CR or LF"),
        ({"X-Container-Meta-A": "a\x00"}, "holds NUL"),
        ({"X-Container-Meta-A": "\ud800"}, "lone surrogate"),
        ({"X-Container-Meta-A": "1", "x-container-meta-a": "2"}, "given twice"),
        ({"X-Container-Sync-To": "x" * 8193}, "longer than 8192 bytes"),
        ({"X-Container-Meta-A": 5}, "must be text"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_metadata(metadata, words):
    with pytest.raises(exception.InvalidName) as info:
        _meta(metadata)
    assert words in str(info.value)
    assert str(info.value).startswith("Invalid container metadata")


def test_metadata_limits_count_only_user_metadata():
    # System metadata (sync, ACLs) is not user metadata: no count limit.
    meta = {f"X-Container-Meta-{i}": "v" for i in range(90)}
    meta["X-Container-Sync-To"] = "//realm/cluster/a/c"
    meta["X-Container-Read"] = ".r:*"
    assert len(_meta(meta)) == 92
    # Empty values (deletions) do not count.
    meta = {f"X-Container-Meta-{i}": "" for i in range(200)}
    assert len(_meta(meta)) == 200


@pytest.mark.parametrize(
    "secret", ["s3cr3t\x00", "s3cr3t\r\n", "s3cr3t\ud800", "s3cr3t" * 2000]
)
def test_messages_never_quote_metadata_values(secret):
    with pytest.raises(exception.InvalidName) as info:
        _meta({"X-Container-Sync-Key": secret})
    assert "s3cr3t" not in str(info.value)
    assert "X-Container-Sync-Key" in str(info.value)
