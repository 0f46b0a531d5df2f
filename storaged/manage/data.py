"""``storaged-manage container|object|store``: data on this node.

::

    container create ACCOUNT/CONTAINER [--meta KEY=VALUE ...]
    container list ACCOUNT [--prefix P] [--marker M] [--limit N] [--all]
    container show ACCOUNT/CONTAINER
    container set ACCOUNT/CONTAINER [--meta KEY=VALUE ...] [--sync-to URL]
                                    [--sync-key KEY]
    container delete ACCOUNT/CONTAINER
    object put ACCOUNT/CONTAINER NAME [FILE|-] [--content-type T] [--meta K=V]
    object get ACCOUNT/CONTAINER NAME [-o FILE|-] [--no-verify]
    object head|delete ACCOUNT/CONTAINER NAME
    object list ACCOUNT/CONTAINER [--prefix P] [--delimiter D] [--marker M]
                                  [--limit N] [--all]
    store verify [BACKEND]
    store scrub [BACKEND] [--reclaim]

A listing answers at most one page (10,000 entries, the catalog's limit, as
Swift's).  ``--all`` lists page after page, each starting after the last
name of the one before (as Swift's clients page), with a progress bar on a
terminal counting towards the container's (account's) total; ``--limit``
then caps the whole listing instead of the page.
"""

from __future__ import annotations

from collections.abc import Callable
import os
import sys
import tempfile
from typing import TYPE_CHECKING
from typing import Any
from typing import Final

from oslo_config import cfg

from storaged.exception import UsageError
from storaged.manage import output

if TYPE_CHECKING:
    from storaged.objects import ObjectRepository

EXIT_OK = 0
EXIT_FAILED = 1

#: Entries a listing page holds (the catalog's maximum).
PAGE: Final = 10_000

CONTAINER_META = "X-Container-Meta-"
OBJECT_META = "X-Object-Meta-"


# -- parsers -------------------------------------------------------------------


def _meta_arg(parser: Any) -> None:
    parser.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE",
        help="set metadata KEY (an empty VALUE removes it); repeatable",
    )


def _listing_args(parser: Any, delimiter: bool) -> None:
    parser.add_argument("--prefix", default="", help="only names starting with P")
    parser.add_argument("--marker", default="", help="only names after M")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most N entries (default and maximum 10,000; "
                        "with --all, of the whole listing)")
    parser.add_argument("--all", action="store_true",
                        help="every entry, page after page of 10,000, with "
                        "progress on a terminal")
    if delimiter:
        parser.add_argument("--delimiter", default="",
                            help="roll names up to the first D after the prefix")


def add_parsers(subparsers: Any) -> None:
    """Declare the ``container``, ``object`` and ``store`` commands."""
    p = subparsers.add_parser("container", help="create, list, show, change, "
                              "delete containers")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    a = sub.add_parser("create", help="create a container")
    a.add_argument("target", metavar="ACCOUNT/CONTAINER")
    _meta_arg(a)
    output.add_format(a)
    a = sub.add_parser("list", help="list an account's containers")
    a.add_argument("target", metavar="ACCOUNT")
    _listing_args(a, delimiter=False)
    output.add_format(a)
    a = sub.add_parser("show", help="show a container's counts and metadata")
    a.add_argument("target", metavar="ACCOUNT/CONTAINER")
    output.add_format(a)
    a = sub.add_parser("set", help="change a container's metadata or sync target")
    a.add_argument("target", metavar="ACCOUNT/CONTAINER")
    _meta_arg(a)
    a.add_argument("--sync-to", default=None, metavar="URL",
                   help="sync target: //REALM/CLUSTER/ACCOUNT/CONTAINER or a URL "
                   "('' to stop syncing)")
    a.add_argument("--sync-key", default=None, metavar="KEY",
                   help="shared sync secret (never shown back)")
    output.add_format(a)
    a = sub.add_parser("delete", help="delete an empty container")
    a.add_argument("target", metavar="ACCOUNT/CONTAINER")
    output.add_format(a)

    p = subparsers.add_parser("object", help="put, get, inspect, delete, list "
                              "objects")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    a = sub.add_parser("put", help="store a file (or standard input) as an object")
    a.add_argument("target", metavar="ACCOUNT/CONTAINER")
    a.add_argument("object_name", metavar="NAME")
    a.add_argument("file", metavar="FILE", nargs="?", default="-",
                   help="file to store; '-' or nothing for standard input")
    a.add_argument("--content-type", default=None,
                   help="Content-Type (default: guessed from NAME)")
    a.add_argument("--backend", default=None, help="back end id (default: the "
                   "default back end)")
    _meta_arg(a)
    output.add_format(a)
    a = sub.add_parser("get", help="read an object (its digest is verified)")
    a.add_argument("target", metavar="ACCOUNT/CONTAINER")
    a.add_argument("object_name", metavar="NAME")
    a.add_argument("-o", "--output", default="-", metavar="FILE",
                   help="write to FILE (atomically) instead of standard output")
    a.add_argument("--no-verify", dest="verify", action="store_false",
                   help="do not check the stored digest while reading")
    for verb, text in (("head", "show an object's size, ETag and metadata"),
                       ("delete", "delete an object")):
        a = sub.add_parser(verb, help=text)
        a.add_argument("target", metavar="ACCOUNT/CONTAINER")
        a.add_argument("object_name", metavar="NAME")
        output.add_format(a)
    a = sub.add_parser("list", help="list a container's objects")
    a.add_argument("target", metavar="ACCOUNT/CONTAINER")
    _listing_args(a, delimiter=True)
    output.add_format(a)

    p = subparsers.add_parser("store", help="check the object store back ends")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    a = sub.add_parser("verify", help="check that back ends are usable")
    a.add_argument("backend", metavar="BACKEND", nargs="?", default=None)
    output.add_format(a)
    a = sub.add_parser("scrub", help="re-read every object, report corrupt and "
                       "orphaned data (exit 1 if any)")
    a.add_argument("backend", metavar="BACKEND", nargs="?", default=None)
    a.add_argument("--reclaim", action="store_true",
                   help="also remove leftovers of dead writers (never corrupt "
                   "objects)")
    output.add_format(a)


# -- helpers -------------------------------------------------------------------


def split_target(target: str, want_container: bool = True) -> tuple[str, str]:
    """Split ``ACCOUNT/CONTAINER``; raise UsageError when malformed."""
    if not want_container:
        if not target or "/" in target:
            raise UsageError(reason="expected ACCOUNT, got %r" % target)
        return target, ""
    account, sep, container = target.partition("/")
    if not sep or not account or not container or "/" in container:
        raise UsageError(reason="expected ACCOUNT/CONTAINER, got %r" % target)
    return account, container


def parse_meta(items: list[str], prefix: str) -> dict[str, str]:
    """Turn ``KEY=VALUE`` arguments into Swift metadata headers."""
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(reason="expected --meta KEY=VALUE, got %r" % item)
        meta[prefix + key.strip()] = value
    return meta


def check_sync_to(conf: cfg.ConfigOpts, value: str) -> str:
    """Validate a sync target as storaged-api does; return the value to store.

    The same function, realms file (``[sync] realms_conf``) and allowed
    hosts (``[sync] allowed_sync_hosts``) as the API's container PUT/POST:
    a target the API would refuse with 400 is refused here too, instead of
    failing every pass of storaged-sync.

    :raises storaged.sync.realms.InvalidSyncTo: with Swift's message.
    """
    from storaged.sync import realms as realms_mod

    value = value.strip()
    if not value:
        return ""  # sync off
    realms = realms_mod.Realms.load(conf.sync.realms_conf)
    realms_mod.parse_sync_to(value, realms, conf.sync.allowed_sync_hosts)
    return value.rstrip("/")


def _service(conf: cfg.ConfigOpts) -> ObjectRepository:
    # Imported when a command needs the data: the catalog and the store are
    # most of this command's start-up, and --help or status need neither.
    from storaged.objects import ObjectRepository

    return ObjectRepository.from_conf(conf)


def _listing(args: Any) -> dict[str, Any]:
    from storaged.catalog import broker

    if args.limit is not None and not args.all:
        # The catalog's own check, before anything is opened: a bad limit
        # is the operator's mistake, told in one line.
        try:
            broker.check_limit(args.limit)
        except ValueError as err:
            raise UsageError(reason="--limit %d: %s" % (args.limit, err)) from err
    if args.limit is not None and args.limit < 0:
        raise UsageError(reason="--limit %d: must be 0 or more" % args.limit)
    listing: dict[str, Any] = {"prefix": args.prefix, "marker": args.marker,
                               "limit": args.limit}
    if getattr(args, "delimiter", ""):
        listing["delimiter"] = args.delimiter
    return listing


def _entries(
    args: Any,
    fetch: Callable[..., list[Any]],
    total: Callable[[], int],
    unit: str,
) -> list[Any]:
    """One listing page, or with ``--all`` every page, showing progress.

    :param fetch: lists one page (the catalog's listing arguments).
    :param total: how many entries there are without a prefix or marker
        (the bar's total; unknown, and not asked, when they narrow it).
    """
    listing = _listing(args)
    if not args.all:
        return fetch(**listing)
    wanted = listing.pop("limit")
    narrowed = bool(listing["prefix"] or listing["marker"]
                    or listing.get("delimiter"))
    whole = None if narrowed else total()
    if wanted is not None:
        whole = wanted if whole is None else min(whole, wanted)
    progress = output.Progress("list", whole, fmt=args.format, unit=unit)
    entries: list[Any] = []
    try:
        while wanted is None or len(entries) < wanted:
            size = PAGE if wanted is None else min(PAGE, wanted - len(entries))
            page = fetch(**{**listing, "limit": size})
            entries.extend(page)
            progress.advance(len(page))
            if len(page) < size:
                break
            # The next page starts after this one's last name (a subdir's
            # too: the catalog skips the names it rolled up, as Swift does).
            listing["marker"] = page[-1].name
    finally:
        progress.finish()
    return entries


# -- container -----------------------------------------------------------------


def container_create(conf: cfg.ConfigOpts) -> int:
    """``container create``."""
    args = conf.command
    account, container = split_target(args.target)
    svc = _service(conf)
    try:
        created = svc.create_container(
            account, container, parse_meta(args.meta, CONTAINER_META))
    finally:
        svc.close()
    data = {"account": account, "container": container, "created": created}
    output.emit(args.format, data, lambda: print(
        "Container %s/%s %s." % (account, container,
                                 "created" if created else "already exists")))
    return EXIT_OK


def container_list(conf: cfg.ConfigOpts) -> int:
    """``container list``."""
    args = conf.command
    account, _ = split_target(args.target, want_container=False)
    svc = _service(conf)
    try:
        entries = _entries(
            args, lambda **listing: svc.list_containers(account, **listing),
            lambda: svc.catalog.account_info(account).container_count, "container")
    finally:
        svc.close()
    data = [{"name": e.name, "count": e.object_count, "bytes": e.bytes_used,
             "last_modified": e.last_modified} for e in entries]

    def human() -> None:
        if not data:
            print("Account %s has no containers." % account)
            return
        output.table([("CONTAINER", "OBJECTS", "BYTES", "LAST MODIFIED")] + [
            (d["name"], str(d["count"]), str(d["bytes"]), d["last_modified"])
            for d in data])

    output.emit(args.format, data, human)
    return EXIT_OK


def container_show(conf: cfg.ConfigOpts) -> int:
    """``container show`` (the sync key is masked)."""
    args = conf.command
    account, container = split_target(args.target)
    svc = _service(conf)
    try:
        info = svc.container_info(account, container)
        points = svc.catalog.container(account, container).list_sync_points()
    finally:
        svc.close()
    data = info.as_dict(mask_secrets=True)
    data["sync_points"] = {w: list(p) for w, p in points.items()}

    def human() -> None:
        print("Container:    %s/%s" % (account, container))
        print("Objects:      %d" % info.object_count)
        print("Bytes:        %d (%s)" % (info.bytes_used,
                                         output.human_size(info.bytes_used)))
        print("Created:      %s" % info.put_timestamp.isoformat)
        print("Last row id:  %d" % info.max_row)
        for key, value in sorted(data["metadata"].items()):
            print("%s: %s" % (key, value))
        for worker, (p1, p2) in sorted(points.items()):
            print("Sync points of %s: %d, %d" % (worker, p1, p2))

    output.emit(args.format, data, human)
    return EXIT_OK


def container_set(conf: cfg.ConfigOpts) -> int:
    """``container set``."""
    from storaged.catalog import SYNC_KEY_KEY
    from storaged.catalog import SYNC_TO_KEY

    args = conf.command
    account, container = split_target(args.target)
    updates = parse_meta(args.meta, CONTAINER_META)
    if args.sync_to is not None:
        updates[SYNC_TO_KEY] = check_sync_to(conf, args.sync_to)
    if args.sync_key is not None:
        updates[SYNC_KEY_KEY] = args.sync_key
    if not updates:
        raise UsageError(reason="nothing to set: give --meta, --sync-to or "
                         "--sync-key")
    svc = _service(conf)
    try:
        svc.update_container_metadata(account, container, updates)
    finally:
        svc.close()
    output.emit(args.format, {"account": account, "container": container,
                              "updated": sorted(updates)},
                lambda: print("Container %s/%s updated: %s." % (
                    account, container, ", ".join(sorted(updates)))))
    return EXIT_OK


def container_delete(conf: cfg.ConfigOpts) -> int:
    """``container delete``."""
    args = conf.command
    account, container = split_target(args.target)
    svc = _service(conf)
    try:
        svc.delete_container(account, container)
    finally:
        svc.close()
    output.emit(args.format, {"account": account, "container": container,
                              "deleted": True},
                lambda: print("Container %s/%s deleted." % (account, container)))
    return EXIT_OK


# -- object --------------------------------------------------------------------


def object_put(conf: cfg.ConfigOpts) -> int:
    """``object put``: stream a file or standard input into an object."""
    args = conf.command
    account, container = split_target(args.target)
    meta = parse_meta(args.meta, OBJECT_META)
    if args.file == "-":
        raw: Any = sys.stdin.buffer
        size = None
        label = "%s (stdin)" % args.object_name
    else:
        try:
            raw = open(args.file, "rb")  # closed below
        except OSError as err:
            raise UsageError(reason="cannot read %s: %s" % (args.file, err.strerror)
                             ) from err
        size = os.fstat(raw.fileno()).st_size
        label = args.object_name
    progress = output.Progress("put " + label, size, fmt=args.format)
    svc = _service(conf)
    try:
        result = svc.put_object(
            account, container, args.object_name, output.ProgressReader(raw, progress),
            size, content_type=args.content_type, metadata=meta,
            backend=args.backend,
        )
    finally:
        progress.finish()
        svc.close()
        if raw is not sys.stdin.buffer:
            raw.close()
    info = result.info
    output.emit(args.format, dict(info.as_dict(), applied=result.applied),
                lambda: print("Stored %s/%s/%s: %d bytes, ETag %s, back end %s." % (
                    account, container, info.name, info.size, info.etag,
                    info.backend)))
    return EXIT_OK


def object_get(conf: cfg.ConfigOpts) -> int:
    """``object get``: write an object to a file (atomically) or stdout."""
    args = conf.command
    account, container = split_target(args.target)
    svc = _service(conf)
    try:
        _info, chunks, length = svc.get_object(
            account, container, args.object_name, verify=args.verify)
        progress = output.Progress("get " + args.object_name, length,
                                   fmt=getattr(args, "format", "human"))
        try:
            if args.output == "-":
                out = sys.stdout.buffer
                for chunk in progress.wrap(chunks):
                    out.write(chunk)
                out.flush()
            else:
                _write_atomically(args.output, progress.wrap(chunks))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            progress.finish()
    finally:
        svc.close()
    return EXIT_OK


def _write_atomically(path: str, chunks: Any) -> None:
    # Where the output cannot go is the operator's mistake: one line, and
    # found before the object is read when it can be.
    if os.path.isdir(path):
        raise UsageError(reason="cannot write %s: it is a directory" % path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".storaged-get-", dir=directory)
    except OSError as err:
        raise UsageError(reason="cannot write %s: %s" % (path, err.strerror)
                         ) from err
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise UsageError(reason="cannot write %s: %s" % (path, err.strerror)
                             ) from err
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def object_head(conf: cfg.ConfigOpts) -> int:
    """``object head``."""
    args = conf.command
    account, container = split_target(args.target)
    svc = _service(conf)
    try:
        info = svc.head_object(account, container, args.object_name)
    finally:
        svc.close()
    data = info.as_dict()

    def human() -> None:
        print("Object:         %s/%s/%s" % (account, container, info.name))
        print("Content-Length: %d" % info.size)
        print("Content-Type:   %s" % info.content_type)
        print("ETag:           %s" % info.etag)
        print("Last-Modified:  %s" % info.timestamp.isoformat)
        print("X-Timestamp:    %s" % info.timestamp.normal)
        print("Back end:       %s" % info.backend)
        for key, value in sorted(info.metadata.items()):
            print("%s: %s" % (key, value))

    output.emit(args.format, data, human)
    return EXIT_OK


def object_delete(conf: cfg.ConfigOpts) -> int:
    """``object delete``."""
    args = conf.command
    account, container = split_target(args.target)
    svc = _service(conf)
    what = "%s/%s/%s" % (account, container, args.object_name)
    try:
        applied = svc.delete_object(account, container, args.object_name)
    finally:
        svc.close()
    if not applied:
        # A newer write (a sync peer's future timestamp) outlives the
        # delete: say so, as the API's 409 does.
        raise UsageError(reason="%s was not deleted: its stored write is newer "
                         "than now" % what)
    output.emit(args.format, {"account": account, "container": container,
                              "name": args.object_name, "deleted": True},
                lambda: print("Deleted %s." % what))
    return EXIT_OK


def object_list(conf: cfg.ConfigOpts) -> int:
    """``object list``."""
    from storaged.catalog import Subdir

    args = conf.command
    account, container = split_target(args.target)
    svc = _service(conf)
    try:
        entries = _entries(
            args, lambda **listing: svc.list_objects(account, container, **listing),
            lambda: svc.container_info(account, container).object_count, "object")
    finally:
        svc.close()
    data: list[dict[str, Any]] = []
    for e in entries:
        if isinstance(e, Subdir):
            data.append({"subdir": e.name})
        else:
            data.append({"name": e.name, "bytes": e.size, "hash": e.etag,
                         "content_type": e.content_type,
                         "last_modified": e.created_at.isoformat})

    def human() -> None:
        if not data:
            print("No objects.")
            return
        output.table([("NAME", "BYTES", "ETAG", "LAST MODIFIED")] + [
            (d["subdir"], "-", "-", "-") if "subdir" in d else
            (d["name"], str(d["bytes"]), d["hash"], d["last_modified"])
            for d in data])

    output.emit(args.format, data, human)
    return EXIT_OK


# -- store ---------------------------------------------------------------------


def _backends(conf: cfg.ConfigOpts) -> Any:
    from storaged import objectstore

    return objectstore.load_backends(conf)


def store_verify(conf: cfg.ConfigOpts) -> int:
    """``store verify``: is each back end usable?"""
    from storaged import exception

    args = conf.command
    backends = _backends(conf)
    results: dict[str, Any] = {}
    try:
        if args.backend is not None:
            backends.get(args.backend)  # UnknownBackend if not enabled
        ids = [args.backend] if args.backend else backends.ids(include_reserved=True)
        progress = output.Progress("verify", len(ids), fmt=args.format,
                                   unit="back end")
        try:
            for bid in ids:
                try:
                    backends.get(bid).verify_store()
                except exception.StoreError as err:
                    results[bid] = err
                else:
                    results[bid] = None
                progress.advance(1)
        finally:
            progress.finish()
    finally:
        backends.close()
    data = {bid: ("ok" if err is None else str(err)) for bid, err in results.items()}

    def human() -> None:
        for bid, text in sorted(data.items()):
            print("%s: %s" % (bid, text))

    output.emit(args.format, data, human)
    return EXIT_OK if all(err is None for err in results.values()) else EXIT_FAILED


def store_scrub(conf: cfg.ConfigOpts) -> int:
    """``store scrub``: re-read every object of each (or one) back end."""
    from storaged.objectstore import Capability

    args = conf.command
    backends = _backends(conf)
    reports = []
    try:
        ids = [args.backend] if args.backend else backends.ids(include_reserved=True)
        for bid in ids:
            driver = backends.get(bid)
            if Capability.SCRUB not in driver.capabilities:
                continue
            # The objects checked so far (how many there are is not known
            # before the walk): a long scrub shows it is moving, and how fast.
            progress = output.Progress("scrub " + bid, None, fmt=args.format,
                                       unit=" objects")
            try:
                reports.append(driver.scrub(
                    reclaim=args.reclaim,
                    progress=lambda report, bar=progress: bar.update_to(report.checked),
                ))
            finally:
                progress.finish()
    finally:
        backends.close()

    def human() -> None:
        for report in reports:
            print(report.summary())
            for finding in report.corrupt:
                print("  corrupt: %s: %s" % (finding.where, finding.reason))
            for finding in report.orphans:
                reclaimed = finding.where in report.reclaimed
                state = "reclaimed" if reclaimed else "orphan"
                print("  %s: %s: %s" % (state, finding.where, finding.reason))
            for finding in report.errors:
                print("  error: %s: %s" % (finding.where, finding.reason))

    output.emit(args.format, [r.as_dict() for r in reports], human)
    return EXIT_OK if all(r.clean for r in reports) else EXIT_FAILED


COMMANDS: dict[tuple[str, ...], Any] = {
    ("container", "create"): container_create,
    ("container", "list"): container_list,
    ("container", "show"): container_show,
    ("container", "set"): container_set,
    ("container", "delete"): container_delete,
    ("object", "put"): object_put,
    ("object", "get"): object_get,
    ("object", "head"): object_head,
    ("object", "delete"): object_delete,
    ("object", "list"): object_list,
    ("store", "verify"): store_verify,
    ("store", "scrub"): store_scrub,
}
