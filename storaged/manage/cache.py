"""``storaged-manage cache``: the object cache of this node.

::

    cache list [--sort last-access|hits|size] [--limit N]
    cache stats
    cache queue [ACCOUNT/CONTAINER/OBJECT ...] [--remove]
    cache delete ID|ACCOUNT/CONTAINER/OBJECT ... [--dry-run]
    cache delete --all [--dry-run]
    cache prune [--dry-run]
    cache clean [--dry-run]

Every command takes ``--format json``.  ``prune`` and ``clean`` run one
pass through exactly the code of ``storaged-cache`` (and hold the same
lock); they exit 1 when the pass failed.  ``delete`` takes entry ids (as
``list`` shows them) or object names; an id that is not 64 hexadecimal
digits is refused before any file is touched.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

from oslo_config import cfg

from storaged import exception
from storaged.exception import UsageError
from storaged.manage import output

EXIT_OK = 0
EXIT_FAILED = 1

SORT_KEYS = ("last-access", "hits", "size")


def add_parsers(subparsers: Any) -> None:
    """Declare the ``cache`` command and its actions."""
    p = subparsers.add_parser(
        "cache", help="list, inspect, queue, delete, prune and clean cached objects"
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    a = sub.add_parser("list", help="list cache entries, most recently read first")
    a.add_argument("--sort", choices=SORT_KEYS, default="last-access",
                   help="order of the listing (largest first for hits and size)")
    a.add_argument("--limit", type=int, default=None, help="at most N entries")
    output.add_format(a)
    a = sub.add_parser("stats", help="show the cache's size, limits, fills in "
                       "progress, failed fills and queue")
    output.add_format(a)
    a = sub.add_parser("queue", help="queue objects for prefetching, or show the "
                       "queue")
    a.add_argument("targets", metavar="ACCOUNT/CONTAINER/OBJECT", nargs="*",
                   help="objects to queue (none: show the queue)")
    a.add_argument("--remove", action="store_true",
                   help="take the objects out of the queue instead")
    output.add_format(a)
    a = sub.add_parser("delete", help="remove entries (and their queue items)")
    a.add_argument("targets", metavar="ID|ACCOUNT/CONTAINER/OBJECT", nargs="*")
    a.add_argument("--all", action="store_true", help="remove every entry")
    a.add_argument("--dry-run", action="store_true",
                   help="only show what would be removed")
    output.add_format(a)
    for verb, text in (
        ("prune", "one prune pass: evict least recently read entries down to the "
                  "low watermark"),
        ("clean", "one clean pass: remove failed fills past their grace and dead "
                  "fills past the stall time"),
    ):
        a = sub.add_parser(verb, help=text)
        a.add_argument("--dry-run", action="store_true",
                       help="only show what would be removed")
        output.add_format(a)


# -- helpers -------------------------------------------------------------------


def _open(conf: cfg.ConfigOpts) -> Any:
    from storaged.cache import daemon

    return daemon.open_cache(conf)


def _when(ns: int | float | None) -> str:
    if not ns:
        return "-"
    seconds = ns / 1e9 if ns > 1e12 else float(ns)
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _object_target(text: str) -> dict[str, str]:
    if text.count("/") < 2:
        raise UsageError(reason="expected ACCOUNT/CONTAINER/OBJECT, got %r" % text[:80])
    return {"object": text}


def _resolve_object(conf: cfg.ConfigOpts, text: str) -> str | None:
    """Return the entry id of a catalog object (None if it has no row)."""
    from storaged.cache import entry_id_for
    from storaged.catalog import validate_account
    from storaged.catalog import validate_container
    from storaged.catalog import validate_object
    from storaged.catalog.factory import open_catalog

    account, container, name = text.split("/", 2)
    account = validate_account(account)
    container = validate_container(container)
    name = validate_object(name)
    catalog = open_catalog(conf)
    try:
        broker = catalog.container(account, container)
        try:
            row = broker.get_object(name)
        finally:
            broker.close()
    except exception.ContainerNotFound:
        row = None
    finally:
        catalog.close()
    return None if row is None else entry_id_for(row.backend, row.location)


# -- commands ------------------------------------------------------------------


def cache_list(conf: cfg.ConfigOpts) -> int:
    """``cache list``."""
    args = conf.command
    if args.limit is not None and args.limit < 0:
        raise UsageError(reason="--limit %d: must be 0 or more" % args.limit)
    cache = _open(conf)
    try:
        entries = cache.entries()
    finally:
        cache.close()
    if args.sort == "hits":
        entries.sort(key=lambda e: e.hits, reverse=True)
    elif args.sort == "size":
        entries.sort(key=lambda e: e.size, reverse=True)
    if args.limit is not None:
        entries = entries[: args.limit]
    data = [e.as_dict() for e in entries]

    def human() -> None:
        if not entries:
            print("The cache is empty.")
            return
        output.table([("ID", "BYTES", "HITS", "LAST READ", "SOURCE")] + [
            (e.id, str(e.size), str(e.hits), _when(e.last_access), e.source or "-")
            for e in entries
        ])

    output.emit(args.format, data, human)
    return EXIT_OK


def cache_stats(conf: cfg.ConfigOpts) -> int:
    """``cache stats``."""
    from storaged.cache import Queue
    from storaged.cache import pruner

    args = conf.command
    cache = _open(conf)
    try:
        snap = pruner.scan(cache)
        hits = sum(e.hits for e in cache.entries())
        failed = cache.invalid_files()
        queued = len(Queue(cache.cache_dir).items())
        fs = os.statvfs(cache.cache_dir)
        data = {
            "cache_dir": cache.cache_dir,
            "metadata_store": cache.meta.kind,
            "backends": sorted(cache.backends),
            "max_size": cache.max_size,
            "low_watermark": cache.low_watermark,
            "target_size": cache.target_size,
            "total_bytes": snap.total,
            "usage": round(snap.total / cache.max_size, 4) if cache.max_size else None,
            "entries": len(snap.entries),
            "entry_bytes": snap.entry_bytes,
            "entries_without_metadata": snap.adopted,
            "hits": hits,
            "incomplete": {"count": snap.incomplete_count,
                           "bytes": snap.incomplete_bytes},
            "invalid": {"count": len(snap.invalid), "bytes": snap.invalid_bytes,
                        "latest": failed[:5]},
            "queued": queued,
            "filesystem": {"free": fs.f_bavail * fs.f_frsize,
                           "size": fs.f_blocks * fs.f_frsize},
        }
    finally:
        cache.close()

    def human() -> None:
        size = output.human_size
        print("Cache directory: %s (metadata in %s)" % (data["cache_dir"],
                                                       data["metadata_store"]))
        print("Back ends:       %s" % (", ".join(data["backends"]) or "none"))
        limit = ("%s, pruned down to %s" % (size(cache.max_size),
                                            size(cache.target_size))
                 if cache.max_size else "none")
        print("Size limit:      %s" % limit)
        usage = " (%.1f%%)" % (100 * data["usage"]) if data["usage"] is not None else ""
        print("Holds:           %s%s" % (size(snap.total), usage))
        print("Entries:         %d (%s), %d hits recorded" % (
            len(snap.entries), size(snap.entry_bytes), hits))
        print("Fills running:   %d (%s)" % (snap.incomplete_count,
                                            size(snap.incomplete_bytes)))
        print("Failed fills:    %d (%s)" % (len(snap.invalid),
                                            size(snap.invalid_bytes)))
        print("Queued:          %d" % queued)
        print("Filesystem:      %s free of %s" % (size(data["filesystem"]["free"]),
                                                  size(data["filesystem"]["size"])))
        for item in failed[:5]:
            print("  failed %s: %s" % (_when(item["failed_at"]),
                                       item["error"] or "no error recorded"))

    output.emit(args.format, data, human)
    return EXIT_OK


def cache_queue(conf: cfg.ConfigOpts) -> int:
    """``cache queue``: add, remove or show queued objects."""
    from storaged.cache import Queue

    args = conf.command
    cache = _open(conf)
    try:
        queue = Queue(cache.cache_dir)
        targets = [_object_target(t) for t in args.targets]
        if not targets:
            items = queue.items()
            data: Any = [i.as_dict() for i in items]

            def human() -> None:
                if not items:
                    print("The prefetch queue is empty.")
                    return
                rows: list[tuple[str, ...]] = [
                    ("QUEUED", "OBJECT", "ATTEMPTS", "LAST ERROR")]
                rows += [(_when(i.queued_at), i.describe(), str(i.attempts),
                          i.last_error or "-") for i in items]
                output.table(rows)
        elif args.remove:
            removed = {t["object"]: queue.remove_target(t) for t in targets}
            data = {"removed": removed}

            def human() -> None:
                for name, n in removed.items():
                    print("%s: %s" % (name, "removed from the queue" if n
                                      else "was not queued"))
        else:
            added = {}
            for t in targets:
                _item, new = queue.add(t)
                added[t["object"]] = new
            data = {"queued": added}

            def human() -> None:
                for name, new in added.items():
                    print("%s: %s" % (name, "queued" if new else "already queued"))
    finally:
        cache.close()
    output.emit(args.format, data, human)
    return EXIT_OK


def cache_delete(conf: cfg.ConfigOpts) -> int:
    """``cache delete``: entries by id or object name, or ``--all``."""
    from storaged.cache import Queue
    from storaged.cache import validate_entry_id

    args = conf.command
    if args.all and args.targets:
        raise UsageError(reason="give entries to delete or --all, not both")
    if not args.all and not args.targets:
        raise UsageError(reason="nothing to delete: give entry ids, object names "
                         "or --all")
    # Every argument is checked before anything is removed.
    wanted: list[tuple[str, str | None]] = []
    for text in args.targets:
        if "/" in text:
            _object_target(text)
            wanted.append((text, _resolve_object(conf, text)))
        else:
            wanted.append((text, validate_entry_id(text)))
    cache = _open(conf)
    results: dict[str, bool] = {}
    try:
        if args.all:
            wanted = [(e.id, e.id) for e in cache.entries()]
        queue = Queue(cache.cache_dir)
        for text, entry_id in wanted:
            results[text] = (
                cache.delete(entry_id, dry_run=args.dry_run) if entry_id else False
            )
            if "/" in text and not args.dry_run:
                queue.remove_target({"object": text})
    finally:
        cache.close()
    data = {"dry_run": args.dry_run, "deleted": results}

    def human() -> None:
        verb = "would be removed" if args.dry_run else "removed"
        if not results:
            print("The cache is empty.")
        for text, done in results.items():
            print("%s: %s" % (text, verb if done else "not cached"))

    output.emit(args.format, data, human)
    return EXIT_OK


def _lease_store(conf: cfg.ConfigOpts) -> Any:
    from storaged.cache import daemon

    return daemon.open_lease_store(conf)


def cache_prune(conf: cfg.ConfigOpts) -> int:
    """``cache prune``: one prune pass (the daemon's code and lock)."""
    from storaged.cache import Pruner

    args = conf.command
    cache = _open(conf)
    store = _lease_store(conf)
    progress = output.Progress("prune", None, fmt=args.format, unit="entry")
    try:
        result = Pruner(cache, store).prune(dry_run=args.dry_run,
                                            progress=progress.update_to)
    finally:
        progress.finish()
        cache.close()
        if store is not None:
            store.close()

    def human() -> None:
        print(result.summary())
        if args.dry_run:
            for victim in result.victims:
                print("  %s %s (%d bytes, last read %s)" % (
                    victim["kind"], victim["name"], victim["bytes"],
                    _when(victim["last_access"])))
        for text in result.errors:
            print("  error: %s" % text, file=sys.stderr)

    output.emit(args.format, result.as_dict(), human)
    return EXIT_FAILED if result.errors else EXIT_OK


def cache_clean(conf: cfg.ConfigOpts) -> int:
    """``cache clean``: one clean pass (the daemon's code and lock)."""
    from storaged.cache import Cleaner

    args = conf.command
    cache = _open(conf)
    store = _lease_store(conf)
    progress = output.Progress("clean", None, fmt=args.format, unit="step")
    try:
        result = Cleaner(cache, store).clean(dry_run=args.dry_run,
                                             progress=progress.update_to)
    finally:
        progress.finish()
        cache.close()
        if store is not None:
            store.close()

    def human() -> None:
        print(result.summary())
        if args.dry_run:
            for path in result.removed:
                print("  %s" % path)
        for text in result.errors:
            print("  error: %s" % text, file=sys.stderr)

    output.emit(args.format, result.as_dict(), human)
    return EXIT_FAILED if result.errors else EXIT_OK


COMMANDS: dict[tuple[str, ...], Any] = {
    ("cache", "list"): cache_list,
    ("cache", "stats"): cache_stats,
    ("cache", "queue"): cache_queue,
    ("cache", "delete"): cache_delete,
    ("cache", "prune"): cache_prune,
    ("cache", "clean"): cache_clean,
}
