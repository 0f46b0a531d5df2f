"""The state store: a small key-value store with fenced leases.

The daemons keep what they share here: each daemon's last status (under
``status/<node>/<daemon>``), sync progress, claims.  The URL's scheme picks
the driver, loaded through the ``storaged.kvs.drivers`` entry points:

* ``sqlite:////ABSOLUTE/PATH``: the embedded default, one file on this host;
* ``redis://[:PASSWORD@]HOST[:PORT][/DB]`` and ``rediss://`` (TLS): shared
  by every node;
* ``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=NAME]``
  (or ``postgres://``): shared by every node, in a schema of the database;
* ``memory://[NAME]``: in this process only, nothing durable, for tests; it
  is a special case here rather than an entry point.

Example::

    from storaged import kvs

    with kvs.open_store("sqlite:////var/lib/storaged/state.sqlite") as store:
        with store.lock("sync/c1", ttl=30) as lease:
            store.set("sync/c1/point", 900, lease=lease)

See :mod:`storaged.kvs.base` for the semantics every driver shares.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from typing import Any
from typing import Final

from oslo_config import cfg

from storaged import exception
from storaged.kvs.base import KeyValueStore
from storaged.kvs.base import Lease
from storaged.kvs.keys import MAX_KEY_LENGTH
from storaged.kvs.keys import mangle_key

__all__ = [
    "MAX_KEY_LENGTH",
    "KeyValueStore",
    "Lease",
    "get_store",
    "known_schemes",
    "mangle_key",
    "mask_url",
    "open_store",
    "validate_url",
]

LOG = logging.getLogger(__name__)

DRIVER_NAMESPACE: Final = "storaged.kvs.drivers"
MEMORY_SCHEME: Final = "memory"

_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_NO_CREDENTIALS: Final = frozenset({"sqlite", MEMORY_SCHEME})
_SECRET_PARAM_RE: Final = re.compile(
    r"([?&][^=&#]*(?:pass|secret|token)[^=&#]*=)[^&#]*", re.IGNORECASE
)


def known_schemes() -> list[str]:
    """Return the URL schemes a state store can be opened with, sorted."""
    names = {ep.name for ep in importlib.metadata.entry_points(group=DRIVER_NAMESPACE)}
    names.add(MEMORY_SCHEME)
    return sorted(names)


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and secret-looking parameters) masked.

    ``redis://:s3cret@host`` becomes ``redis://:***@host``,
    ``redis://user:s3cret@host`` becomes ``redis://user:***@host``; a
    user-info part without a colon is masked whole, as it may well be a
    password.  Safe for logs and ``storaged-manage config check``.
    """
    match = _SCHEME_RE.match(url)
    if match is None:
        # Not a URL: it may still hold a secret, so show nothing of it but
        # a hint of its shape.
        return "***" if "@" in url else url
    scheme, rest = match.group(1), url[match.end() :]
    if scheme.lower() in _NO_CREDENTIALS:
        return url
    # The user-info part ends at the last "@" before the path, and a
    # password may itself (wrongly, unencoded) contain "@" or "/": take the
    # last "@" of the whole remainder, as the path and query have none.
    if "@" in rest:
        userinfo, _, hostpart = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        userinfo = user + ":***" if colon else "***"
        rest = userinfo + "@" + hostpart
    return "{}://{}".format(scheme, _SECRET_PARAM_RE.sub(r"\1***", rest))


def _shown_url(url: str) -> str:
    text = mask_url(url)
    return text if text.isprintable() else repr(text)


def _driver_class(url: object) -> type[KeyValueStore]:
    """Check a URL's form and return its driver class (without opening it)."""
    if not isinstance(url, str) or not url:
        known = ", ".join(known_schemes())
        raise ValueError(f"the state store URL is empty (known: {known})")
    match = _SCHEME_RE.match(url)
    if match is None:
        known = ", ".join(known_schemes())
        raise ValueError(
            f"not a state store URL: {_shown_url(url)} "
            f"(expected DRIVER://...; known: {known})"
        )
    scheme = match.group(1)
    if scheme == MEMORY_SCHEME:
        from storaged.kvs.drivers.memory import MemoryKVS

        return MemoryKVS
    if scheme not in known_schemes():
        known = ", ".join(known_schemes())
        raise ValueError(f"unknown state store driver {scheme!r} (known: {known})")

    def _reraise(manager: Any, entrypoint: Any, err: BaseException) -> None:
        raise err

    from stevedore import driver

    try:
        manager = driver.DriverManager(
            DRIVER_NAMESPACE,
            scheme,
            invoke_on_load=False,
            on_load_failure_callback=_reraise,
        )
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"the state store driver for {scheme}:// cannot be loaded: {reason}"
        ) from err
    cls = manager.driver
    if not (isinstance(cls, type) and issubclass(cls, KeyValueStore)):
        raise ValueError(
            f"the {scheme!r} entry point of {DRIVER_NAMESPACE} is not "
            "a state store driver"
        )
    return cls


def _checked_driver(url: str) -> type[KeyValueStore]:
    cls = _driver_class(url)
    # The drivers' messages are complete lines that never echo the URL, so
    # they can hold no password.
    cls.parse_url(url)
    return cls


def validate_url(url: str) -> None:
    """Check a state store URL without opening anything.

    :raises ValueError: with one line naming the problem and, for an
        unknown scheme, the known ones; the URL in it is masked.
    """
    _checked_driver(url)


def open_store(
    url: str,
    *,
    timeout: float = 10.0,
    sqlite_synchronous: str = "normal",
    default_lock_ttl: float = 30.0,
) -> KeyValueStore:
    """Open the state store at ``url``.

    :param timeout: seconds to wait for the back end (sqlite's busy
        timeout, Redis' connect and read timeouts, PostgreSQL's connect,
        statement and idle-in-transaction timeouts).
    :param sqlite_synchronous: ``normal`` or ``full`` (sqlite only).
    :param default_lock_ttl: lease length of ``lock()`` without a ttl.
    :raises ValueError: malformed URL, unknown scheme, bad argument.
    :raises storaged.exception.KVSBackendError: the back end cannot be
        opened (sqlite only: Redis and PostgreSQL connect on first use).
    """
    cls = _checked_driver(url)
    return cls(
        url,
        timeout=timeout,
        sqlite_synchronous=sqlite_synchronous,
        default_lock_ttl=default_lock_ttl,
    )


def get_store(conf: cfg.ConfigOpts) -> KeyValueStore:
    """Open the state store the ``[kvs]`` options of ``conf`` describe.

    For sqlite, the file's directory is created (mode 0750) if missing.

    :raises storaged.exception.ConfigError: ``[kvs] backend_url`` is
        invalid or its directory cannot be created.
    :raises storaged.exception.KVSBackendError: the back end cannot be opened.
    """
    url = conf.kvs.backend_url

    def config_error(problem: str) -> exception.ConfigError:
        location = ""
        try:
            info = conf.get_location("backend_url", "kvs")
            location = getattr(info, "detail", "") or ""
        except Exception:  # noqa: S110 - where it was set is only a nicety
            pass
        return exception.ConfigError(
            problem, location=location, group="kvs", option="backend_url"
        )

    try:
        validate_url(url)
    except ValueError as err:
        raise config_error(str(err)) from None
    if url.startswith(MEMORY_SCHEME + ":"):
        LOG.warning(
            "[kvs] backend_url is %s: the state lives in this process only "
            "and is lost when it exits (meant for tests)",
            mask_url(url),
        )
    elif url.startswith("sqlite:"):
        from storaged.kvs.drivers.sqlite import SqliteKVS

        directory = os.path.dirname(SqliteKVS.parse_url(url))
        try:
            os.makedirs(directory, mode=0o750, exist_ok=True)
        except OSError as err:
            raise config_error(
                f"cannot create the directory {directory}: {err.strerror}"
            ) from None
    try:
        return open_store(
            url,
            timeout=conf.kvs.timeout,
            sqlite_synchronous=conf.kvs.sqlite_synchronous,
            default_lock_ttl=conf.kvs.default_lock_ttl,
        )
    except ValueError as err:
        raise config_error(str(err)) from None
