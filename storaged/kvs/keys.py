"""Keys of the state store: their checks, long keys' mangled form, prefixes.

A key (or lock name) up to :data:`MAX_KEY_LENGTH` characters is stored as it
is; a longer one in a mangled form that keeps its first
:data:`MANGLED_PREFIX_LENGTH` characters readable and adds a digest of the
whole (:func:`mangle_key`), so that distinct long keys never collide and
``scan(prefix)`` still finds them for prefixes up to that length.
:class:`~storaged.kvs.base.KeyValueStore` and the drivers check, store and
scan keys through these functions.
"""

from __future__ import annotations

import hashlib
from typing import Final

from storaged import exception

#: Keys up to this many characters are stored as they are.
MAX_KEY_LENGTH: Final = 200
#: How much of a longer key is kept, readable, in its mangled form.
MANGLED_PREFIX_LENGTH: Final = 150

_HASHED_MARK: Final = "#"
_SHOW_LIMIT: Final = 80


def shown(name: str) -> str:
    """Return a name made safe and short for a message or a log line."""
    text = name if name.isprintable() else repr(name)[1:-1]
    if len(text) > _SHOW_LIMIT:
        text = text[:_SHOW_LIMIT] + "..."
    return text


def validate_key(key: object, kind: str = "key") -> str:
    """Check that ``key`` may be used as a key or a lock name.

    :param key: the key to check.
    :param kind: what it is, for the message (``key``, ``lock name``).
    :returns: ``key``, typed as ``str``.
    :raises storaged.exception.InvalidName: empty, not a string, contains
        NUL, or is not valid UTF-8 (a lone surrogate).
    """
    if not isinstance(key, str):
        raise exception.InvalidName(
            kind=kind, reason=f"must be a string, not {type(key).__name__}"
        )
    if not key:
        raise exception.InvalidName(kind=kind, reason="must not be empty")
    if "\x00" in key:
        raise exception.InvalidName(
            kind=kind, reason=f"{shown(key)} contains a NUL character"
        )
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise exception.InvalidName(
                kind=kind, reason=f"{shown(key)} is not valid UTF-8"
            ) from None
    return key


def mangle_key(key: str, kind: str = "key") -> str:
    """Return the form under which ``key`` is stored.

    Keys of at most :data:`MAX_KEY_LENGTH` characters are returned as they
    are; longer ones become ``key[:150] + "#" + sha256(key).hexdigest()``
    (215 characters).

    :raises storaged.exception.InvalidName: see :func:`validate_key`.
    """
    validate_key(key, kind)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key[:MANGLED_PREFIX_LENGTH] + _HASHED_MARK + digest


def is_mangled(stored_key: str) -> bool:
    """Tell whether a key returned by :meth:`KeyValueStore.scan` is mangled."""
    return len(stored_key) > MAX_KEY_LENGTH


def validate_prefix(prefix: object) -> str:
    """Check a :meth:`KeyValueStore.scan` prefix (may be empty)."""
    if not isinstance(prefix, str):
        raise exception.InvalidName(
            kind="prefix", reason=f"must be a string, not {type(prefix).__name__}"
        )
    if not prefix:
        return prefix
    validate_key(prefix, "prefix")
    if len(prefix) > MANGLED_PREFIX_LENGTH:
        raise exception.InvalidName(
            kind="prefix",
            reason=f"longer than {MANGLED_PREFIX_LENGTH} characters, it could "
            "not match long (mangled) keys",
        )
    return prefix


def prefix_upper_bound(prefix: str) -> str | None:
    """Return the smallest string greater than every string with ``prefix``.

    Used for index range scans: ``prefix <= key < bound``.  ``None`` when
    there is no such bound (empty prefix, or only U+10FFFF characters).
    Comparison by code point is the same as by UTF-8 bytes, so the bound
    is right for sqlite's BINARY collation too.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code > 0x10FFFF:
            continue
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        return "".join(chars) + chr(code)
    return None
