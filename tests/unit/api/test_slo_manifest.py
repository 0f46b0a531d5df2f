"""Pure parts of static large objects: Accept, ranges, ETags, bodies, segments."""

from __future__ import annotations

import hashlib
import json

import pytest

from storaged.api.handlers import slo_manifest as sm
from storaged.api.handlers.segments import Segment
from storaged.api.handlers.segments import ranged


@pytest.mark.parametrize("accept, fmt", [
    (None, "text/plain"),
    ("", "text/plain"),
    ("application/json", "application/json"),
    ("text/xml", "text/xml"),
    ("application/xml;q=0.5, application/json;q=0.9", "application/json"),
    ("*/*", "text/plain"),
    ("application/*", "application/json"),
    ("image/png", None),
    ("application/json;q=0", None),
])
def test_best_format(accept, fmt):
    assert sm.best_format(accept) == fmt


@pytest.mark.parametrize("text, parsed", [
    ("0-9", (0, 9)), ("5-", (5, None)), ("-3", (None, 3)),
])
def test_parse_byte_range(text, parsed):
    assert sm.parse_byte_range(text) == parsed


@pytest.mark.parametrize("text", ["", "-", "a-b", "9-5", "1-2-3", "+1-2"])
def test_parse_byte_range_refuses(text):
    with pytest.raises(ValueError):
        sm.parse_byte_range(text)


def test_range_for_length():
    assert sm.range_for_length((None, 3), 10) == (7, 10)
    assert sm.range_for_length((None, 30), 10) == (0, 10)
    assert sm.range_for_length((None, 0), 10) is None
    assert sm.range_for_length((2, None), 10) == (2, 10)
    assert sm.range_for_length((2, 50), 10) == (2, 10)
    assert sm.range_for_length((10, None), 10) is None


def test_slo_etag_as_swift_documents_it():
    entries = [{"hash": "etagoftheobjectsegmentone", "range": "1-2"},
               {"hash": "etagoftheobjectsegmenttwo", "range": "3-4"}]
    expect = hashlib.md5(b"etagoftheobjectsegmentone:1-2;"
                         b"etagoftheobjectsegmenttwo:3-4;").hexdigest()
    assert sm.slo_etag(entries) == expect
    assert sm.slo_etag([{"hash": "a"}, {"hash": "b"}]) == hashlib.md5(b"ab").hexdigest()


def test_response_bodies():
    errors = [["/c/o%20x", "404 Not Found"]]
    assert sm.response_body("text/plain", {"B": 1, "A": "x"}, errors, "delete") == (
        b"A: x\nB: 1\nErrors:\n/c/o%20x, 404 Not Found\n")
    assert json.loads(sm.response_body("application/json", {"A": 1}, errors, "d")) == {
        "A": 1, "Errors": errors}
    assert sm.response_body("text/xml", {"Number Deleted": 2}, errors, "delete") == (
        b"<delete>\n<number_deleted>2</number_deleted>\n<errors>\n"
        b"<object><name>/c/o%20x</name><status>404 Not Found</status></object>\n"
        b"</errors>\n</delete>\n")


def test_listing_fields():
    meta = {"X-Static-Large-Object": "True", sm.SYSMETA_ETAG: "abc",
            sm.SYSMETA_SIZE: "3000"}
    assert sm.listing_fields(300, "m", meta) == {"bytes": 3000, "slo_etag": '"abc"'}
    assert sm.listing_fields(300, "m", {}) == {}


def test_ranged_narrows_segments():
    segs = [Segment("a", "c", "1", 0, 9), Segment("a", "c", "2", 100, 109),
            Segment("a", "c", "3", 0, 4)]
    out = list(ranged(segs, 5, 21))
    assert [(s.name, s.first, s.last) for s in out] == [
        ("1", 5, 9), ("2", 100, 109), ("3", 0, 1)]
    assert sum(s.length for s in out) == 17
