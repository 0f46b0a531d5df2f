"""Header bytes as latin-1 "native strings", and the text they carry.

WSGI hands header values over as ``str`` whose code points are the bytes the
client sent (latin-1), and takes them back the same way; ``http.client``
reads a response's header bytes the same way.  The API, the catalog and the
sync daemon work with text: these functions are where one becomes the
other, both ways, for the API's WSGI boundary and the sync client's HTTP
boundary alike.  Bytes that are not UTF-8 (Swift keeps them in object
metadata) travel as lone surrogates (``surrogateescape``), so that what
goes out is exactly what came in::

    >>> native_to_text("v\\xc3\\xa4rde")
    'värde'
    >>> text_to_native("värde")
    'vÃ¤rde'
    >>> text_to_bytes(native_to_text("\\xff", strict=False))
    b'\\xff'
"""

from __future__ import annotations


def native_to_text(value: str, *, strict: bool = True) -> str:
    """Return the text a native header string carries (its bytes read as UTF-8).

    :param strict: refuse bytes that are not UTF-8; else keep them as
        surrogates that :func:`text_to_native` turns back into the same bytes.
    :raises UnicodeError: ``strict`` and not UTF-8 (or not a native string).
    """
    if value.isascii():
        return value
    errors = "strict" if strict else "surrogateescape"
    return value.encode("latin-1").decode("utf-8", errors)


def text_to_native(value: str) -> str:
    """Return the native string that sends ``value`` as its UTF-8 bytes."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def text_to_bytes(value: str) -> bytes:
    """Return the UTF-8 bytes of ``value`` (surrogates back to their bytes)."""
    return value.encode("utf-8", "surrogateescape")
