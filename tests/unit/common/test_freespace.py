"""The free-space reserve: Swift's ``fallocate_reserve`` values and arithmetic."""

from __future__ import annotations

import os

import pytest

from storaged.common import freespace
from storaged.common.freespace import Reserve


def statvfs(free_blocks, blocks=1000, frsize=4096):
    return os.statvfs_result((frsize, frsize, blocks, free_blocks, free_blocks,
                              100, 100, 100, 0, 255))


@pytest.mark.parametrize("text, value, percent", [
    ("1%", 1.0, True), ("0.5%", 0.5, True), (" 2 %", 2.0, True), (".5%", 0.5, True),
    ("10485760", 10485760, False), ("0", 0, False), ("100%", 100.0, True),
])
def test_parse_as_swift(text, value, percent):
    reserve = Reserve.parse(text)
    assert (reserve.value, reserve.percent) == (value, percent)


@pytest.mark.parametrize("text", ["", "1.5", "-1", "1%%", "ten", "1 MiB", "101%"])
def test_parse_refuses(text):
    with pytest.raises(ValueError):
        Reserve.parse(text)


def test_bytes_and_percent():
    st = statvfs(free_blocks=20)  # 81920 of 4096000 bytes free (2%)
    assert Reserve.parse("1%").allows(st)
    assert not Reserve.parse("1%").allows(st, 81920 - 40960)  # exactly at 1%
    assert Reserve.parse("1%").allows(st, 81920 - 40960 - 1)
    assert not Reserve.parse("2%").allows(st)
    assert Reserve.parse("81919").allows(st)
    assert not Reserve.parse("81920").allows(st)
    assert Reserve.parse("1%").bytes_of(4096000) == 40960


def test_zero_is_off_and_unknown_size_is_not_refused():
    assert Reserve.parse("0").allows(statvfs(free_blocks=0), 10**9)
    assert Reserve.parse("5%").allows(statvfs(free_blocks=0, blocks=0), 10**9)


def test_check_says_why(tmp_path):
    assert Reserve.parse("0").check(str(tmp_path)) is None
    why = Reserve.parse("100%").check(str(tmp_path), 1)
    assert why is not None and "reserve 100%" in why


@pytest.mark.parametrize("text", ["150%", "101%", "100.5%", "-1", "1e3", "%"])
def test_option_pattern_refuses_what_parse_refuses(text):
    import re

    assert not re.match(freespace.PATTERN, text)
    with pytest.raises(ValueError):
        freespace.Reserve.parse(text)


def test_config_check_refuses_a_reserve_over_100_percent(tmp_path):
    import subprocess
    import sys

    conf = tmp_path / "storaged.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\n[catalog]\nfallocate_reserve = 150%%\n"
                    % tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "storaged.manage.cli", "--config-file", str(conf),
         "config", "check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "fallocate_reserve" in proc.stderr
