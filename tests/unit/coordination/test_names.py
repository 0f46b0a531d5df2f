"""Lock names as stored on the back ends."""

from __future__ import annotations

import pytest

from storaged.coordination import lock as lock_mod
from storaged.coordination import stored_name


def test_plain_names_are_kept():
    assert stored_name("sync-AUTH_test-c1") == "sync-AUTH_test-c1"
    assert stored_name("a:b@c+d=e,f~g.h") == "a:b@c+d=e,f~g.h"


def test_unsafe_characters_are_escaped_and_shown_back():
    for name in ("sync/acct/cont", "with space", "ünïcödé", "nul\0byte", "%41"):
        stored = stored_name(name)
        assert "/" not in stored and " " not in stored and "\0" not in stored
        assert lock_mod.shown_name(stored) == name


def test_leading_dot_is_escaped():
    assert not stored_name(".").startswith(".")
    assert not stored_name("..").startswith(".")
    assert lock_mod.shown_name(stored_name("..")) == ".."


def test_long_names_are_hashed_to_a_bounded_length():
    long_a = "container-" + "a" * 200
    long_b = "container-" + "a" * 199 + "b"
    assert len(stored_name("x" * 64)) == 64
    assert stored_name("x" * 64) == "x" * 64
    hashed = stored_name("x" * 65)
    assert "#" in hashed and len(hashed) <= lock_mod.MAX_STORED_NAME
    assert stored_name(long_a) != stored_name(long_b)
    assert stored_name(long_a).startswith("container-")
    # Stable across calls and processes (no salted hash()).
    assert stored_name(long_a) == stored_name(long_a)
    assert lock_mod.shown_name(stored_name(long_a)) == stored_name(long_a)


def test_hash_prefix_never_splits_an_escape():
    name = "/" * 100
    stored = stored_name(name)
    prefix = stored.split("#")[0]
    assert len(prefix) % 3 == 0 and set(prefix) <= set("%2F")


def test_a_plain_name_never_collides_with_a_hashed_one():
    # Names stored as they are never contain '#': it is always escaped.
    assert "#" not in stored_name("a#b")


@pytest.mark.parametrize("bad", ["", None, 3, b"bytes"])
def test_bad_names_are_refused(bad):
    with pytest.raises(ValueError):
        stored_name(bad)
