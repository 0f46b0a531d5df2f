"""ACL values: cleaning, parsing and matching, as Swift's acl module does them."""

from __future__ import annotations

import json

import pytest

from storaged.api import acl


@pytest.mark.parametrize("raw, clean", [
    ("bob, sue", "bob,sue"),
    ("bob , sue", "bob,sue"),
    ("bob,,,sue", "bob,sue"),
    (".referrer : *", ".r:*"),
    (".ref:*.example.com", ".r:.example.com"),
    (".r:*, .rlistings", ".r:*,.rlistings"),
    (".r:-.thief.com", ".r:-.thief.com"),
    (".r : - thief.com", ".r:-thief.com"),
    ("test:tester3", "test:tester3"),
    ("", ""),
])
def test_clean(raw, clean):
    assert acl.clean_acl("X-Container-Read", raw) == clean


NO_HOST = "No host/domain value after referrer designation in ACL: "


@pytest.mark.parametrize("name, raw, message", [
    ("X-Container-Read", ".r:", NO_HOST + "'.r:'"),
    ("X-Container-Read", ".r:-", NO_HOST + "'.r:-'"),
    ("X-Container-Read", ".r:*.", None),
    ("X-Container-Read", ".x:foo", "Unknown designator '.x' in ACL: '.x:foo'"),
    ("X-Container-Write", ".r:*", "Referrers not allowed in write ACL: '.r:*'"),
])
def test_refused(name, raw, message):
    with pytest.raises(ValueError) as err:
        acl.clean_acl(name, raw)
    if message:
        assert str(err.value) == message


@pytest.mark.parametrize("designations, referer, allowed", [
    ([".r:*"], None, True),
    ([".r:*"], "http://anything/", True),
    ([".r:example.com"], "http://example.com/page", True),
    ([".r:example.com"], "http://www.example.com/page", False),
    ([".r:.example.com"], "http://www.example.com/page", True),
    ([".r:*", ".r:-.thief.com"], "http://a.thief.com/", False),
    ([".r:*", ".r:-.thief.com"], "http://honest.com/", True),
    ([".r:-.thief.com", ".r:*"], "http://a.thief.com/", True),  # the last match decides
    ([], "http://example.com/", False),
    ([".r:example.com"], "not a url", False),
])
def test_referrers(designations, referer, allowed):
    parsed = acl.ContainerAcl.parse(",".join(designations))
    assert parsed.referrer_allowed(referer) is allowed


def test_groups_and_listings():
    parsed = acl.ContainerAcl.parse(".r:*,.rlistings,test:tester3,other,a%20b")
    assert parsed.listings
    assert parsed.grants({"test:tester3"})
    assert parsed.grants({"other", "other:bob"})
    assert parsed.grants({"a b"})
    assert not parsed.grants({"test", "test:tester"})
    assert not acl.ContainerAcl.parse(".r:*").listings
    assert acl.ContainerAcl.parse(None) == acl.ContainerAcl()


@pytest.mark.parametrize("value, problem", [
    ("", None),
    ("{}", None),
    ('{"admin":["a:b"],"read-only":[]}', None),
    ("[]", "Syntax error in input ('[]')"),
    ("garbage", "Syntax error in input ('garbage')"),
    ('{"owner":["a"]}', 'Key "owner" not recognized'),
    ('{"admin":"a"}', 'Value for key "admin" must be a list'),
    ('{"read-write":[1]}', 'Elements of "read-write" list must be strings'),
])
def test_account_acl_checks(value, problem):
    assert acl.check_account_acl(value) == problem


def test_account_acl_parse_and_format():
    value = json.dumps({"read-only": ["v:w"], "admin": ["\u00e9:x"]}, indent=2)
    assert acl.format_account_acl(value) == (
        '{"admin":["\\u00e9:x"],"read-only":["v:w"]}')
    parsed = acl.AccountAcl.parse(value)
    assert parsed is not None
    assert parsed.admin == {"\u00e9:x"} and parsed.read_only == {"v:w"}
    assert not parsed.read_write
    assert acl.AccountAcl.parse('{"admin":[]}') is None
    assert acl.AccountAcl.parse("") is None
    assert acl.format_account_acl("{}") == ""
