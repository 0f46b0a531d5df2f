"""Names in the cache directory: its subdirectories and the ids of entries.

Layout of ``[cache] cache_dir`` (Glance's, with stricter names)::

    CACHE_DIR/<id>                  an entry: a verified copy of one object
    CACHE_DIR/incomplete/<id>       a fill in progress (its writer holds an
                                    exclusive flock on it)
    CACHE_DIR/incomplete/.<x>.<y>   a fill being set up (a few microseconds)
    CACHE_DIR/invalid/<id>.<ns>     a failed fill, its error recorded with it
    CACHE_DIR/queue/<ns>-<key>      an object waiting to be prefetched
    CACHE_DIR/.lock                 the maintenance lock (prune, clean)
    CACHE_DIR/.index.sqlite         entry metadata, only without user xattrs

``<id>`` is the sha256 of ``<back end id>\\n<location>`` in 64 lowercase hex
digits: it never comes from a client, and a name of any other shape is not
an entry.  Ids handed in from outside (``storaged-manage cache delete``)
are checked by :func:`validate_entry_id` before any path is built.  As a
write gives an object a new location, an overwritten or deleted object's
entry is never served again; it ages out.

Every other cache module takes these names from here; this module imports
no other part of the cache.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from storaged import exception

INCOMPLETE = "incomplete"
INVALID = "invalid"
QUEUE = "queue"
SUBDIRS = (INCOMPLETE, INVALID, QUEUE)

#: length of an entry id (hex digits of a sha256)
ENTRY_ID_LENGTH = 64
ENTRY_ID_RE = re.compile(r"[0-9a-f]{64}\Z")
#: name of a fill's file before it is published in incomplete/
TEMP_NAME_RE = re.compile(r"\.[0-9a-f]{16}\.[0-9a-f]{16}\Z")
#: name of a file in invalid/: the entry id, then when it failed (ns)
INVALID_NAME_RE = re.compile(r"([0-9a-f]{64})\.([0-9]{1,20})\Z")


def validate_entry_id(value: object) -> str:
    """Return ``value`` if it is an entry id (64 lowercase hex digits).

    Checked before any path is built: ``..``, ``/``, NUL, an over-long or
    empty value, anything but ``[0-9a-f]`` is refused.

    :raises storaged.exception.InvalidName: saying which rule was broken.
    """
    if not isinstance(value, str):
        reason = "must be a string, not %s" % type(value).__name__
    elif not value:
        reason = "must not be empty"
    elif len(value) > ENTRY_ID_LENGTH:
        reason = "is %d characters long (an id has %d)" % (len(value), ENTRY_ID_LENGTH)
    elif "\x00" in value:
        reason = "must not contain a NUL character"
    elif "/" in value or "\\" in value or value.startswith("."):
        reason = "must not contain '/' or '\\' or start with '.'"
    elif not ENTRY_ID_RE.match(value):
        reason = "must be %d lowercase hexadecimal digits" % ENTRY_ID_LENGTH
    else:
        return value
    shown = repr(value[:40]) if isinstance(value, str) else ""
    raise exception.InvalidName(
        kind="cache entry id", reason=reason + (" (got %s)" % shown if shown else "")
    )


def entry_id_for(backend: str, location: str) -> str:
    """Return the entry id of the object at ``location`` on ``backend``."""
    key = "%s\n%s" % (backend, location)
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """Return a short random token (queue and temporary names)."""
    return secrets.token_hex(8)
