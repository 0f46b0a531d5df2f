"""The ``storaged-cache`` daemon: prune, clean and prefetch on three timers.

One oslo.service service, :class:`CacheService`, runs three
:class:`~storaged.common.daemon.PeriodicService` loops side by side in one
process, one per worker, each with its own interval, first-pass jitter,
summary line and status record (``status/<node>/cache-prune``,
``cache-clean``, ``cache-prefetch``)::

    storaged-cache                       the daemon (systemd: storaged@cache)
    storaged-cache --once                one pass of each: clean, prefetch,
                                         prune; exit 0 only if all succeeded
    storaged-cache-prune [--dry-run]     one prune pass (cron)
    storaged-cache-clean [--dry-run]     one clean pass (cron)

The workers share one :class:`CacheRuntime`: the cache, the object service
the prefetcher reads through, and the state store for a shared directory's
lease.  It is opened by the workers' ``start()`` hooks, that is in the
process that makes the passes (a child process under oslo.service's
threading backend: database connections are never carried across a fork).
"""

from __future__ import annotations

from collections.abc import Callable
import logging
from typing import Any

from oslo_config import cfg
from oslo_service import service as oslo_service

from storaged import concurrency
from storaged import exception
from storaged.cache.cleaner import Cleaner
from storaged.cache.engine import CacheRef
from storaged.cache.engine import Fetch
from storaged.cache.engine import ObjectCache
from storaged.cache.engine import ref_for_row
from storaged.cache.prefetcher import NotCacheable
from storaged.cache.prefetcher import Prefetcher
from storaged.cache.prefetcher import Resolver
from storaged.cache.pruner import Pruner
from storaged.common import daemon as daemon_mod
from storaged.common import status as status_mod
from storaged.common import systemd

LOG = logging.getLogger(__name__)


def cached_backend_ids(conf: cfg.ConfigOpts) -> list[str]:
    """Return the ids of the back ends with ``cache = true`` (no driver built)."""
    from storaged.objectstore import backend

    return [s.id for s in backend.register_backend_opts(conf) if conf[s.id].cache]


def open_cache(conf: cfg.ConfigOpts) -> ObjectCache:
    """Open the cache directory the configuration names."""
    return ObjectCache.from_conf(conf, cached_backend_ids(conf))


def open_lease_store(conf: cfg.ConfigOpts) -> Any:
    """Return the state store for the shared lease, or None (not shared)."""
    if not conf.cache.shared_dir:
        return None
    from storaged import kvs

    return kvs.get_store(conf)


def make_resolver(svc: Any) -> Resolver:
    """Return the prefetcher's resolver over an :class:`ObjectRepository`."""
    from storaged.catalog import validate_account
    from storaged.catalog import validate_container
    from storaged.catalog import validate_object

    def resolve(target: dict[str, str]) -> tuple[CacheRef, Fetch]:
        cache: ObjectCache = svc.cache
        if "object" in target:
            account, container, name = target["object"].split("/", 2)
            account = validate_account(account)
            container = validate_container(container)
            name = validate_object(name)
            broker = svc.catalog.container(account, container)
            try:
                row = broker.get_object(name)
            finally:
                close = getattr(broker, "close", None)
                if close is not None:
                    close()
            if row is None:
                raise exception.ObjectNotFound(what=target["object"])
            backend_id, location = row.backend, row.location
            if cache is None or not cache.serves(backend_id):
                raise NotCacheable(what=target["object"], backend=backend_id)
            ref = ref_for_row(account, container, row)
            driver = svc.backends.get(backend_id)
        else:
            backend_id, location = target["backend"], target["location"]
            if cache is None or not cache.serves(backend_id):
                raise NotCacheable(what="the location", backend=backend_id)
            driver = svc.backends.get(backend_id)
            ref = CacheRef(backend_id, location, driver.get_size(location))

        def fetch(off: int, length: int | None, verify: bool) -> Any:
            return driver.get(location, offset=off, length=length, verify=verify)

        return ref, fetch

    return resolve


class CacheRuntime:
    """The cache, the object service and the lease store the workers share."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.cache: ObjectCache | None = None
        self.objects: Any = None
        self.store: Any = None
        self._users = 0

    def open(self, with_objects: bool = False) -> None:
        """Open what the workers use (counted: the last close releases)."""
        if self.cache is None:
            self.cache = open_cache(self.conf)
            self.store = open_lease_store(self.conf)
        if with_objects and self.objects is None:
            from storaged import objectstore
            from storaged.catalog.factory import open_catalog
            from storaged.objects import ObjectRepository

            self.objects = ObjectRepository(
                open_catalog(self.conf),
                objectstore.load_backends(self.conf),
                cache=self.cache,
            )
        self._users += 1

    def close(self) -> None:
        """Release one user; close everything after the last."""
        self._users -= 1
        if self._users > 0:
            return
        if self.objects is not None:
            self.objects.catalog.close()
            self.objects.backends.close()
            self.objects = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def reload(self, conf: cfg.ConfigOpts) -> None:
        """Apply the mutable options again (SIGHUP)."""
        if self.cache is not None:
            self.cache.configure(conf)


class _Worker:
    """A worker whose domain object is built when its process starts."""

    name = ""

    def __init__(self, runtime: CacheRuntime, dry_run: bool = False) -> None:
        self.runtime = runtime
        self.dry_run = dry_run
        self._impl: Any = None

    def start(self) -> None:
        """Open the runtime (in the process that makes the passes)."""
        self.runtime.open(with_objects=self.name == PrefetchWorker.name)
        self._impl = self._build()

    def stop(self) -> None:
        """Release the runtime."""
        if self._impl is not None:
            self._impl = None
            self.runtime.close()

    def _build(self) -> Any:
        raise NotImplementedError

    def run_pass(self, ctx: daemon_mod.PassContext) -> None:
        """Run one pass of the domain object."""
        if self._impl is None:
            raise exception.FatalError(reason="%s was not started" % self.name)
        self._impl.run_pass(ctx)


class PruneWorker(_Worker):
    """The ``cache-prune`` worker."""

    name = Pruner.name

    def _build(self) -> Pruner:
        assert self.runtime.cache is not None
        return Pruner(self.runtime.cache, self.runtime.store, dry_run=self.dry_run)


class CleanWorker(_Worker):
    """The ``cache-clean`` worker."""

    name = Cleaner.name

    def _build(self) -> Cleaner:
        assert self.runtime.cache is not None
        return Cleaner(self.runtime.cache, self.runtime.store, dry_run=self.dry_run)


class PrefetchWorker(_Worker):
    """The ``cache-prefetch`` worker."""

    name = Prefetcher.name

    def _build(self) -> Prefetcher:
        assert self.runtime.cache is not None
        return Prefetcher(self.runtime.cache, make_resolver(self.runtime.objects))


def intervals(conf: cfg.ConfigOpts) -> dict[str, Callable[[], float]]:
    """Return each worker's interval, read at every sleep (mutable options)."""
    return {
        PruneWorker.name: lambda: float(conf.cache.prune_interval),
        CleanWorker.name: lambda: float(conf.cache.clean_interval),
        PrefetchWorker.name: lambda: float(conf.cache.prefetch_interval),
    }


class CacheService(oslo_service.Service):  # type: ignore[misc,name-defined]
    """Three periodic loops in one oslo.service service.

    :param services: one :class:`PeriodicService` per worker.
    """

    def __init__(self, services: list[daemon_mod.PeriodicService]) -> None:
        super().__init__(threads=1)
        self.services = services

    def start(self) -> None:
        """Start every loop."""
        super().start()
        for svc in self.services:
            svc.start()

    def stop(self, graceful: bool = False) -> None:
        """Stop every loop at once (each finishes its current item)."""
        tasks = [concurrency.spawn(svc.stop, graceful) for svc in self.services]
        for task in tasks:
            try:
                task.wait()
            except Exception:
                LOG.exception("error while stopping a cache worker")
        super().stop(graceful)

    def wait(self) -> None:
        """Wait for every loop to end."""
        for svc in self.services:
            svc.wait()

    def reset(self) -> None:
        """SIGHUP: every loop re-reads its options."""
        for svc in self.services:
            svc.reset()


def run(
    conf: cfg.ConfigOpts,
    runtime: CacheRuntime,
    board: status_mod.StatusBoard | None,
    notifier: systemd.Notifier | None = None,
) -> int:
    """Run the daemon, or one pass of each worker with ``--once``.

    :returns: the exit status.
    """
    if notifier is None:
        notifier = systemd.Notifier.from_environ()
    workers: list[_Worker] = [
        CleanWorker(runtime), PrefetchWorker(runtime), PruneWorker(runtime)
    ]
    board = board if conf.daemon.publish_status else None
    every = intervals(conf)
    if conf.once:
        ok = True
        for worker in workers:
            reporter = daemon_mod.Reporter(worker.name, conf.node_id, board, notifier)
            worker.start()
            try:
                stats = daemon_mod.run_pass(worker)
            finally:
                worker.stop()
            reporter.pass_done(stats, None, state="ran once")
            ok = ok and stats.ok
        return 0 if ok else 1
    services = [
        daemon_mod.PeriodicService(
            conf, worker, every[worker.name],
            daemon_mod.Reporter(worker.name, conf.node_id, board, notifier),
            notifier, runtime.reload,
        )
        for worker in workers
    ]
    launcher = oslo_service.launch(
        conf, CacheService(services), restart_method="mutate"
    )
    return int(launcher.wait() or 0)


def run_one(
    conf: cfg.ConfigOpts,
    worker: _Worker,
    board: status_mod.StatusBoard | None,
) -> int:
    """Run one pass of one worker (the cron commands); exit 0 or 1."""
    conf.set_override("once", True)
    every = intervals(conf)
    return daemon_mod.run_daemon(conf, worker, every[worker.name], board)
