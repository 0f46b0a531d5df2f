"""open_catalog: the driver ``[catalog] backend_url`` names, a bad URL refused."""

from __future__ import annotations

from oslo_config import cfg
import pytest

from storaged import exception
from storaged.catalog import Catalog
from storaged.catalog.factory import open_catalog
from storaged.catalog.factory import parse_backend_url
from storaged.conf import catalog as catalog_conf


def make_conf(tmp_path, **overrides):
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("state_path"))
    catalog_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override("state_path", str(tmp_path))
    for name, value in overrides.items():
        conf.set_override(name, value, group="catalog")
    return conf


def test_unset_is_sqlite_under_path(tmp_path):
    cat = open_catalog(make_conf(tmp_path, reclaim_age=60, max_container_name_length=5))
    try:
        assert isinstance(cat, Catalog)
        assert cat.path == str(tmp_path / "catalog")
        assert cat.reclaim_age == 60
        assert cat.limits.max_container_name_length == 5
        assert (cat.reserve.value, cat.reserve.percent) == (1.0, True)
    finally:
        cat.close()


def test_sqlite_url(tmp_path):
    where = tmp_path / "elsewhere"
    cat = open_catalog(make_conf(tmp_path, backend_url=f"sqlite://{where}"))
    try:
        assert isinstance(cat, Catalog)
        assert cat.path == str(where)
        b = cat.container("AUTH_a", "c")
        assert b.create("1000") is True
        b.close()
        assert (where / "containers").is_dir()
    finally:
        cat.close()


def test_named_catalog_lives_beside_the_main_one(tmp_path):
    cat = open_catalog(make_conf(tmp_path), name="expirer")
    try:
        assert cat.path == str(tmp_path / "catalog" / "expirer")
    finally:
        cat.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://relative/path",
        "sqlite:relative",
        "sqlite:///abs?x=1",
        "mysql://db/catalog",
        "file:///var/lib/storaged",
    ],
)
def test_bad_url_is_a_config_error_naming_the_option(tmp_path, url):
    with pytest.raises(exception.ConfigError) as info:
        open_catalog(make_conf(tmp_path, backend_url=url))
    message = str(info.value)
    assert "[catalog] backend_url" in message
    assert "\n" not in message


def test_parse_backend_url():
    assert parse_backend_url("") == ("sqlite", "")
    assert parse_backend_url("sqlite:///var/lib/x") == ("sqlite", "/var/lib/x")
