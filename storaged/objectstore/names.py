"""Validation of object ids and back end ids, before any path is built.

An object id becomes a file name in the ``file`` driver, so it is checked
against a short allow-list rather than a list of known-bad patterns:

* 1 to :data:`MAX_ID_LENGTH` characters;
* ASCII letters, digits, ``.``, ``_`` and ``-`` only (a UUID, a hex digest
  or a ``name-1.2`` style id all pass);
* not starting with ``.`` (names starting with a dot are the store's own:
  temporary files, metadata sidecars), hence never ``.`` or ``..``.

Everything else (``/``, ``\\``, NUL, control characters, spaces, non-ASCII,
lone surrogates, bytes) is refused with :class:`~storaged.exception.InvalidName`
and a message that says which rule was broken.
"""

from __future__ import annotations

import re

from storaged import exception

#: longest object id accepted (a temporary name adds about 30 characters,
#: well under the 255-byte limit of common filesystems).
MAX_ID_LENGTH = 128

#: longest back end id accepted (it becomes a configuration section name).
MAX_BACKEND_ID_LENGTH = 64

_OBJECT_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
_BACKEND_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")


def _show(value: str, limit: int = 40) -> str:
    shown = repr(value[:limit])
    return shown + "..." if len(value) > limit else shown


def object_id_problem(object_id: object) -> str | None:
    """Say what is wrong with ``object_id``, or ``None`` if it is valid."""
    if not isinstance(object_id, str):
        return f"must be a string, not {type(object_id).__name__}"
    if not object_id:
        return "must not be empty"
    if len(object_id) > MAX_ID_LENGTH:
        return f"is {len(object_id)} characters long (at most {MAX_ID_LENGTH})"
    if "\x00" in object_id:
        return "must not contain a NUL character"
    try:
        object_id.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (it contains a lone surrogate)"
    if "/" in object_id or "\\" in object_id:
        return "must not contain '/' or '\\'"
    if object_id in (".", ".."):
        return "must not be '.' or '..'"
    if object_id.startswith("."):
        return "must not start with '.'"
    if not _OBJECT_ID.match(object_id):
        return "may only contain ASCII letters, digits, '.', '_' and '-'"
    return None


def validate_object_id(object_id: object) -> str:
    """Return ``object_id`` if it is a valid object id.

    :raises storaged.exception.InvalidName: with the rule that was broken.
    """
    problem = object_id_problem(object_id)
    if problem is not None:
        shown = _show(object_id) if isinstance(object_id, str) else ""
        raise exception.InvalidName(
            kind="object id",
            reason=problem + (f" (got {shown})" if shown else ""),
        )
    assert isinstance(object_id, str)
    return object_id


def backend_id_problem(backend_id: str) -> str | None:
    """Say what is wrong with a back end id, or ``None`` if it is valid."""
    if not backend_id:
        return "a back end id must not be empty"
    if len(backend_id) > MAX_BACKEND_ID_LENGTH:
        return (
            f"back end id {_show(backend_id)} is longer than "
            f"{MAX_BACKEND_ID_LENGTH} characters"
        )
    if not _BACKEND_ID.match(backend_id):
        return (
            f"back end id {backend_id!r} must start with a letter and contain "
            "only ASCII letters, digits, '_' and '-'"
        )
    return None
