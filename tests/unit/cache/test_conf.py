"""The [cache] options, the per-back-end ``cache`` option, and the object service."""

from __future__ import annotations

import io
import os

from oslo_config import cfg
import pytest

from storaged import exception
from storaged.common import config
from storaged.conf import cache as cache_conf
from storaged.conf import store as store_conf
from storaged.objects import ObjectRepository

CACHE_OPTIONS = [
    "cache_dir", "clean_interval", "fill_wait_timeout", "invalid_grace",
    "low_watermark", "max_size", "metadata_store", "metrics_port", "min_free_space",
    "prefetch_interval", "prune_interval", "shared_dir", "stall_time",
]


def test_option_list():
    [(group, opts)] = cache_conf.list_opts()
    assert group.name == "cache"
    assert sorted(o.name for o in opts) == CACHE_OPTIONS
    for opt in opts:
        assert opt.help and len(opt.help.strip()) > 20, opt.name
    assert "cache" in [o.name for o in store_conf.BACKEND_OPTS]


def prepare(tmp_path, text=""):
    path = tmp_path / "storaged.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\n%s" % (tmp_path / "state", text))
    return config.prepare_service(
        ["--config-file", str(path)], prog="t", setup_logging=False,
        register=cache_conf.register_opts, conf=cfg.ConfigOpts(),
    )


def test_defaults(tmp_path):
    conf = prepare(tmp_path)
    assert conf.cache.cache_dir == str(tmp_path / "state" / "cache")
    assert conf.cache.max_size == 10 * 1024 ** 3
    assert conf.cache.low_watermark == 0.8
    assert conf.local.cache is False


@pytest.mark.parametrize("text, option", [
    ("[cache]\nlow_watermark = 1.5\n", "low_watermark"),
    ("[cache]\nmax_size = -1\n", "max_size"),
    ("[cache]\nmetadata_store = nfs\n", "metadata_store"),
    ("[local]\ncache = maybe\n", "cache"),
])
def test_bad_values_are_config_errors(tmp_path, text, option):
    with pytest.raises(exception.ConfigError) as err:
        prepare(tmp_path, text)
    assert option in str(err.value)


def test_reads_of_a_cached_back_end_go_through_the_cache(tmp_path):
    conf = prepare(tmp_path, "[local]\ncache = true\n[cache]\nmax_size = 0\n")
    svc = ObjectRepository.from_conf(conf)
    try:
        assert svc.cache is not None and svc.cache.serves("local")
        svc.create_container("AUTH_t", "c")
        body = os.urandom(300_000)
        svc.put_object("AUTH_t", "c", "o", io.BytesIO(body), len(body))
        for _ in range(3):
            _info, chunks, n = svc.get_object("AUTH_t", "c", "o", verify=True)
            assert b"".join(chunks) == body and n == len(body)
        _info, chunks, _n = svc.get_object("AUTH_t", "c", "o", offset=5, length=5)
        assert b"".join(chunks) == body[5:10]
        [entry] = svc.cache.entries()
        assert entry.hits == 3  # one fill, then three hits (the range too)
        assert entry.source == "local:AUTH_t/c/o"
        assert svc.cache.counters["fills"] == 1
    finally:
        svc.close()


def test_without_cache_true_there_is_no_cache(tmp_path):
    conf = prepare(tmp_path)
    svc = ObjectRepository.from_conf(conf)
    try:
        assert svc.cache is None
    finally:
        svc.close()
    assert not os.path.exists(tmp_path / "state" / "cache")
