"""The shipped systemd units raise the open-files limit above systemd's 1,024."""

from __future__ import annotations

import configparser
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("unit", ["storaged@.service", "storaged-once@.service"])
def test_limit_nofile(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(os.path.join(ROOT, "etc", "systemd", unit))
    assert int(parser["Service"]["LimitNOFILE"]) >= 65536
