"""Timestamps in Swift's format."""

from __future__ import annotations

import time

import pytest

from storaged.catalog.timestamp import Timestamp
from storaged.catalog.timestamp import parse_timestamp


@pytest.mark.parametrize(
    ("value", "normal", "internal"),
    [
        ("1700000000.12345", "1700000000.12345", "1700000000.12345"),
        ("1700000000.1", "1700000000.10000", "1700000000.10000"),
        ("1700000000", "1700000000.00000", "1700000000.00000"),
        ("1700000000.", "1700000000.00000", "1700000000.00000"),
        (".5", "0000000000.50000", "0000000000.50000"),
        ("0000000001.50000", "0000000001.50000", "0000000001.50000"),
        (1.5, "0000000001.50000", "0000000001.50000"),
        (1700000000, "1700000000.00000", "1700000000.00000"),
        ("1700000000.123456", "1700000000.12346", "1700000000.12346"),
        ("1700000000.123455", "1700000000.12346", "1700000000.12346"),  # half even
        ("1700000000.123445", "1700000000.12344", "1700000000.12344"),
        ("1700000000.12345_2", "1700000000.12345",
         "1700000000.12345_0000000000000002"),
        ("1700000000.12345_000000000000000a", "1700000000.12345",
         "1700000000.12345_000000000000000a"),
        ("1700000000.12345_FF", "1700000000.12345",
         "1700000000.12345_00000000000000ff"),
        ("9999999999.99999", "9999999999.99999", "9999999999.99999"),
    ],
)
def test_forms(value, normal, internal):
    ts = Timestamp(value)
    assert ts.normal == normal
    assert ts.internal == internal
    assert str(ts) == internal
    assert Timestamp(ts.internal) == ts
    assert len(ts.normal) == 16


@pytest.mark.parametrize(
    "value",
    ["", "abc", "-1", "-0.5", "1e9", "1700000000.1_", "1700000000.1_xyz",
     "1700000000.1_12345678901234567", " 1700000000", "1700000000 ",
     "10000000000", "9999999999.999996", "1" * 100, "nan", "inf",
     float("nan"), float("inf"), -1.0, -1, 10**10, True, None, b"1700000000",
     [1]],
)
def test_rejects(value):
    with pytest.raises(ValueError):
        Timestamp(value)


def test_offset_rules():
    assert Timestamp("1.0", offset=3).internal == "0000000001.00000_0000000000000003"
    assert Timestamp("1.0_2", offset=3).offset == 5
    assert Timestamp("1.0_2").short == "0000000001.00000_2"
    assert Timestamp("1.0").short == "0000000001.00000"
    with pytest.raises(ValueError):
        Timestamp(1, offset=-1)
    with pytest.raises(ValueError):
        Timestamp(1, offset=16**16 - 1)
    with pytest.raises(ValueError):
        Timestamp(1, offset=1.5)  # type: ignore[arg-type]


def test_order_time_then_offset():
    values = [
        Timestamp("2.0"),
        Timestamp("1.0", offset=1),
        Timestamp("1.00001"),
        Timestamp("1.0"),
        Timestamp("0.5", offset=99),
    ]
    ordered = sorted(values)
    assert [t.internal for t in ordered] == [
        "0000000000.50000_0000000000000063",
        "0000000001.00000",
        "0000000001.00000_0000000000000001",
        "0000000001.00001",
        "0000000002.00000",
    ]
    # The text of the internal form sorts the same way: what SQL compares.
    assert sorted(t.internal for t in values) == [t.internal for t in ordered]
    assert Timestamp("1.0") == Timestamp(1)
    assert Timestamp("1.0") != Timestamp("1.0", offset=1)
    assert len({Timestamp("1.0"), Timestamp(1.0), Timestamp("1")}) == 1
    assert Timestamp("1.0") != "0000000001.00000"  # no silent text equality


def test_float_and_iso():
    ts = Timestamp("1700000000.12345")
    assert float(ts) == pytest.approx(1700000000.12345)
    assert ts.raw == 170000000012345
    assert ts.isoformat == "2023-11-14T22:13:20.123450"
    assert Timestamp(0).isoformat == "1970-01-01T00:00:00.000000"
    assert Timestamp.zero().internal == "0000000000.00000"


def test_now_and_parse():
    before = time.time()
    now = Timestamp.now()
    after = time.time()
    assert before - 0.00001 <= float(now) <= after + 0.00001
    assert parse_timestamp(None) >= now
    assert parse_timestamp("5") == Timestamp(5)
    assert repr(Timestamp(5)) == "Timestamp('0000000005.00000')"
