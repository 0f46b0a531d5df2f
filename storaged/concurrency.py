"""The concurrency model of a storaged process, chosen once, in one place.

This is the only module that imports eventlet.  Everything else spawns, sleeps
and runs blocking calls through the helpers below, and uses oslo.service's API
for services and timers, so that moving from eventlet (deprecated upstream) to
oslo.service's ``threading`` backend is one option:

* ``eventlet`` (the default): the process is monkey-patched, green threads
  drive the loops, :func:`run_blocking` runs a call in eventlet's native
  thread pool (``tpool``) so that fsync, xattr, sqlite or a directory scan
  never stalls the hub.
* ``threading``: no monkey-patching, native threads, :func:`run_blocking`
  is a plain call.

The backend comes from, in order: the ``STORAGED_CONCURRENCY_BACKEND``
environment variable, ``[DEFAULT] concurrency_backend`` read from the
configuration files named on the command line (or the default locations),
then ``eventlet``.  It must be known before anything else is imported, which
is why this module peeks at the files with the standard library and leaves
the real validation to :func:`storaged.common.config.prepare_service`.

:func:`start_native_thread` always gives a real OS thread, even when
monkey-patched: liveness work (systemd watchdog, coordination heartbeats)
must never wait for a green thread that is stuck in a blocking call.

The API server's ``eventlet.wsgi`` server is started here too
(:func:`green_wsgi_server`), and its handler classes are built on the
classes :func:`eventlet_wsgi` hands out, so that no other module imports
eventlet.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
import configparser
import logging
import os
import threading
import time
from typing import Any
from typing import TypeVar

ENV_VAR = "STORAGED_CONCURRENCY_BACKEND"
EVENTLET = "eventlet"
THREADING = "threading"
BACKENDS = (EVENTLET, THREADING)
DEFAULT_BACKEND = EVENTLET

#: Configuration files looked at when the command line names none; the same
#: list oslo.config searches for the ``storaged`` project.
DEFAULT_CONFIG_FILES = (
    "~/.storaged/storaged.conf",
    "~/storaged.conf",
    "/etc/storaged/storaged.conf",
    "/etc/storaged.conf",
)

T = TypeVar("T")

_backend: str | None = None
_source: str = ""
#: OS thread id of the thread that runs the eventlet hub (set by setup)
_hub_thread_ident: int | None = None


def config_files_from_argv(argv: Sequence[str]) -> list[str]:
    """List the configuration files a command line names, in reading order.

    Falls back to the last existing default location, as oslo.config does.
    """
    files: list[str] = []
    dirs: list[str] = []
    args = list(argv)
    for i, arg in enumerate(args):
        for flag, sink in (("--config-file", files), ("--config-dir", dirs)):
            if arg == flag and i + 1 < len(args):
                sink.append(args[i + 1])
            elif arg.startswith(flag + "="):
                sink.append(arg.split("=", 1)[1])
    if not files and not dirs:
        files = [
            os.path.expanduser(p)
            for p in DEFAULT_CONFIG_FILES
            if os.path.exists(os.path.expanduser(p))
        ][-1:]
    for d in dirs:
        try:
            files.extend(
                os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".conf")
            )
        except OSError:
            continue
    return files


def peek_backend(argv: Sequence[str]) -> tuple[str | None, str]:
    """Return the backend named in the configuration files, and where.

    Later files win, as with oslo.config.  Unreadable or malformed files are
    ignored here: :func:`prepare_service` reports them properly.

    :param argv: the command line arguments (without the program name).
    :returns: ``(backend or None, file name)``.
    """
    found: str | None = None
    where = ""
    for path in config_files_from_argv(argv):
        parser = configparser.RawConfigParser(strict=False)
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error, UnicodeDecodeError):
            continue
        value = parser.defaults().get("concurrency_backend")
        if value:
            found, where = value.strip(), path
    return found, where


def choose_backend(argv: Sequence[str] = ()) -> tuple[str, str]:
    """Decide the backend for this process.

    :returns: ``(backend, source)`` where source says why it was chosen.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env in BACKENDS:
        return env, "environment variable %s" % ENV_VAR
    peeked, where = peek_backend(argv)
    if peeked in BACKENDS:
        return peeked, where
    return DEFAULT_BACKEND, "default"


def setup(backend: str | None = None, argv: Sequence[str] = ()) -> str:
    """Select the backend, monkey-patch if it is eventlet, and tell oslo.service.

    Idempotent: the second call returns the backend chosen by the first.

    :param backend: force a backend (tests); otherwise :func:`choose_backend`.
    :param argv: the command line, to find the configuration files.
    :returns: the backend in use.
    """
    global _backend, _source
    if _backend is not None:
        return _backend
    if backend is None:
        backend, source = choose_backend(argv)
    else:
        source = "caller"
    if backend not in BACKENDS:
        raise ValueError(
            "unknown concurrency backend %r (choose from %s)"
            % (backend, ", ".join(BACKENDS))
        )
    import warnings

    # NOTE: eventlet warns on import that it is deprecated (futurist imports it
    # too when it is installed). storaged chose it knowingly and can leave it
    # with one option; operators cannot act on the warning, so it is silenced.
    warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
    from oslo_service import backend as oslo_backend

    if backend == EVENTLET:
        import _thread

        import eventlet

        global _hub_thread_ident
        _hub_thread_ident = _thread.get_ident()
        eventlet.monkey_patch()
        oslo_backend.init_backend(oslo_backend.BackendType.EVENTLET)
    else:
        # Loaded when a service first asks for it: oslo.service's threading
        # backend imports futurist, which imports eventlet (a fifth of a
        # second), and a command that runs no service needs none of it.
        oslo_backend.register_backend_default_hook(
            lambda: oslo_backend.BackendType.THREADING
        )
    _backend, _source = backend, source
    share_logging_locks()
    return backend


class _SharedLock:
    """A recursive lock that green and native threads can wait on together.

    The exclusion is a native lock.  A native thread waits on it as usual; a
    green thread (on the hub's thread) never blocks the hub: it tries, and
    yields to the other green threads between tries, which is cheap because
    a log record holds a handler's lock for microseconds.
    """

    def __init__(self) -> None:
        self._lock = _native_threading().Lock()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, blocking: bool = True) -> bool:
        import greenlet

        me = id(greenlet.getcurrent())
        if self._owner == me:
            self._depth += 1
            return True
        if _on_hub_thread():
            delay = 0.0
            while not self._lock.acquire(False):
                if not blocking:
                    return False
                sleep(delay)
                delay = min(delay * 2 or 0.0001, 0.01)
        elif not self._lock.acquire(blocking):
            return False
        self._owner, self._depth = me, 0
        return True

    def release(self) -> None:
        if self._depth:
            self._depth -= 1
            return
        self._owner = None
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        self._lock = _native_threading().Lock()
        self._owner, self._depth = None, 0


def _create_shared_lock(self: logging.Handler) -> None:
    self.lock = _SharedLock()  # type: ignore[assignment]


def share_logging_locks() -> None:
    """Make ``logging``'s locks safe to wait on from any thread.

    Monkey-patched, ``logging``'s locks are green: a native thread (the pool
    behind :func:`run_blocking`, a heartbeat) that waits on one while a
    green thread holds it is never woken, and the whole process hangs at
    its next log line.  This gives the module lock, every handler that
    exists and every handler created later a :class:`_SharedLock`.  Called
    by :func:`setup` and again once logging is set up (oslo.log puts a
    green lock back); nothing to do under the threading backend.
    """
    if _backend != EVENTLET:
        return
    logging.Handler.createLock = _create_shared_lock  # type: ignore[method-assign]
    for ref in list(getattr(logging, "_handlerList", ())):
        handler = ref()
        if handler is not None and not isinstance(handler.lock, _SharedLock):
            handler.lock = _SharedLock()  # type: ignore[assignment]
    if not isinstance(getattr(logging, "_lock", None), _SharedLock):
        logging._lock = _SharedLock()  # type: ignore[attr-defined]


def backend() -> str:
    """Return the backend in use (``setup`` must have run)."""
    if _backend is None:
        raise RuntimeError("storaged.concurrency.setup() has not been called")
    return _backend


def backend_source() -> str:
    """Say where the backend choice came from (for the start-up log line)."""
    return _source


def is_eventlet() -> bool:
    """Tell whether the process is monkey-patched by eventlet."""
    return _backend == EVENTLET


def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a call that may block the process without stalling other work.

    Under eventlet the call runs in the native thread pool and the calling
    green thread waits; under threading it is a plain call.  Called from a
    native thread (a heartbeat, the pool itself) it is a plain call too:
    only the hub's thread has green threads to keep running.
    """
    if _backend == EVENTLET and _on_hub_thread():
        from eventlet import tpool

        return tpool.execute(fn, *args, **kwargs)  # type: ignore[no-any-return]
    return fn(*args, **kwargs)


def _on_hub_thread() -> bool:
    from eventlet import patcher

    ident: int = patcher.original("_thread").get_ident()
    return ident == _hub_thread_ident


class Task:
    """A spawned unit of work (green or native thread) that can be waited on."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._result: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        if _backend == EVENTLET:
            import eventlet

            self._gt = eventlet.spawn(self._run, fn, args, kwargs)
        else:
            thread = threading.Thread(
                target=self._run, args=(fn, args, kwargs), daemon=True
            )
            thread.start()

    def _run(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        try:
            self._result = fn(*args, **kwargs)
        except BaseException as err:  # handed to whoever waits
            self._error = err
        finally:
            self._done.set()

    def done(self) -> bool:
        """Tell whether the task has finished."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the task and return its result (or raise its error).

        :raises TimeoutError: if ``timeout`` passed first.
        """
        if not self._done.wait(timeout):
            raise TimeoutError("task still running after %ss" % timeout)
        if self._error is not None:
            raise self._error
        return self._result


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
    """Run ``fn`` concurrently (green thread or native thread)."""
    return Task(fn, *args, **kwargs)


def sleep(seconds: float) -> None:
    """Sleep, yielding to other green threads under eventlet."""
    time.sleep(seconds)


def _native_threading() -> Any:
    if _backend == EVENTLET:
        from eventlet import patcher

        return patcher.original("threading")
    return threading


def start_native_thread(
    target: Callable[..., Any], name: str, *args: Any
) -> threading.Thread:
    """Start a real OS thread, even in a monkey-patched process.

    Code run there must only use :func:`native_event` and
    :func:`native_sleep` to wait, never green primitives.
    """
    thread: threading.Thread = _native_threading().Thread(
        target=target, name=name, args=args, daemon=True
    )
    thread.start()
    return thread


def native_lock() -> threading.Lock:
    """Return a lock that native and green threads may share.

    Whatever :func:`run_blocking` calls runs on the pool's native threads,
    several at once: a lock it takes must be native (a green one, waited on
    by two native threads, wakes the waiter on the wrong thread's hub, which
    never runs it).  Hold it for a few statements only, never across I/O: a
    green thread waiting on it stalls its whole hub.
    """
    lock: threading.Lock = _native_threading().Lock()
    return lock


def shared_lock() -> Any:
    """Return a lock the hub's green threads and native threads can wait on.

    For a lock that may be held across (green) I/O and is taken from the
    hub's thread and from :func:`run_blocking`'s pool at once (a client's
    token refresh): the exclusion is native, a native thread waits as
    usual, and a green thread on the hub's thread waits by trying again
    between short sleeps, so it never stalls the hub.  Recursive.
    """
    return _SharedLock()


def native_event() -> threading.Event:
    """Return an Event that a native thread can wait on."""
    event: threading.Event = _native_threading().Event()
    return event


def native_module(name: str) -> Any:
    """Return the unpatched standard module ``name`` (``socket``, ``time``, …)."""
    if _backend == EVENTLET:
        from eventlet import patcher

        return patcher.original(name)
    import importlib

    return importlib.import_module(name)


def native_sleep(seconds: float) -> None:
    """Sleep in a native thread without touching the eventlet hub."""
    if _backend == EVENTLET:
        from eventlet import patcher

        patcher.original("time").sleep(seconds)
    else:
        time.sleep(seconds)


# -- the API server's green WSGI server ----------------------------------------


def _require_eventlet(what: str) -> None:
    if _backend != EVENTLET:
        raise RuntimeError(
            "%s needs the eventlet backend (this process runs on %s)"
            % (what, _backend or "no backend yet")
        )


def eventlet_wsgi() -> Any:
    """Return eventlet's ``wsgi`` module, whose classes a protocol subclasses.

    For :mod:`storaged.api.greenhttp`, which builds its handler and
    ``wsgi.input`` classes on ``HttpProtocol`` and ``Input`` when first
    asked for them, so that it imports no eventlet itself.

    :raises RuntimeError: if the process does not run on eventlet.
    """
    _require_eventlet("eventlet's WSGI server")
    import eventlet.wsgi

    return eventlet.wsgi


class GreenWSGIServer:
    """An ``eventlet.wsgi`` server in its own green thread.

    Connections are served by green threads of a pool of ``max_clients``;
    a full pool blocks the accept loop, so further connections wait in the
    listen queue.
    """

    def __init__(self, thread: Any, pool: Any) -> None:
        self._thread = thread
        self._pool = pool

    @property
    def dead(self) -> bool:
        """True once the accept loop has ended."""
        return bool(self._thread.dead)

    def kill(self) -> None:
        """End the accept loop (closing the socket would not wake it).

        On its way out eventlet closes the idle kept-alive connections and
        marks the busy ones to close once their response is sent.
        """
        self._thread.kill()

    def open_connections(self) -> int:
        """Return the number of connections still being served."""
        return int(self._pool.running())


def green_wsgi_server(
    sock: Any,
    app: Callable[..., Any],
    *,
    protocol: type[Any],
    max_clients: int,
    max_line: int,
    socket_timeout: float,
    log: Any,
    **options: Any,
) -> GreenWSGIServer:
    """Start serving ``app`` on the listening ``sock`` with ``eventlet.wsgi``.

    :param protocol: the connection handler class (see
        :func:`eventlet_wsgi`).
    :param max_clients: connections served at once.
    :param max_line: the longest request line and header line, in bytes.
    :param socket_timeout: seconds a read or write on a connection may wait.
    :param log: where the server's messages go (``info``, ``debug``,
        ``warning``, ``error``, ``write``).
    :param options: further keyword arguments of ``eventlet.wsgi.server``
        (``keepalive``, ``log_output``, ``debug``, ``minimum_chunk_size``).
    :raises RuntimeError: if the process does not run on eventlet.
    """
    _require_eventlet("eventlet's WSGI server")
    import eventlet
    import eventlet.wsgi

    # A module global in eventlet: the header line limit of every server.
    eventlet.wsgi.MAX_HEADER_LINE = max_line
    pool = eventlet.GreenPool(max_clients)
    thread = eventlet.spawn(
        eventlet.wsgi.server,
        sock,
        app,
        log=log,
        protocol=protocol,
        custom_pool=pool,
        url_length_limit=max_line,
        socket_timeout=socket_timeout,
        **options,
    )
    return GreenWSGIServer(thread, pool)
