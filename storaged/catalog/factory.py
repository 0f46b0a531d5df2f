"""Open the catalog that ``[catalog] backend_url`` names.

::

    catalog = open_catalog(conf)                    # the objects' catalog
    queue = open_catalog(conf, name="expirer",      # a catalog of its own
                         limits=queue_limits)       # beside it

``backend_url`` unset: sqlite under ``[catalog] path``, as before the option
existed.  ``sqlite:///ABSOLUTE/PATH``: sqlite under that directory.
``postgresql://`` or ``postgres://``: the shared PostgreSQL catalog
(:mod:`storaged.catalog.postgresql`, imported only then, so a node on
sqlite never loads psycopg).  ``name`` opens a second catalog beside the
first: sqlite in the directory ``name`` inside the first one's, PostgreSQL
in the schema ``<schema>_<name>``.
"""

from __future__ import annotations

from typing import Any
import urllib.parse

from oslo_config import cfg

from storaged import exception
from storaged.catalog import names
from storaged.catalog.interface import CatalogAPI
from storaged.catalog.store import Catalog
from storaged.common.freespace import Reserve

__all__ = ["limits_from_conf", "open_catalog", "parse_backend_url"]

SQLITE_SCHEME = "sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres")


def limits_from_conf(conf: cfg.ConfigOpts) -> names.Limits:
    """The naming and metadata limits of the ``[catalog]`` options."""
    group = conf.catalog
    return names.Limits(
        max_account_name_length=group.max_account_name_length,
        max_container_name_length=group.max_container_name_length,
        max_object_name_length=group.max_object_name_length,
        max_meta_name_length=group.max_meta_name_length,
        max_meta_value_length=group.max_meta_value_length,
        max_meta_count=group.max_meta_count,
        max_meta_overall_size=group.max_meta_overall_size,
    )


def parse_backend_url(url: str) -> tuple[str, str]:
    """Return ``(driver, where)`` of a catalog URL.

    ``where`` is the directory for ``sqlite`` (``""``: ``[catalog] path``)
    and the URL itself for ``postgresql``.  Messages never quote the URL (it
    may hold a password).

    :raises ValueError: not a catalog URL.
    """
    if not url:
        return SQLITE_SCHEME, ""
    scheme = url.partition(":")[0].lower()
    if scheme == SQLITE_SCHEME:
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc or parts.query or parts.fragment or not path.startswith("/"):
            raise ValueError(
                "a sqlite catalog URL has the form sqlite:///ABSOLUTE/PATH "
                "(three slashes, then the directory)"
            )
        return SQLITE_SCHEME, path
    if scheme in POSTGRES_SCHEMES:
        from storaged.catalog.postgresql import url as pg_url

        pg_url.parse_url(url)
        return "postgresql", url
    raise ValueError(
        "must be empty, sqlite:///ABSOLUTE/PATH or postgresql://...; "
        "the scheme is not one of these"
    )


def open_catalog(
    conf: cfg.ConfigOpts,
    *,
    name: str | None = None,
    limits: names.Limits | None = None,
) -> CatalogAPI:
    """Open the catalog the ``[catalog]`` options of ``conf`` describe.

    :param name: open the catalog of that name beside the main one (the
        expiry queue's) instead of the main one.
    :param limits: naming limits instead of the configured ones.
    :raises storaged.exception.ConfigError: ``[catalog] backend_url`` is
        not a catalog URL.
    """
    group = conf.catalog
    try:
        driver, where = parse_backend_url(group.backend_url)
    except ValueError as err:
        raise exception.ConfigError(
            str(err), group="catalog", option="backend_url"
        ) from None
    limits = limits_from_conf(conf) if limits is None else limits
    common: dict[str, Any] = {
        "reclaim_age": group.reclaim_age,
        "timeout": group.timeout,
        "synchronous": group.synchronous,
        "limits": limits,
    }
    catalog: CatalogAPI
    if driver == SQLITE_SCHEME:
        catalog = Catalog(
            where or group.path,
            reserve=Reserve.parse(group.fallocate_reserve),
            **common,
        )
    else:
        from storaged.catalog.postgresql import PostgresCatalog

        catalog = PostgresCatalog(where, path=group.path, **common)
    if name is not None:
        main = catalog
        try:
            catalog = main.sibling(name, limits=limits)
        except ValueError as err:
            raise exception.ConfigError(
                f"no room for the catalog {name!r} beside it: {err}",
                group="catalog", option="backend_url",
            ) from None
        finally:
            main.close()
    return catalog
