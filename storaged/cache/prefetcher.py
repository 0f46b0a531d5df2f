"""The prefetch queue and the prefetcher that fills it.

The queue is ``cache_dir/queue/``: one small JSON file per queued object,
named ``<enqueue time in ns, 20 digits>-<key>`` so that the names sort in
queue order, and written to a temporary name then renamed (a crash never
leaves half an entry).  ``<key>`` is derived from what is queued; queuing
the same object twice keeps the first place.  A queued item names either a
catalog object, ``{"object": "ACCOUNT/CONTAINER/OBJECT"}``, or a back end
location, ``{"backend": ID, "location": LOCATION}``.

The prefetcher takes the items in queue order and fills each through the
same code as a read (single flight, checks, admission).  Every item is
isolated: a failure is logged once and counted, its attempt recorded in
the item, and the rest go on.  An item is dropped once filled or already
cached, at once when it can never succeed (no such object, a back end that
is not cached, a malformed item), and after :data:`MAX_ATTEMPTS` failures
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from typing import TYPE_CHECKING
from typing import Any

from storaged import concurrency
from storaged import exception
from storaged.cache.engine import ObjectCache
from storaged.cache.layout import QUEUE
from storaged.cache.layout import new_token
from storaged.cache.ref import CacheError
from storaged.cache.ref import CacheRef
from storaged.cache.ref import Fetch

if TYPE_CHECKING:
    from storaged.common.daemon import PassContext

LOG = logging.getLogger(__name__)

#: failures of one item before it is dropped
MAX_ATTEMPTS = 5
#: longest object name or location accepted in a queued item
MAX_TARGET_LENGTH = 8192

_ITEM_RE = re.compile(r"([0-9]{20})-([0-9a-f]{16})\Z")


class InvalidQueueItem(exception.InvalidName):
    """A queued item (or one being queued) is malformed."""

    msg_fmt = "Invalid cache queue item: %(reason)s"


class NotCacheable(CacheError):
    """The object lives on a back end that is not read through the cache."""

    msg_fmt = "%(what)s is on back end %(backend)s, which has cache = false"


def check_target(target: object) -> dict[str, str]:
    """Return a queue target if it is well formed.

    :raises InvalidQueueItem: with the reason.
    """
    if not isinstance(target, dict):
        raise InvalidQueueItem(reason="an item must be a JSON object")
    if set(target) == {"object"}:
        value = target["object"]
        if not isinstance(value, str) or value.count("/") < 2:
            raise InvalidQueueItem(reason="expected ACCOUNT/CONTAINER/OBJECT")
        account, container, _name = value.split("/", 2)
        if not account or not container or not _name:
            raise InvalidQueueItem(reason="expected ACCOUNT/CONTAINER/OBJECT")
    elif set(target) == {"backend", "location"}:
        from storaged.objectstore import names

        problem = names.backend_id_problem(str(target["backend"]))
        if problem:
            raise InvalidQueueItem(reason=problem)
        value = target["location"]
        if not isinstance(value, str) or not value:
            raise InvalidQueueItem(reason="a location must be a non-empty string")
    else:
        raise InvalidQueueItem(
            reason="expected {'object': ...} or {'backend': ..., 'location': ...}")
    if len(value) > MAX_TARGET_LENGTH:
        raise InvalidQueueItem(reason="longer than %d characters" % MAX_TARGET_LENGTH)
    if "\x00" in value:
        raise InvalidQueueItem(reason="must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQueueItem(reason="not valid UTF-8") from None
    return {k: str(v) for k, v in target.items()}


def target_key(target: dict[str, str]) -> str:
    """Return the 16-hex-digit key of a target (same object, same key)."""
    raw = json.dumps(target, sort_keys=True).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:16]


def describe(target: dict[str, str]) -> str:
    """Return a target as people read it."""
    if "object" in target:
        return target["object"]
    return "%s:%s" % (target.get("backend"), target.get("location", "")[:200])


@dataclasses.dataclass
class QueueItem:
    """One queued object."""

    name: str
    target: dict[str, str]
    queued_at: float
    attempts: int = 0
    last_error: str | None = None

    def describe(self) -> str:
        """What is queued, for logs."""
        return describe(self.target)

    def as_dict(self) -> dict[str, Any]:
        """Return plain data (``--format json``)."""
        return dataclasses.asdict(self)


class Queue:
    """The prefetch queue of a cache directory (blocking calls)."""

    def __init__(self, cache_dir: str) -> None:
        self.directory = os.path.join(cache_dir, QUEUE)
        os.makedirs(self.directory, mode=0o750, exist_ok=True)

    def _write(self, name: str, data: dict[str, Any]) -> None:
        tmp = os.path.join(self.directory, ".tmp-" + new_token())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        try:
            os.write(fd, json.dumps(data, sort_keys=True).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(self.directory, name))

    def add(self, target: dict[str, str]) -> tuple[QueueItem, bool]:
        """Queue a target; return the item and whether it was added.

        :raises InvalidQueueItem: a malformed target (nothing written).
        """
        target = check_target(target)
        key = target_key(target)
        for item in self.items():
            if item.name.endswith("-" + key):
                return item, False
        now = time.time_ns()
        name = "%020d-%s" % (now, key)
        item = QueueItem(name, target, now / 1e9)
        self._write(name, {"target": target, "queued_at": item.queued_at,
                           "attempts": 0, "last_error": None})
        return item, True

    def items(self) -> list[QueueItem]:
        """Return the queue, in queue order (malformed files are skipped)."""
        result = []
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        for name in names:
            if not _ITEM_RE.match(name):
                continue
            item = self._read(name)
            if item is not None:
                result.append(item)
        return result

    def _read(self, name: str) -> QueueItem | None:
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, OSError):
            return None
        try:
            raw = os.read(fd, 2 * MAX_TARGET_LENGTH + 4096)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw)
            target = check_target(data["target"])
            return QueueItem(
                name, target, float(data.get("queued_at", 0.0)),
                int(data.get("attempts", 0)), data.get("last_error"),
            )
        except (ValueError, KeyError, TypeError, exception.InvalidName) as err:
            LOG.warning("Cache queue item %s is malformed (%s): dropped", name, err)
            self.remove(name)
            return None

    def remove(self, name: str) -> bool:
        """Remove an item; True if it was there."""
        if not _ITEM_RE.match(name):
            raise InvalidQueueItem(reason="%r is not a queue item name" % name[:80])
        try:
            os.unlink(os.path.join(self.directory, name))
        except FileNotFoundError:
            return False
        return True

    def remove_target(self, target: dict[str, str]) -> int:
        """Remove every item queuing ``target``; return how many."""
        key = target_key(check_target(target))
        return sum(
            self.remove(item.name) for item in self.items()
            if item.name.endswith("-" + key)
        )

    def record_failure(self, item: QueueItem, error: str) -> int:
        """Count a failed attempt in the item; return the attempts so far."""
        item.attempts += 1
        item.last_error = error[:500]
        if os.path.exists(os.path.join(self.directory, item.name)):
            self._write(item.name, {"target": item.target,
                                    "queued_at": item.queued_at,
                                    "attempts": item.attempts,
                                    "last_error": item.last_error})
        return item.attempts


#: turns a queued target into what the cache needs to fill it
Resolver = Callable[[dict[str, str]], "tuple[CacheRef, Fetch]"]

#: errors after which an item can never succeed
_PERMANENT = (
    exception.InvalidName,
    exception.ObjectNotFound,
    exception.ContainerNotFound,
    exception.UnknownBackend,
    exception.InvalidLocation,
    NotCacheable,
)


class Prefetcher:
    """Fills the queued objects, in queue order; the ``cache-prefetch`` worker.

    :param cache: the cache.
    :param resolve: returns the :class:`CacheRef` and the back end read of
        a queued target; raises ``ObjectNotFound``, ``NotCacheable``...
    """

    name = "cache-prefetch"

    def __init__(self, cache: ObjectCache, resolve: Resolver) -> None:
        self.cache = cache
        self.resolve = resolve
        self.queue = Queue(cache.cache_dir)

    def run_pass(self, ctx: PassContext) -> None:
        """One pass for :class:`~storaged.common.daemon.PeriodicService`."""
        items = concurrency.run_blocking(self.queue.items)
        ctx.count("queued", len(items))

        def one(item: QueueItem) -> None:
            outcome = self.prefetch(item)
            ctx.count(outcome)

        ctx.each(items, one, describe=QueueItem.describe)

    def prefetch(self, item: QueueItem) -> str:
        """Fill one item; return ``filled`` or ``cached``.

        :raises Exception: the item failed (it is kept for a later pass, or
            dropped if it can never succeed or failed too often).
        """
        try:
            ref, fetch = self.resolve(item.target)
            outcome = self.cache.fill(ref, fetch)
        except Exception as err:
            attempts = concurrency.run_blocking(
                self.queue.record_failure, item, str(err) or type(err).__name__)
            if isinstance(err, _PERMANENT) or attempts >= MAX_ATTEMPTS:
                LOG.error("Dropping %s from the cache queue after %d attempt(s): %s",
                          item.describe(), attempts, err)
                concurrency.run_blocking(self.queue.remove, item.name)
            raise
        concurrency.run_blocking(self.queue.remove, item.name)
        LOG.info("Prefetched %s: %s", item.describe(), outcome)
        return outcome
