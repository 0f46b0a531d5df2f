"""Several back ends from one configuration: options, parsing, checking, loading.

The loader registers the group of each enabled back end id (the common
:data:`storaged.conf.store.BACKEND_OPTS` plus its driver's ``OPTIONS``,
:func:`register_dynamic_opts` once the files are parsed) and lists the
options for the sample configuration (:func:`list_opts`); the static ones
(``[DEFAULT] enabled_backends``, ``[store] default_backend`` and
``reserved_backends``) are declared in :mod:`storaged.conf.store`, which
needs no driver.

The configuration names the back ends and their types::

    [DEFAULT]
    enabled_backends = local:file, fast:file, mirror:http

    [store]
    default_backend = fast
    reserved_backends = local

    [fast]
    data_dirs = /srv/nvme0/objects:100, /srv/nvme1/objects:100
    weight = 50

Each id gets a section registered from its driver's ``OPTIONS``
(:func:`register_backend_opts`).  :func:`validate_conf` checks everything that
can be checked without touching a back end; :func:`load_backends` does the
same checks, then builds each reusable driver once and returns the
:class:`Backends` registry, whose lookups are dictionary reads.

Every problem is one :class:`~storaged.exception.ConfigError` naming the
section and option; nothing is skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
import dataclasses
import functools
from importlib import metadata
import logging
from typing import Any

from oslo_config import cfg
import stevedore
from stevedore import exception as stevedore_exception

from storaged import exception
from storaged.conf import store as store_conf
from storaged.objectstore import names
from storaged.objectstore.capabilities import Capability
from storaged.objectstore.driver import Driver

LOG = logging.getLogger(__name__)

#: entry point namespace of the drivers (``setup.cfg``).
NAMESPACE = "storaged.objectstore.drivers"

_ENABLED = ("DEFAULT", "enabled_backends")
_DEFAULT = ("store", "default_backend")
_RESERVED = ("store", "reserved_backends")


# -- options ------------------------------------------------------------------


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the static object store options (:mod:`storaged.conf.store`)."""
    store_conf.register_opts(conf)


def register_dynamic_opts(conf: cfg.ConfigOpts) -> None:
    """Register one group per enabled back end (after parsing).

    :raises storaged.exception.ConfigError: malformed ``enabled_backends``,
        a duplicate or clashing id, an unknown type.
    """
    register_backend_opts(conf)


def _type_group(name: str) -> cfg.OptGroup:
    return cfg.OptGroup(
        name,
        title=f"Options of {name} back ends",
        help=f"""
Options of back ends of type ``{name}``.

There is no ``[{name}]`` section: put these in the section named after the
back end id, e.g. ``[fast]`` for ``enabled_backends = fast:{name}``.
""",
    )


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration.

    The static options, then one group per driver type (sorted by name) with
    the common back end options and the driver's own ``OPTIONS``.
    """
    result: list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]] = [
        (None, store_conf.DEFAULT_OPTS),
        (store_conf.GROUP, store_conf.STORE_OPTS),
    ]
    for name in known_types():
        driver = driver_class(name)
        opts = store_conf.BACKEND_OPTS + list(driver.OPTIONS)
        result.append((_type_group(name), opts))
    return result


# -- loading ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BackendSpec:
    """One entry of ``enabled_backends``."""

    id: str
    type: str
    reserved: bool = False


def _error(problem: str, where: tuple[str, str]) -> exception.ConfigError:
    return exception.ConfigError(problem, group=where[0], option=where[1])


def known_types() -> list[str]:
    """Return the names of the installed driver types, sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=NAMESPACE)})


@functools.cache
def driver_class(type_name: str) -> type[Driver]:
    """Load the driver class of a back end type through its entry point.

    Looked up once per process (a look-up scans the installed entry points);
    a failure raises, and is not remembered.

    :raises storaged.exception.ConfigError: unknown type, a driver that
        cannot be imported, or one that is not a :class:`Driver`.
    """
    failure: list[BaseException] = []

    def on_failure(_manager: Any, _entrypoint: Any, err: BaseException) -> None:
        failure.append(err)

    try:
        manager: stevedore.DriverManager[Any] = stevedore.DriverManager(
            NAMESPACE,
            type_name,
            invoke_on_load=False,
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda names: None,
        )
    except stevedore_exception.NoMatches as err:
        if failure:
            raise _error(
                f"cannot load the driver of back end type {type_name!r}: {failure[0]}",
                _ENABLED,
            ) from failure[0]
        raise _error(
            "unknown back end type {!r} (known: {})".format(
                type_name, ", ".join(known_types())
            ),
            _ENABLED,
        ) from err
    cls = manager.driver
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise _error(
            f"the driver of back end type {type_name!r} is not an object store driver",
            _ENABLED,
        )
    return cls


def parse_enabled_backends(entries: Iterable[str]) -> list[tuple[str, str]]:
    """Parse ``enabled_backends`` into ``(id, type)`` pairs, in order.

    :raises storaged.exception.ConfigError: a malformed entry, a bad or
        duplicate id, or an empty list.
    """
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        backend_id, sep, type_name = entry.partition(":")
        backend_id, type_name = backend_id.strip(), type_name.strip()
        if not sep or not backend_id or not type_name or ":" in type_name:
            raise _error(
                f"malformed entry {entry!r}: expected ID:TYPE, e.g. local:file",
                _ENABLED,
            )
        problem = names.backend_id_problem(backend_id)
        if problem:
            raise _error(problem, _ENABLED)
        if backend_id in seen:
            raise _error(f"back end id {backend_id!r} is listed twice", _ENABLED)
        seen.add(backend_id)
        pairs.append((backend_id, type_name))
    if not pairs:
        raise _error("no back end is enabled (e.g. local:file)", _ENABLED)
    return pairs


def _is_backend_group(conf: cfg.ConfigOpts, name: str) -> bool:
    """Tell whether ``name`` is a group registered here for a back end."""
    try:
        attr = conf[name]
    except (cfg.NoSuchOptError, KeyError):
        return False
    return isinstance(attr, cfg.ConfigOpts.GroupAttr) and all(
        opt.dest in attr for opt in store_conf.BACKEND_OPTS
    )


def register_backend_opts(conf: cfg.ConfigOpts) -> list[BackendSpec]:
    """Register the section of each enabled back end; return the back ends.

    Safe to call again on the same ``conf``.

    :raises storaged.exception.ConfigError: as :func:`parse_enabled_backends`,
        plus an id that clashes with another section and unknown types.
    """
    pairs = parse_enabled_backends(conf.enabled_backends)
    reserved = set(conf.store.reserved_backends)
    specs: list[BackendSpec] = []
    for backend_id, type_name in pairs:
        if backend_id == "DEFAULT" or (
            backend_id in conf and not _is_backend_group(conf, backend_id)
        ):
            raise _error(
                f"back end id {backend_id!r} clashes with the [{backend_id}] "
                "section or option; choose another id",
                _ENABLED,
            )
        cls = driver_class(type_name)
        conf.register_group(
            cfg.OptGroup(
                backend_id,
                title=f"Back end {backend_id} ({type_name})",
            )
        )
        conf.register_opts(
            store_conf.BACKEND_OPTS + list(cls.OPTIONS), group=backend_id
        )
        specs.append(BackendSpec(backend_id, type_name, backend_id in reserved))
    return specs


def _check(
    conf: cfg.ConfigOpts,
) -> tuple[list[BackendSpec], str, dict[str, type[Driver]]]:
    """Parse and check the whole object store configuration (no I/O)."""
    specs = register_backend_opts(conf)
    by_id = {spec.id: spec for spec in specs}
    for backend_id in conf.store.reserved_backends:
        if backend_id not in by_id:
            raise _error(
                "{!r} is not in [DEFAULT] enabled_backends (enabled: {})".format(
                    backend_id, ", ".join(by_id)
                ),
                _RESERVED,
            )
    public = [spec.id for spec in specs if not spec.reserved]
    default_id = conf.store.default_backend
    if default_id is None or default_id == "":
        if len(public) != 1:
            raise _error(
                "must be set when {} back ends that are not reserved are "
                "enabled ({})".format(
                    "no" if not public else len(public), ", ".join(public) or "none"
                ),
                _DEFAULT,
            )
        default_id = public[0]
    elif default_id not in by_id:
        raise _error(
            "{!r} is not in [DEFAULT] enabled_backends (enabled: {})".format(
                default_id, ", ".join(by_id)
            ),
            _DEFAULT,
        )
    elif by_id[default_id].reserved:
        raise _error(
            f"{default_id!r} is a reserved back end and cannot be the default",
            _DEFAULT,
        )
    classes: dict[str, type[Driver]] = {}
    for spec in specs:
        cls = driver_class(spec.type)
        cls.check_conf(conf, spec.id)
        classes[spec.id] = cls
    return specs, default_id, classes


def validate_conf(conf: cfg.ConfigOpts, sources: Any = None) -> None:
    """Check the object store configuration, for ``prepare_service``.

    Checks everything that does not need the back ends themselves: the
    back end list, the default, the reserved ids and each back end's own
    options (data directory syntax, paths, priorities, URLs, ...).

    :param sources: where options were set (unused: the caller adds the file).
    :raises storaged.exception.ConfigError: with group and option set.
    """
    _check(conf)


def load_backends(conf: cfg.ConfigOpts) -> Backends:
    """Check the configuration and build the back ends.

    Each reusable driver is created here, once (a file back end creates its
    directories, probes xattr support and reclaims leftovers of dead
    writers), so a back end that cannot work stops start-up.

    :raises storaged.exception.ConfigError: with group and option set.
    """
    specs, default_id, classes = _check(conf)
    drivers: dict[str, Driver] = {}
    for spec in specs:
        cls = classes[spec.id]
        driver = cls(conf, spec.id)
        if Capability.REUSABLE in driver.capabilities:
            drivers[spec.id] = driver
        else:
            driver.close()
        LOG.debug("object store back end %s (%s) loaded", spec.id, spec.type)
    return Backends(conf, specs, default_id, classes, drivers)


class Backends:
    """The enabled back ends, by id.

    Built by :func:`load_backends`.  Lookups (:meth:`get`, :meth:`weight`)
    read dictionaries and the parsed configuration: no I/O, no driver built,
    except for drivers that declare themselves not reusable, which get a new
    instance per :meth:`get`.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        specs: list[BackendSpec],
        default_id: str,
        classes: dict[str, type[Driver]],
        drivers: dict[str, Driver],
    ) -> None:
        self._conf = conf
        self._specs = {spec.id: spec for spec in specs}
        self._order = [spec.id for spec in specs]
        self._default_id = default_id
        self._classes = classes
        self._drivers = drivers

    def __contains__(self, backend_id: object) -> bool:
        return backend_id in self._specs

    def __len__(self) -> int:
        """The number of back ends, reserved ones included."""
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __repr__(self) -> str:
        return "<Backends {}, default {}>".format(
            ", ".join(self._order), self._default_id
        )

    def _spec(self, backend_id: str) -> BackendSpec:
        try:
            return self._specs[backend_id]
        except (KeyError, TypeError):
            raise exception.UnknownBackend(backend=repr(backend_id)) from None

    def get(self, backend_id: str) -> Driver:
        """Return the driver of a back end.

        :raises storaged.exception.UnknownBackend: no such back end enabled.
        """
        driver = self._drivers.get(backend_id) if isinstance(backend_id, str) else None
        if driver is not None:
            return driver
        spec = self._spec(backend_id)
        return self._classes[spec.id](self._conf, spec.id)

    @property
    def default_id(self) -> str:
        """The id of the default back end."""
        return self._default_id

    @property
    def default(self) -> Driver:
        """The driver of the default back end."""
        return self.get(self._default_id)

    def ids(self, include_reserved: bool = False) -> list[str]:
        """Return the back end ids in ``enabled_backends`` order."""
        return [
            i for i in self._order if include_reserved or not self._specs[i].reserved
        ]

    def type(self, backend_id: str) -> str:
        """Return the type (driver name) of a back end."""
        return self._spec(backend_id).type

    def is_reserved(self, backend_id: str) -> bool:
        """Tell whether a back end is reserved for internal use."""
        return self._spec(backend_id).reserved

    def weight(self, backend_id: str) -> int:
        """Return a back end's weight, from memory.

        :raises storaged.exception.UnknownBackend: no such back end enabled.
        """
        spec = self._spec(backend_id)
        return int(self._conf[spec.id].weight)

    get_store_weight = weight

    def order(self, backend_ids: Iterable[str | None]) -> list[str | None]:
        """Sort back end ids by weight, highest first; ties keep their order.

        Ids that are unknown, reserved or ``None`` count as weight 0, so a
        list of locations can be sorted by the back end each one names.
        """

        def key(backend_id: str | None) -> int:
            spec = self._specs.get(backend_id) if backend_id is not None else None
            if spec is None or spec.reserved:
                return 0
            return -int(self._conf[spec.id].weight)

        return sorted(backend_ids, key=key)

    def verify_all(self) -> dict[str, exception.StoreError | None]:
        """Run ``verify_store`` on every back end; return the error of each."""
        result: dict[str, exception.StoreError | None] = {}
        for backend_id in self.ids(include_reserved=True):
            try:
                self.get(backend_id).verify_store()
            except exception.StoreError as err:
                result[backend_id] = err
            else:
                result[backend_id] = None
        return result

    def close(self) -> None:
        """Close every cached driver."""
        for driver in self._drivers.values():
            driver.close()
