"""The digests an object store may compute, checked before anything is written.

Only fixed-length digests are allowed: a ``hexdigest()`` that needs a length
(``shake_128``) would fail *after* the object was written.  ``md5`` and
``sha1`` are accepted for legacy clients (Swift's ETag is an md5) but are
never computed unless asked for by name.
"""

from __future__ import annotations

import hashlib
from typing import Any

from storaged import exception

#: the digest every object gets unless the caller asks for another one.
DEFAULT_ALGORITHM = "sha256"

#: algorithms accepted, strongest and most common first.
ALLOWED_ALGORITHMS = (
    "sha256",
    "sha512",
    "sha384",
    "sha3_256",
    "sha3_512",
    "blake2b",
    "blake2s",
    "sha1",
    "md5",
)

#: weak algorithms, kept only for compatibility (never a default).
LEGACY_ALGORITHMS = frozenset({"md5", "sha1"})


def new(algo: str) -> Any:
    """Return a new hash object for an allowed algorithm.

    :raises storaged.exception.UnsupportedHashAlgorithm: if ``algo`` is not
        allowed or this Python cannot compute it (e.g. md5 in FIPS mode).
    """
    if not isinstance(algo, str) or algo not in ALLOWED_ALGORITHMS:
        raise exception.UnsupportedHashAlgorithm(
            algo=repr(algo), allowed=", ".join(ALLOWED_ALGORITHMS)
        )
    try:
        if algo in LEGACY_ALGORITHMS:
            return hashlib.new(algo, usedforsecurity=False)
        return hashlib.new(algo)
    except ValueError as err:
        raise exception.UnsupportedHashAlgorithm(
            algo=repr(algo), allowed=", ".join(ALLOWED_ALGORITHMS)
        ) from err


def check(algo: object) -> str:
    """Return ``algo`` if it may be used; raise before any data is touched."""
    new(algo)  # type: ignore[arg-type]
    assert isinstance(algo, str)
    return algo


def digest_of(algo: str, data: bytes) -> str:
    """Return the hex digest of ``data`` (for tests and small buffers)."""
    h = new(algo)
    h.update(data)
    return str(h.hexdigest())
