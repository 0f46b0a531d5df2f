"""``[api] workers``: a number or ``auto``, checked like every option."""

from __future__ import annotations

import os

import pytest

from storaged import exception
from storaged.common import config
from storaged.conf import api as api_conf


def _conf(tmp_path, value=None):
    path = tmp_path / "storaged.conf"
    api = "" if value is None else f"[api]\nworkers = {value}\n"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n{api}")
    return config.prepare_service(["--config-file", str(path)], prog="t",
                                  setup_logging=False, daemon=False), str(path)


def test_auto_is_the_default_and_means_the_usable_cpus(tmp_path):
    conf, _ = _conf(tmp_path)
    assert conf.api.workers == "auto"
    assert api_conf.worker_count(conf.api.workers) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("AUTO", "auto"),
                                                 ("1", 1), ("12", 12), ("256", 256)])
def test_numbers_and_auto_are_taken(tmp_path, value, expected):
    conf, _ = _conf(tmp_path, value)
    assert conf.api.workers == expected
    if expected != "auto":
        assert api_conf.worker_count(conf.api.workers) == expected


@pytest.mark.parametrize("value", ["0", "257", "-1", "many", "2.5"])
def test_anything_else_is_one_line_naming_the_option(tmp_path, value):
    with pytest.raises(exception.ConfigError) as caught:
        _conf(tmp_path, value)
    text = str(caught.value)
    assert "[api] workers" in text and "storaged.conf" in text, text
