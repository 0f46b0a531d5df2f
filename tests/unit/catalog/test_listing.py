"""Listings checked against a plain Python model of Swift's semantics."""

from __future__ import annotations

import random

import pytest

from storaged import exception
from storaged.catalog import MAX_LIMIT
from storaged.catalog import Subdir
from storaged.catalog import Timestamp
from storaged.catalog.listing import after_prefix

# Code points from every UTF-8 length, around the surrogate gap, the top.
ALPHABET = ["a", "b", "/", "-", ".", "\u00e9", "\u4e2d", "\ud7ff", "\ue000",
            "\uffff", "\U0001f600", "\U0010ffff"]


def model(names, *, prefix="", delimiter="", marker="", end_marker="",
          limit=MAX_LIMIT, reverse=False):
    """What a listing must return, the slow and obvious way."""
    out = []
    for name in sorted(names, reverse=reverse):
        if not name.startswith(prefix):
            continue
        lo, hi = (end_marker, marker) if reverse else (marker, end_marker)
        if (lo and name <= lo) or (hi and name >= hi):
            continue
        if delimiter:
            i = name.find(delimiter, len(prefix))
            if i >= 0:
                sub = name[: i + len(delimiter)]
                # Swift leaves out a subdir equal to the marker, which is
                # the client's end_marker once a reversed listing swapped them.
                repeated = end_marker if reverse else marker
                if sub == repeated or (out and out[-1] == ("subdir", sub)):
                    continue
                out.append(("subdir", sub))
                if len(out) == limit:
                    break
                continue
        out.append(("name", name))
        if len(out) == limit:
            break
    return out


def flatten(entries):
    return [("subdir", e.name) if isinstance(e, Subdir) else ("name", e.name)
            for e in entries]


def random_name(rng, alphabet):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))


def random_params(rng, names, alphabet):
    pool = sorted(names)
    def pick():
        choice = rng.random()
        if choice < 0.4:
            return ""
        if choice < 0.7:
            name = rng.choice(pool)
            return name[: rng.randint(1, len(name))]
        return random_name(rng, alphabet)
    return {
        "prefix": pick(),
        "delimiter": rng.choice(["", "", "/", "-", "\u00e9", "\U0001f600", "/-", "a"]),
        "marker": pick(),
        "end_marker": pick(),
        "limit": rng.choice([1, 2, 3, 7, 50, MAX_LIMIT]),
        "reverse": rng.random() < 0.4,
    }


def test_objects_match_the_model(broker):
    rng = random.Random(2024)
    live = set()
    for i in range(180):
        name = random_name(rng, ALPHABET)
        if any(seg in (".", "..") for seg in name.split("/")):
            continue  # refused by the naming rules
        broker.put_object(name, Timestamp(2000 + i), 1, "t", "e")
        live.add(name)
    # Tombstones must never show.
    for name in rng.sample(sorted(live), 40):
        broker.delete_object(name, Timestamp(3000))
        live.discard(name)
    for _ in range(400):
        params = random_params(rng, live, ALPHABET)
        got = flatten(broker.list_objects(**params))
        assert got == model(live, **params), params


def test_containers_match_the_model(catalog):
    rng = random.Random(99)
    alphabet = [c for c in ALPHABET if c != "/"]
    live = set()
    for _ in range(60):
        name = random_name(rng, alphabet)
        if name in (".", ".."):
            continue
        catalog.container("AUTH_x", name).create()
        live.add(name)
    catalog.container("AUTH_other", "zzz").create()
    for name in rng.sample(sorted(live), 10):
        catalog.container("AUTH_x", name).delete()
        live.discard(name)
    for _ in range(200):
        params = random_params(rng, live, alphabet)
        got = flatten(catalog.list_containers("AUTH_x", **params))
        assert got == model(live, **params), params


def test_swift_examples(broker):
    for i, name in enumerate(["a/1", "a/2", "b", "c/x/1", "c/y", "d-1", "d-2"]):
        broker.put_object(name, Timestamp(2000 + i), 1, "t", "e")
    names = lambda **kw: [e.name for e in broker.list_objects(**kw)]  # noqa: E731
    assert names() == ["a/1", "a/2", "b", "c/x/1", "c/y", "d-1", "d-2"]
    assert names(delimiter="/") == ["a/", "b", "c/", "d-1", "d-2"]
    assert names(delimiter="/", prefix="c/") == ["c/x/", "c/y"]
    assert names(delimiter="/", reverse=True) == ["d-2", "d-1", "c/", "b", "a/"]
    assert names(marker="b") == ["c/x/1", "c/y", "d-1", "d-2"]
    assert names(marker="b", end_marker="d-1") == ["c/x/1", "c/y"]
    assert names(marker="c/y", reverse=True) == ["c/x/1", "b", "a/2", "a/1"]
    assert names(limit=2) == ["a/1", "a/2"]
    assert names(limit=0) == []
    assert names(prefix="d") == ["d-1", "d-2"]
    assert names(prefix="zz") == []
    # Paging by the last entry, subdirs included, gives every entry once.
    pages, marker = [], ""
    for _ in range(10):
        page = names(delimiter="/", limit=1, marker=marker)
        if not page:
            break
        pages.extend(page)
        marker = page[-1]
    assert pages == ["a/", "b", "c/", "d-1", "d-2"]
    rows = [e for e in broker.list_objects(delimiter="/") if not isinstance(e, Subdir)]
    assert rows[0].name == "b" and rows[0].etag == "e"


def test_listing_limits(broker, catalog):
    for bad in (-1, MAX_LIMIT + 1, "10", 1.5, True):
        with pytest.raises(ValueError):
            broker.list_objects(limit=bad)
        with pytest.raises(ValueError):
            catalog.list_containers("AUTH_test", limit=bad)
    with pytest.raises(exception.InvalidName):
        broker.list_objects(prefix="\ud800")
    with pytest.raises(exception.InvalidName):
        broker.list_objects(marker=b"\xff")


@pytest.mark.sqlite_only  # test_postgresql.py has its own
def test_default_limit_is_ten_thousand(broker):
    total = MAX_LIMIT + 5
    with broker.db.write() as conn:  # fast: rows straight into the table
        conn.executemany(
            "INSERT INTO objects (name, created_at, size, deleted) "
            "VALUES (?, '2000', 1, ?)",
            [(f"o{i:05d}", 0) for i in range(total)]
            + [(f"t{i:05d}", 1) for i in range(total)],
        )
    assert broker.info().object_count == total  # the triggers counted them
    listed = broker.list_objects()
    assert len(listed) == MAX_LIMIT
    assert all(e.name.startswith("o") for e in listed)  # tombstones never show
    assert [e.name for e in broker.list_objects(marker=f"o{MAX_LIMIT - 1:05d}")] == [
        f"o{i:05d}" for i in range(MAX_LIMIT, total)
    ]


@pytest.mark.parametrize(
    ("prefix", "after"),
    [("a", "b"), ("a/", "a0"), ("\ud7ff", "\ue000"), ("a\U0010ffff", "b"),
     ("\U0010ffff", None), ("", None)],
)
def test_after_prefix(prefix, after):
    assert after_prefix(prefix) == after


PATH_NAMES = ["/a", "/d/", "/d/x", "a", "b/", "b/c", "b/d/", "b/d/e", "b/f/g/h", "c"]


@pytest.mark.parametrize("params, expected", [
    ({"path": ""}, ["a", "b/", "c"]),
    ({"path": "/"}, ["/a", "/d/"]),
    ({"path": "b"}, ["b/c", "b/d/"]),
    ({"path": "b///"}, ["b/c", "b/d/"]),
    ({"path": "b/d"}, ["b/d/e"]),
    ({"path": "b", "limit": 1}, ["b/c"]),
    ({"path": "b", "marker": "b/c"}, ["b/d/"]),
    ({"path": "b", "end_marker": "b/d/"}, ["b/c"]),
    # Reversed, Swift jumps below "b/d/" when it meets "b/d/e": so does this.
    ({"path": "b", "reverse": True}, ["b/c"]),
    ({"path": "b", "prefix": "zz", "delimiter": "-"}, ["b/c", "b/d/"]),
    ({"path": "nothing"}, []),
])
def test_path(broker, params, expected):
    for i, name in enumerate(PATH_NAMES):
        broker.put_object(name, Timestamp(2000 + i), 1, "t", "e")
    assert [e.name for e in broker.list_objects(**params)] == expected


def test_markers_may_hold_nul(broker, catalog):
    for i, name in enumerate(["b1", "b2", "b3"]):
        broker.put_object(name, Timestamp(2000 + i), 1, "t", "e")
        catalog.container("AUTH_x", name).create()
    for listing in (broker.list_objects, lambda **kw: catalog.list_containers(
            "AUTH_x", **kw)):
        assert [e.name for e in listing(marker="b1\x00")] == ["b2", "b3"]
        assert [e.name for e in listing(end_marker="b2\x00")] == ["b1", "b2"]
        assert [e.name for e in listing(prefix="b\x00")] == []
    with pytest.raises(exception.InvalidName):
        broker.list_objects(marker="\ud800")
