"""How ``storaged-api`` runs: one socket, workers on oslo.service's launcher.

The API runs the way every storaged daemon runs: an oslo.service
``Service`` (:class:`ApiService`) handed to oslo.service's launcher, which
is eventlet's ``ProcessLauncher`` (``ServiceLauncher`` in-process for one
worker) under the eventlet backend, and cotyledon's ``ServiceManager``
under the threading backend.  The launcher forks the workers, replaces a
worker that dies, watches for the parent's death and routes the signals;
storaged adds what an HTTP server needs around it:

1. the parent binds ``[api] bind_host:bind_port`` (the workers inherit the
   listening socket, so no connection is refused while a worker restarts);
2. the parent builds the application once and closes it: the catalog and
   data directories exist before any worker starts, and a bad configuration
   exits with status 2 before any fork and before ``READY=1``;
3. each worker builds its own application (database connections are never
   carried across a fork) and serves;
4. each worker writes one byte to a pipe once it serves; the parent sends
   ``READY=1`` when each of the first ``workers`` has, then feeds the
   systemd watchdog from a native thread.

Signals, as the launcher routes them::

    SIGTERM   every worker: STOPPING=1, stop accepting, close idle kept-alive
              connections, requests in progress get [api] shutdown_timeout
              seconds; then exit 0 (the launcher gives up on a worker after
              [DEFAULT] graceful_shutdown_timeout, which must be larger)
    SIGHUP    the options marked mutable are re-read (oslo.config's
              mutate_config_files) and log files reopened, in the parent and
              in every worker, and each worker re-reads the container-sync
              realms file in place: requests in progress go on, no worker
              restarts (on both backends)
    SIGINT    the launcher's instantaneous exit (status 1)
    SIGKILL   of the parent: the workers notice (the launcher's pipe) and
              stop as on SIGTERM
"""

from __future__ import annotations

from collections.abc import Callable
import logging
import os
import signal
import socket
import threading
from typing import Any

import cotyledon
from oslo_config import cfg
from oslo_service import service as oslo_service

from storaged import concurrency
from storaged import metrics
from storaged.api import server
from storaged.common import systemd
from storaged.conf import api as api_conf

LOG = logging.getLogger(__name__)

AppFactory = Callable[[], Any]


class ApiService(oslo_service.Service):  # type: ignore[misc,name-defined]
    """One worker of ``storaged-api``: builds the application and serves.

    The instance is made in the parent and copied into each worker by the
    fork; :meth:`start` runs in the worker.  Under eventlet's
    ``ProcessLauncher`` the parent's copy is also stopped and reset by the
    launcher, never started: those calls do nothing there but notify.

    :param sock: the listening socket (bound by the parent).
    :param build_app: makes the WSGI application, in the worker.
    :param ready_fd: the write end of the parent's readiness pipe.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        sock: socket.socket,
        build_app: AppFactory,
        notifier: systemd.Notifier,
        ready_fd: int,
    ) -> None:
        super().__init__(threads=1)
        self.conf = conf
        self.sock = sock
        self.build_app = build_app
        self.notifier = notifier
        self.ready_fd = ready_fd
        self._flag = server.StopFlag()
        self._done: threading.Event | None = None

    # -- oslo.service Service API ------------------------------------------

    def start(self) -> None:
        """Build the application and serve the socket until stopped."""
        super().start()
        server.reopen_log_files()
        self._flag = server.StopFlag()
        self._done = threading.Event()
        app = self.build_app()
        self.tg.add_thread(self._serve, app, self._done)

    def stop(self, graceful: bool = False) -> None:
        """SIGTERM: let requests in progress finish, then return.

        In the parent (never started), let go of the listening socket.
        """
        self.notifier.stopping()
        done = self._done
        if done is None:
            self.release_socket()
        if done is not None and not self._flag.stopping:
            self._flag.stopping = True
            # The serving loop gives requests shutdown_timeout seconds and
            # returns; the margin covers the socket's last writes.
            if not done.wait(self.conf.api.shutdown_timeout + 5.0):
                LOG.warning("The server did not stop in time")
        super().stop(graceful)

    def reset(self) -> None:
        """SIGHUP: the launcher has re-read the mutable options already."""
        self._flag.reload = True

    def release_socket(self) -> None:
        """In the parent, on stop: close its copy of the listening socket.

        The socket stops accepting once every process has closed it: the
        workers close theirs when they stop.
        """
        self.sock.close()

    # -- the worker --------------------------------------------------------

    def _serve(self, app: Any, done: threading.Event) -> None:
        host, port = self.sock.getsockname()[:2]

        def ready() -> None:
            LOG.info("Worker %d serving on %s:%s", os.getpid(), host, port)
            try:
                os.write(self.ready_fd, b"1")
            except OSError as err:
                LOG.warning("Cannot tell the parent this worker serves: %s", err)

        def reload() -> None:
            realms = getattr(app, "realms", None)
            if realms is not None:
                realms.reload()
            LOG.info("Worker %d reloaded: log files reopened, container-sync "
                     "realms re-read", os.getpid())

        try:
            server.serve(self.sock, app, self.conf, self._flag, ready, reload)
        except Exception:
            LOG.exception("Worker %d failed", os.getpid())
            raise
        finally:
            try:
                close = getattr(app, "close", None)
                if close is not None:
                    close()
            finally:
                # Its live gauges (open connections) stop counting in the
                # figures the parent serves.
                metrics.mark_worker_dead()
                # Logged before stop() is released: the process may exit
                # as soon as it is.
                LOG.info("Worker %d stopped", os.getpid())
                done.set()


class ReadyWatch:
    """In the parent: READY=1 once every first worker serves, then the watchdog.

    A native thread reads the pipe the workers write one byte to; bytes of
    replacement workers (a worker that died, a SIGHUP restart) are read and
    counted too, so the pipe never fills.
    """

    def __init__(self, notifier: systemd.Notifier, workers: int, where: str) -> None:
        self.notifier = notifier
        self.workers = workers
        self.where = where
        self.read_fd, self.write_fd = os.pipe()
        self.started = 0

    def start(self) -> None:
        """Start the thread (before the launcher forks the workers)."""
        concurrency.start_native_thread(self._run, "api-ready")

    def _run(self) -> None:
        native_os: Any = concurrency.native_module("os")
        while True:
            try:
                data = native_os.read(self.read_fd, 64)
            except OSError:
                return
            if not data:
                return
            before = self.started
            self.started += len(data)
            if before < self.workers <= self.started:
                self.notifier.ready(
                    "serving on %s with %d worker(s)" % (self.where, self.workers)
                )
                self.notifier.start_watchdog()


def run(conf: cfg.ConfigOpts, build_app: AppFactory, notifier: systemd.Notifier) -> int:
    """Serve the API as ``storaged-api`` does; return the exit status.

    :param build_app: makes the WSGI application (called once in the
        parent, then closed, and once in every worker).
    """
    group = conf.api
    # Until the launcher installs its handlers, a SIGHUP (a log rotation's)
    # would end the process with the default action: it is ignored instead.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sock = server.bind_socket(group.bind_host, group.bind_port)
    except OSError as err:
        LOG.error("Cannot listen on %s:%s: %s", group.bind_host, group.bind_port,
                  err.strerror or err)
        return 1
    host, port = sock.getsockname()[:2]
    where = "%s:%s" % (host, port)
    workers = api_conf.worker_count(group.workers)
    # Directories and schemas are made here, once; a bad store or catalog
    # stops the start before any worker exists.
    probe = build_app()
    close = getattr(probe, "close", None)
    if close is not None:
        close()
    conf.register_mutate_hook(_reopen_logs_hook)
    LOG.info("storaged-api listening on %s (%s backend, %d worker(s))",
             where, concurrency.backend(), workers)
    # /metrics is the parent's: under multiprocess mode it adds up the
    # figures of every worker (and of one served in-process).
    metrics.serve()
    watch = ReadyWatch(notifier, workers, where)
    watch.start()
    service = ApiService(conf, sock, build_app, notifier, watch.write_fd)
    try:
        if concurrency.is_eventlet():
            status = _launch_oslo(conf, service, workers)
        else:
            status = _launch_cotyledon(conf, service, workers)
    finally:
        notifier.stop_watchdog()
        sock.close()
    LOG.info("storaged-api stopped")
    return status


def _launch_oslo(conf: cfg.ConfigOpts, service: ApiService, workers: int) -> int:
    """eventlet: oslo.service's ProcessLauncher (ServiceLauncher for one)."""
    launcher = oslo_service.launch(conf, service, workers=workers,
                                   restart_method="mutate")
    return int(launcher.wait() or 0)


class _CotyledonWorker(cotyledon.Service):  # type: ignore[misc]
    """cotyledon's view of an :class:`ApiService`."""

    name = "storaged-api"

    def __init__(self, worker_id: Any, service: ApiService) -> None:
        super().__init__(worker_id)
        self.service = service

    def run(self) -> None:
        self.service.start()
        self.service.wait()

    def terminate(self) -> None:
        self.service.stop()

    def reload(self) -> None:
        # The parent re-read the files before it passed SIGHUP on; this
        # process holds its own copy of the options.
        self.service.conf.mutate_config_files()
        self.service.reset()


def _launch_cotyledon(conf: cfg.ConfigOpts, service: ApiService, workers: int) -> int:
    """threading: cotyledon's ServiceManager, as oslo.service uses it.

    Used directly (oslo.service's threading launcher wraps it without a
    reload of its own, so SIGHUP would restart every worker) so that SIGHUP
    reloads each worker in place and the parent lets go of the listening
    socket as soon as it is asked to stop.
    """
    manager = cotyledon.ServiceManager(
        graceful_shutdown_timeout=conf.graceful_shutdown_timeout
    )

    def reread() -> None:
        conf.mutate_config_files()

    manager.register_hooks(on_terminate=service.release_socket, on_reload=reread)
    manager.add(_CotyledonWorker, workers=workers, args=(service,))
    try:
        manager.run()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _reopen_logs_hook(conf: cfg.ConfigOpts, changed: Any) -> None:
    """A mutate hook: SIGHUP reopens log files in every process (logrotate)."""
    server.reopen_log_files()
