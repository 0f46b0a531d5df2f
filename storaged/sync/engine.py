"""The sync engine: a container's change log turned into requests to its target.

For every container with ``X-Container-Sync-To`` and ``X-Container-Sync-Key``,
each sync worker keeps two row ids in the container's database, as Swift's
container-sync does (:meth:`~storaged.catalog.ContainerBroker.get_sync_points`):

``point1``
    new rows up to here were looked at, and this worker's share of them was
    confirmed by the target;
``point2``
    rows up to here were re-checked: the rows the *other* workers were to
    push are on the target too.

A worker's share of the new rows is decided by a hash of the object's path,
modulo the number of members of the sync group (from coordination), equal
to the worker's ordinal among the sorted member ids (Swift uses the ring's
replica ordinal the same way).  One pass over a container has two stages:

1. **re-check** rows ``point2 < row <= point1``: the rows this worker did
   not push itself are checked (HEAD, then PUT if the target is older, or
   DELETE); ``point2`` advances.  If a worker died before pushing its share,
   the others push it here.
2. **new rows** ``row > point1``: this worker's share is pushed, the other
   rows are left to their owners (and to stage 1 of the next pass);
   ``point1`` advances.

Worked example, two workers ``w0`` and ``w1``, rows 1..6 where w0 owns
1, 3, 4 and w1 owns 2, 5, 6; w1 is SIGKILLed after pushing 2::

    pass 1  w0: new rows -> pushes 1, 3, 4        point1 = 6, point2 = -1
            w1: new rows -> pushes 2, dies        point1 = 2
    pass 2  w0 (alone now): re-check 2, 5, 6      2 is on the target: HEAD
            only; 5 and 6 are not: PUT             point2 = 6

Per row: a tombstone is a DELETE (404 and 409 are success: absent, or the
target holds something newer); a live row is a HEAD, then -- unless the
target's ``X-Timestamp`` is the same or newer -- a PUT of the object data
with its timestamp, etag, content type and user metadata (``X-Delete-At``
too), streamed from the object store; a symlink goes as a link (its
``X-Symlink-Target*`` headers, :func:`link_headers`).  An object already expired is not
sent: its reaping (a delete row at the expiry's timestamp) follows.

Rows are processed ``concurrency`` at a time (green threads, persistent
connections), but a sync point only advances over a contiguous run of
finished rows: if row 7 is still in flight (or failed) when rows 8..40 are
done, the point stays at 6.  It is saved every second and at the end, so a
crash (SIGKILL) loses at most the work since the last save, and never makes
the point run ahead of what the target confirmed.  A failed row pins its
point and is retried on the next pass; a container's pass stops when its
time budget (``container_time``) is used up or after ``max_failures``
failed rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import dataclasses
import hashlib
import logging
import queue
import struct
import threading
import time
from typing import Any
from typing import Final

from storaged import concurrency
from storaged import exception
from storaged.catalog import ObjectRow
from storaged.catalog import Timestamp
from storaged.catalog.interface import CatalogAPI
from storaged.catalog.interface import ContainerBrokerAPI
from storaged.objects import expiry
from storaged.objects.repository import ObjectRepository
from storaged.sync import client as client_mod
from storaged.sync import realms as realms_mod

LOG = logging.getLogger(__name__)

#: Objects up to this size are read whole before the PUT (one blocking call).
SMALL_OBJECT: Final = 1 << 20
#: Seconds between two saves of the sync points during a stage.
SAVE_EVERY: Final = 1.0
#: Headers of an object's metadata never copied to the target (the PUT sets
#: them itself, or they are hop-by-hop).
_NOT_COPIED: Final = frozenset({
    "content-length", "content-type", "etag", "x-timestamp", "connection",
    "transfer-encoding", "host", "date", "last-modified",
    "x-container-sync-auth", "x-container-sync-key",
})

#: A symlink's target, kept as object system metadata, goes as the headers
#: Swift's ``symlink`` middleware takes (a storaged or Swift receiver makes a
#: link of them); the other ``X-Object-Sysmeta-Symlink-*`` keys are the
#: sender's own and stay behind.
_LINK_HEADERS: Final = {
    "x-object-sysmeta-symlink-target": "X-Symlink-Target",
    "x-object-sysmeta-symlink-target-account": "X-Symlink-Target-Account",
    "x-object-sysmeta-symlink-target-etag": "X-Symlink-Target-Etag",
    "x-object-sysmeta-symlink-target-bytes": "X-Symlink-Target-Bytes",
}
_LINK_PREFIX: Final = "x-object-sysmeta-symlink-"


def link_headers(headers: dict[str, str]) -> dict[str, str]:
    """Return an object's headers with a symlink's as a link's PUT sends them."""
    result = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(_LINK_PREFIX):
            if lower in _LINK_HEADERS:
                result[_LINK_HEADERS[lower]] = value
            continue
        result[name] = value
    return result


# Row states in the window of a stage.
_RUNNING: Final = 0
_DONE: Final = 1
_FAILED: Final = 2


def owner_ordinal(account: str, container: str, name: str, members: int) -> int:
    """Return the ordinal of the worker that pushes an object's new rows.

    The first four bytes of the MD5 of ``/account/container/name``, as a
    big-endian integer, modulo the number of members (Swift's split by
    ``hash_path``, without the cluster's hash prefix and suffix).
    """
    digest = hashlib.md5(  # noqa: S324 (a split, not security)
        ("/%s/%s/%s" % (account, container, name)).encode("utf-8", "surrogateescape")
    ).digest()
    return int(struct.unpack(">I", digest[:4])[0]) % max(1, members)


@dataclasses.dataclass(frozen=True)
class View:
    """The sync group as one worker sees it for one container pass.

    :ivar me: this worker's member id.
    :ivar members: every member id, sorted (``me`` among them).
    """

    me: str
    members: tuple[str, ...]

    @classmethod
    def of(cls, me: str, members: Iterable[str]) -> View:
        """Build a view; ``me`` is added if the group does not list it yet."""
        return cls(me, tuple(sorted(set(members) | {me})))

    @property
    def ordinal(self) -> int:
        """This worker's place among the members."""
        return self.members.index(self.me)

    def mine(self, account: str, container: str, name: str) -> bool:
        """Tell whether this worker pushes the object's new rows."""
        if len(self.members) == 1:
            return True
        return owner_ordinal(account, container, name, len(self.members)) == (
            self.ordinal
        )


@dataclasses.dataclass
class SyncSettings:
    """How the engine works (``[sync]`` options).

    :ivar concurrency: rows in flight per container.
    :ivar container_time: seconds of budget per container and pass.
    :ivar batch_size: rows per catalog query.
    :ivar max_failures: failed rows after which a container's pass stops.
    """

    concurrency: int = 32
    container_time: float = 60.0
    batch_size: int = 1000
    max_failures: int = 100


@dataclasses.dataclass
class ContainerReport:
    """What one pass did to one container (Swift's "Container sync report")."""

    account: str
    container: str
    worker: str
    target: str = ""
    started_at: float = dataclasses.field(default_factory=time.time)
    ended_at: float = 0.0
    puts: int = 0
    deletes: int = 0
    skips: int = 0
    superseded: int = 0
    failures: int = 0
    bytes: int = 0
    rechecked: int = 0
    new_rows: int = 0
    point1: int = -1
    point2: int = -1
    max_row: int = -1
    stopped: str = ""
    errors: list[str] = dataclasses.field(default_factory=list)
    _lock: Any = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, counter: str, n: int = 1) -> None:
        """Add to a counter (safe from the row tasks)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def error(self, text: str) -> None:
        """Count a failed row and keep its message (a few only)."""
        with self._lock:
            self.failures += 1
            if len(self.errors) < 5:
                self.errors.append(text[:300])

    @property
    def synced(self) -> int:
        """Rows the target confirmed this pass (puts, deletes, up to date)."""
        return self.puts + self.deletes + self.skips + self.superseded

    @property
    def duration(self) -> float:
        """Seconds the pass over the container took."""
        return max(0.0, (self.ended_at or time.time()) - self.started_at)

    @property
    def rate(self) -> float:
        """Rows confirmed per second in this pass."""
        return self.synced / self.duration if self.duration > 0 else 0.0

    @property
    def rows_behind(self) -> int:
        """Row ids after ``point1``: an upper bound of the rows still to push."""
        return max(0, self.max_row - self.point1)

    @property
    def ok(self) -> bool:
        """No row failed."""
        return self.failures == 0

    def summary(self) -> str:
        """Swift's per-container report line, plus what storaged adds."""
        return (
            "Container sync report: %s/%s -> %s, worker %s, %.2fs, puts=%d "
            "deletes=%d skips=%d superseded=%d failures=%d bytes=%d rechecked=%d "
            "new_rows=%d point1=%d point2=%d max_row=%d%s" % (
                self.account, self.container, self.target, self.worker,
                self.duration, self.puts, self.deletes, self.skips,
                self.superseded, self.failures, self.bytes, self.rechecked,
                self.new_rows, self.point1, self.point2, self.max_row,
                " stopped=%s" % self.stopped if self.stopped else "",
            )
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record (no secrets)."""
        return {
            "account": self.account,
            "container": self.container,
            "worker": self.worker,
            "target": self.target,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": round(self.duration, 3),
            "puts": self.puts,
            "deletes": self.deletes,
            "skips": self.skips,
            "superseded": self.superseded,
            "failures": self.failures,
            "bytes": self.bytes,
            "rechecked": self.rechecked,
            "new_rows": self.new_rows,
            "point1": self.point1,
            "point2": self.point2,
            "max_row": self.max_row,
            "rows_behind": self.rows_behind,
            "rate": round(self.rate, 2),
            "stopped": self.stopped,
            "errors": list(self.errors),
        }


class _Window:
    """Rows of one stage in row order, and the point below the first unfinished.

    ``point`` only moves over a contiguous run of finished rows; a failed
    row stops it for the rest of the stage.
    """

    def __init__(self, point: int) -> None:
        self.point = point
        self._rows: deque[list[int]] = deque()
        self._cond = threading.Condition()
        self.running = 0

    def add(self, row_id: int, state: int) -> list[int]:
        entry = [row_id, state]
        with self._cond:
            self._rows.append(entry)
            if state == _RUNNING:
                self.running += 1
            self._advance()
        return entry

    def finish(self, entry: list[int], ok: bool) -> None:
        with self._cond:
            entry[1] = _DONE if ok else _FAILED
            self.running -= 1
            self._advance()
            self._cond.notify_all()

    def _advance(self) -> None:
        while self._rows and self._rows[0][1] == _DONE:
            self.point = self._rows.popleft()[0]

    def wait_below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` rows are running."""
        with self._cond:
            while self.running >= limit:
                self._cond.wait(1.0)

    @property
    def pinned(self) -> bool:
        """A failed row holds the point back."""
        return bool(self._rows) and self._rows[0][1] == _FAILED


class SyncEngine:
    """Pushes containers' changes to their targets; one instance per worker.

    :param catalog: the container catalog (change logs and sync points).
    :param objects: where the object data is read from.
    :param realms: the container-sync realms.
    :param http: the HTTP client (persistent connections).
    :param worker: this worker's id (its coordination member id); the
        sync points are recorded under it.
    :param settings: concurrency and budgets.
    :param allowed_sync_hosts: hosts allowed in full-URL targets.
    :param clock: ``time.monotonic`` (tests replace it).
    """

    def __init__(
        self,
        catalog: CatalogAPI,
        objects: ObjectRepository,
        realms: realms_mod.Realms,
        http: client_mod.HttpClient,
        worker: str,
        settings: SyncSettings | None = None,
        allowed_sync_hosts: Iterable[str] = ("127.0.0.1",),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.objects = objects
        self.realms = realms
        self.http = http
        self.worker = worker
        self.settings = settings or SyncSettings()
        self.allowed_sync_hosts = tuple(allowed_sync_hosts)
        self._clock = clock
        # Per container: row ranges whose new rows this process pushed under
        # a view, so the re-check stage can leave its own rows out.  Lost on
        # restart: then every row of the re-check range is checked (safe).
        self._pushed: dict[tuple[str, str], list[tuple[int, int, View]]] = {}

    def __repr__(self) -> str:
        return "<SyncEngine worker=%s>" % self.worker

    # -- one container -------------------------------------------------------

    def sync_container(
        self,
        account: str,
        container: str,
        view: View | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> ContainerReport:
        """Make one pass over a container; return what it did.

        :param view: the sync group now (this worker alone when None).
        :param stopping: returns True when the daemon is asked to stop: no
            new row is started, the points are saved.
        :raises storaged.sync.realms.InvalidSyncTo: unusable target.
        :raises storaged.exception.StoragedError: the container cannot be read.
        """
        view = view or View.of(self.worker, ())
        report = ContainerReport(account, container, self.worker)
        broker = self.catalog.container(account, container)
        try:
            self._sync(broker, view, report, stopping)
        finally:
            report.ended_at = time.time()
            broker.close()
        LOG.info("%s", report.summary())
        return report

    def _sync(
        self,
        broker: ContainerBrokerAPI,
        view: View,
        report: ContainerReport,
        stopping: Callable[[], bool],
    ) -> None:
        run = concurrency.run_blocking
        info = run(broker.info)
        report.max_row = info.max_row
        if not info.syncing:
            report.stopped = "not syncing"
            return
        target = realms_mod.parse_sync_to(
            info.sync_to, self.realms, self.allowed_sync_hosts
        )
        if target is None:
            report.stopped = "not syncing"
            return
        report.target = info.sync_to
        tclient = client_mod.TargetClient(self.http, target, info.sync_key, self.realms)
        point1, point2 = run(broker.get_sync_points, self.worker)
        report.point1, report.point2 = point1, point2
        key = (report.account, report.container)
        pushed = self._pushed.setdefault(key, [])
        if point2 > point1:  # never expected; be safe: re-check everything
            point2 = -1
        deadline = self._clock() + self.settings.container_time

        def save(p1: int | None = None, p2: int | None = None) -> None:
            run(broker.set_sync_points, self.worker, p1, p2)
            if p1 is not None:
                report.point1 = p1
            if p2 is not None:
                report.point2 = p2

        # Stage 1: re-check the rows the other workers were to push.
        if point2 < point1:
            def recheck(row: ObjectRow) -> bool:
                return not _pushed_by_me(pushed, row, report.account,
                                         report.container)

            point2 = self._stage(
                broker, tclient, report, point2, point1, recheck,
                lambda p: save(p2=p), deadline, stopping, "rechecked",
            )
            if point2 >= point1:
                # Everything up to point1 is re-checked: forget the ranges.
                pushed[:] = [r for r in pushed if r[1] > point1]
        if report.stopped:
            return

        # Stage 2: new rows, this worker's share.
        start = point1
        others = [0]
        in_step = point2 >= point1

        def share(row: ObjectRow) -> bool:
            if view.mine(report.account, report.container, row.name):
                return True
            others[0] += 1
            return False

        def save1(p: int) -> None:
            # While every new row so far was this worker's, nothing needs a
            # re-check: point2 follows point1.
            if in_step and others[0] == 0:
                save(p1=p, p2=p)
            else:
                save(p1=p)

        point1 = self._stage(
            broker, tclient, report, start, None, share, save1, deadline,
            stopping, "new_rows",
        )
        if point1 > start:
            pushed.append((start, point1, view))
        # Ranges at or below point2 need no re-check any more.
        pushed[:] = [r for r in pushed if r[1] > report.point2]

    def _stage(
        self,
        broker: ContainerBrokerAPI,
        tclient: client_mod.TargetClient,
        report: ContainerReport,
        start: int,
        end: int | None,
        wanted: Callable[[ObjectRow], bool],
        save: Callable[[int], None],
        deadline: float,
        stopping: Callable[[], bool],
        counter: str,
    ) -> int:
        """Process rows ``start < row <= end`` (no end: up to the last row).

        Rows ``wanted`` returns False for count as finished at once.
        :returns: the new point (the last row of the contiguous finished run).
        """
        window = _Window(start)
        saved = start
        last_save = self._clock()
        limit = self.settings.concurrency
        todo: queue.Queue[tuple[ObjectRow, list[int]] | None] = queue.Queue()
        workers: list[concurrency.Task] = []

        def work() -> None:
            while True:
                item = todo.get()
                if item is None:
                    return
                row, entry = item
                ok = self._row(broker, tclient, report, row)
                window.finish(entry, ok)

        def checkpoint(force: bool = False) -> None:
            nonlocal saved, last_save
            now = self._clock()
            if window.point != saved and (force or now - last_save >= SAVE_EVERY):
                point = window.point
                save(point)
                saved, last_save = point, now

        try:
            for row in self._rows(broker, start, end):
                if stopping():
                    report.stopped = "stopping"
                    break
                if self._clock() >= deadline:
                    report.stopped = "container_time"
                    break
                if report.failures >= self.settings.max_failures:
                    report.stopped = "max_failures"
                    break
                if not wanted(row):
                    window.add(row.row_id, _DONE)
                    checkpoint()
                    continue
                report.add(counter)
                window.wait_below(limit)
                entry = window.add(row.row_id, _RUNNING)
                if len(workers) < limit:
                    workers.append(concurrency.spawn(work))
                todo.put((row, entry))
                checkpoint()
        finally:
            for _ in workers:
                todo.put(None)
            for task in workers:
                task.wait()
            checkpoint(force=True)
        return window.point

    def _rows(
        self, broker: ContainerBrokerAPI, start: int, end: int | None
    ) -> Iterator[ObjectRow]:
        point = start
        size = self.settings.batch_size
        while True:
            rows = concurrency.run_blocking(broker.get_items_since, point, size)
            for row in rows:
                if end is not None and row.row_id > end:
                    return
                yield row
            if len(rows) < size:
                return
            point = rows[-1].row_id

    # -- one row ---------------------------------------------------------------

    def _row(
        self,
        broker: ContainerBrokerAPI,
        tclient: client_mod.TargetClient,
        report: ContainerReport,
        row: ObjectRow,
    ) -> bool:
        """Push one row; True when the target confirmed it (never raises)."""
        try:
            if row.deleted:
                self._delete(tclient, report, row)
            else:
                self._put(broker, tclient, report, row)
        except Exception as err:
            # Per-row isolation: counted, logged once, retried next pass.
            report.error("%s: %s" % (row.name, err))
            if isinstance(err, client_mod.SyncRequestError | client_mod.TargetError):
                LOG.warning("Sync %s/%s row %d failed: %s", report.account,
                            report.container, row.row_id, err)
            else:
                LOG.exception("Sync %s/%s row %d (%s) failed", report.account,
                              report.container, row.row_id, row.name)
            return False
        return True

    def _delete(
        self, tclient: client_mod.TargetClient, report: ContainerReport, row: ObjectRow
    ) -> None:
        response = tclient.delete(row.name, row.created_at.internal)
        # 404: absent; 409: the target holds something newer.  Both are
        # what a delete at this timestamp leaves (Swift since 2.25.0).
        if response.status // 100 != 2 and response.status not in (404, 409):
            raise tclient.fail("DELETE", row.name, response)
        report.add("deletes")

    def _put(
        self,
        broker: ContainerBrokerAPI,
        tclient: client_mod.TargetClient,
        report: ContainerReport,
        row: ObjectRow,
    ) -> None:
        timestamp = row.created_at.internal
        response = tclient.head(row.name, timestamp)
        if response.status // 100 == 2:
            remote = response.header("x-timestamp")
            try:
                if remote and Timestamp(remote) >= row.created_at:
                    report.add("skips")
                    return
            except ValueError:
                pass  # an unreadable timestamp: push ours
        elif response.status != 404:
            raise tclient.fail("HEAD", row.name, response)
        current = self._current(broker, row)
        if current is None:
            # A newer change replaced the row: it has a larger row id and
            # is pushed when its turn comes.
            report.add("superseded")
            return
        if expiry.is_expired(current.metadata):
            # Gone for clients already; its reaping is a delete row of its own.
            report.add("skips")
            return
        try:
            body, size = self._body(broker, current)
        except exception.ObjectNotFound:
            if self._current(broker, row) is None:
                report.add("superseded")
                return
            raise
        headers = link_headers({
            name: value
            for name, value in current.metadata.items()
            if name.lower() not in _NOT_COPIED
        })
        headers["Content-Length"] = str(size)
        # A static large object's manifest goes as the manifest (its JSON,
        # X-Static-Large-Object and its size and ETag as system metadata),
        # as Swift's container-sync sends it; Swift's internal size hint
        # stays out of the Content-Type, as Swift's proxy strips it.
        headers["Content-Type"] = ";".join(
            p for p in current.content_type.split(";")
            if not p.strip().startswith("swift_bytes=")
        ).strip()
        if current.etag:
            headers["Etag"] = current.etag
        response = tclient.put(row.name, timestamp, headers, body)
        if response.status // 100 != 2:
            raise tclient.fail("PUT", row.name, response)
        report.add("puts")
        report.add("bytes", size)

    @staticmethod
    def _current(broker: ContainerBrokerAPI, row: ObjectRow) -> ObjectRow | None:
        """The object's row now, if it is still the change being pushed."""
        current = concurrency.run_blocking(broker.get_object, row.name)
        if current is None or current.created_at != row.created_at:
            return None
        return current

    def _body(
        self, broker: ContainerBrokerAPI, row: ObjectRow
    ) -> tuple[client_mod.Body, int]:
        """Open the object's data: bytes for a small object, else chunks."""
        cache = self.objects.cache
        driver = self.objects.backends.get(row.backend)

        def open_data() -> tuple[Iterator[bytes], int]:
            if cache is not None and cache.serves(row.backend):
                chunks, n = cache.read_object(
                    broker.account, broker.container, row, driver, verify=True
                )
            else:
                chunks, n = driver.get(row.location, verify=True)
            return iter(chunks), n

        if row.size <= SMALL_OBJECT:
            def read_all() -> tuple[bytes, int]:
                chunks, n = open_data()
                data = b"".join(chunks)
                return data, n

            # One trip to the thread pool for a local back end's object; a
            # network client (and the cache, which may fill from one) is
            # green under eventlet: it runs here, on the hub's thread.
            local = driver.BLOCKING_IO and not (
                cache is not None and cache.serves(row.backend))
            data, n = concurrency.run_blocking(read_all) if local else read_all()
            if len(data) != n:
                raise exception.StoragedError(
                    "short read of %s: %d of %d bytes" % (row.name, len(data), n)
                )
            return data, n
        chunks, n = concurrency.run_blocking(open_data)
        first = [True]

        def stream() -> Iterator[bytes]:
            it = chunks if first[0] else concurrency.run_blocking(open_data)[0]
            first[0] = False
            sentinel = b""
            while True:
                chunk = concurrency.run_blocking(next, it, sentinel)
                if not chunk:
                    return
                yield chunk

        return stream, n


def _pushed_by_me(
    pushed: list[tuple[int, int, View]], row: ObjectRow, account: str, container: str
) -> bool:
    """Tell whether this process pushed the row itself (in stage 2)."""
    for low, high, view in pushed:
        if low < row.row_id <= high:
            return view.mine(account, container, row.name)
    return False
