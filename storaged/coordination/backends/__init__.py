"""What storaged knows about each coordination back end.

tooz gives group membership on every back end; its locks are left aside
because each of them falls short somewhere (no fencing token, lock files
and znodes never removed, one etcd lease per attempt, a lock expiring
silently under its holder).  This package holds, per back end:

* how the ``[coordination]`` TTLs become tooz driver options, and which
  URLs are refused (:func:`check_url`, :func:`settings_from_conf`, in
  :mod:`.settings`; :func:`validate_conf` checks them and loads the lock
  back end);
* the lock primitives storaged uses instead of tooz's
  (:class:`LockBackend` in :mod:`.base`, and one subclass per back end
  family in :mod:`.file`, :mod:`.redis`, :mod:`.etcd` and
  :mod:`.zookeeper`, each with its lock layout and fencing token), all
  *try-lock* operations: the caller polls, so that no back end call ever
  waits for a lock;
* listing what exists on the back end (:meth:`LockBackend.list_locks`);
* adjusting a tooz driver before it starts
  (:meth:`LockBackend.prepare_driver`; only the Redis one needs it).

The lock back ends are drivers, as tooz's are: ``setup.cfg`` names one
entry point per back end kind (``file``, ``redis``, ``etcd``,
``zookeeper``: the values of :data:`SCHEMES`) in the
``storaged.coordination.locks`` group, and :func:`lock_backend_class` loads
the one a URL needs through stevedore.  Only that back end's module is
imported; the names a test needs from one (its lock prefix or path) are
imported from that module.

Tokens are integers that grow for every new holder of a name on one back
end, like the state store's lease tokens; compare them only with tokens of
the same name from the same back end.

Every name the rest of the coordination layer uses is importable from
this package.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any
from typing import Final

from oslo_config import cfg
import stevedore
from stevedore import exception as stevedore_exception

from storaged import exception
from storaged.coordination.backends.base import Held
from storaged.coordination.backends.base import LockBackend
from storaged.coordination.backends.base import errno_text
from storaged.coordination.backends.base import unavailable_types
from storaged.coordination.backends.settings import ETCD
from storaged.coordination.backends.settings import FILE
from storaged.coordination.backends.settings import REDIS
from storaged.coordination.backends.settings import REFUSED
from storaged.coordination.backends.settings import RESERVED_PARAMS
from storaged.coordination.backends.settings import SCHEMES
from storaged.coordination.backends.settings import ZOOKEEPER
from storaged.coordination.backends.settings import Settings
from storaged.coordination.backends.settings import check_url
from storaged.coordination.backends.settings import kind_of
from storaged.coordination.backends.settings import mask_url
from storaged.coordination.backends.settings import settings_from_conf

__all__ = [
    "ETCD",
    "FILE",
    "NAMESPACE",
    "REDIS",
    "REFUSED",
    "RESERVED_PARAMS",
    "SCHEMES",
    "ZOOKEEPER",
    "Held",
    "LockBackend",
    "Settings",
    "check_url",
    "errno_text",
    "kind_of",
    "known_kinds",
    "lock_backend_class",
    "make_lock_backend",
    "mask_url",
    "prepare_driver",
    "settings_from_conf",
    "unavailable_types",
    "validate_conf",
]

#: entry point namespace of the lock back ends (``setup.cfg``).
NAMESPACE: Final = "storaged.coordination.locks"

_WHERE: Final = {"group": "coordination", "option": "backend_url"}

# kind -> class, filled by lock_backend_class: a reconnection does not
# search the entry points again.
_loaded: dict[str, type[LockBackend]] = {}


def known_kinds() -> list[str]:
    """Return the back end kinds that have a lock back end installed, sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=NAMESPACE)})


def lock_backend_class(kind: str) -> type[LockBackend]:
    """Load the lock back end of a kind through its entry point.

    :param kind: a back end kind (a value of :data:`SCHEMES`).
    :raises storaged.exception.ConfigError: no entry point for ``kind``,
        one that cannot be imported, or one that is not a
        :class:`LockBackend` of that kind.
    """
    cls = _loaded.get(kind)
    if cls is not None:
        return cls
    failure: list[BaseException] = []

    def on_failure(_manager: Any, _entrypoint: Any, err: BaseException) -> None:
        failure.append(err)

    try:
        manager: stevedore.DriverManager[Any] = stevedore.DriverManager(
            NAMESPACE,
            kind,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda names: None,
        )
    except stevedore_exception.NoMatches as err:
        if failure:
            raise exception.ConfigError(
                "cannot load the lock back end of %s back ends: %s"
                % (kind, errno_text(failure[0])),
                **_WHERE,
            ) from failure[0]
        raise exception.ConfigError(
            "no lock back end for %s back ends is installed (entry points "
            "%s: %s)" % (kind, NAMESPACE, ", ".join(known_kinds()) or "none"),
            **_WHERE,
        ) from err
    found = manager.driver
    if not (
        isinstance(found, type)
        and issubclass(found, LockBackend)
        and found.kind == kind
    ):
        raise exception.ConfigError(
            "the %r entry point of %s is not a lock back end of %s back ends"
            % (kind, NAMESPACE, kind),
            **_WHERE,
        )
    _loaded[kind] = found
    return found


def validate_conf(conf: cfg.ConfigOpts, sources: Any = None) -> None:
    """Check the ``[coordination]`` options, for ``prepare_service``.

    Refuses an unknown or unfit back end, TTL options in the URL, a
    heartbeat longer than a third of a TTL, ZooKeeper under eventlet, and
    a back end whose lock back end cannot be loaded.

    :param sources: where options were set (unused: the caller adds the file).
    :raises storaged.exception.ConfigError: with group and option set.
    """
    lock_backend_class(settings_from_conf(conf).kind)


def prepare_driver(driver: Any, settings: Settings) -> None:
    """Adjust a tooz driver before it is started, as its lock back end needs."""
    lock_backend_class(settings.kind).prepare_driver(driver, settings)


def make_lock_backend(
    driver: Any, settings: Settings, member_id: str, on_lost: Callable[[str], None]
) -> LockBackend:
    """Build and start the lock back end matching ``settings.kind``."""
    backend = lock_backend_class(settings.kind)(driver, settings, member_id, on_lost)
    backend.start()
    return backend
