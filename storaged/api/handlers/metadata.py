"""User metadata a request sends: Swift's checks, and the changes it asks for.

:func:`check_metadata` is what Swift's proxy checks before it forwards a
request (``check_metadata`` of ``swift.common.constraints``), with Swift's
400 bodies: each ``X-<Kind>-Meta-*`` header of the request counts, an
empty one (a removal) included, and lengths are counted in bytes.  The
limits on the metadata once merged with what is stored are the catalog's
to check; :func:`over_limit` gives its refusal Swift's answer.
:func:`metadata_updates` turns the headers into the changes to store.
"""

from __future__ import annotations

from storaged import exception
from storaged.api.protocol import HTML
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import error
from storaged.catalog import Limits
from storaged.common.headerbytes import text_to_bytes


def check_metadata(req: Request, kind: str, limits: Limits) -> None:
    """Refuse user metadata over Swift's limits for one request.

    :param kind: ``"account"``, ``"container"`` or ``"object"``; account
        and container metadata must be UTF-8, an object's may be any bytes.
    :param limits: the limits (those ``/info`` advertises).
    :raises HTTPError: 400 with Swift's body for the first header at fault.
    """
    prefix = "x-%s-meta-" % kind
    count = 0
    size = 0
    strict = kind != "object"
    for name, value in req.headers_with_prefix(prefix, strict=strict):
        key = name[len(prefix):]
        if not key:
            raise error(400, "Metadata name cannot be empty")
        key_bytes = len(text_to_bytes(key))
        value_bytes = len(text_to_bytes(value))
        count += 1
        size += key_bytes + value_bytes
        if key_bytes > limits.max_meta_name_length:
            raise error(400, "Metadata name too long: %s%s" % (prefix, key))
        if value_bytes > limits.max_meta_value_length:
            raise error(400, "Metadata value longer than %d: %s%s" % (
                limits.max_meta_value_length, prefix, key))
        if count > limits.max_meta_count:
            raise error(400, "Too many metadata items; max %d" % limits.max_meta_count)
        if size > limits.max_meta_overall_size:
            raise error(400, "Total metadata too large; max %d"
                        % limits.max_meta_overall_size)


def over_limit(err: exception.MetadataTooLarge) -> HTTPError:
    """Return Swift's 400 for metadata over a limit once merged with what is stored."""
    # Swift's account and container servers say so in swob's default type.
    if err.limit == "count":
        return error(400, "Too many metadata items; max %d" % err.maximum,
                     content_type=HTML)
    return error(400, "Total metadata too large; max %d" % err.maximum,
                 content_type=HTML)


def metadata_updates(req: Request, kind: str) -> dict[str, str]:
    """Return the metadata changes a POST asks for, as Swift's proxy reads them.

    ``X-Remove-<Kind>-Meta-Name`` (whatever its value) becomes
    ``X-<Kind>-Meta-Name`` with an empty value, which removes it; then each
    ``X-<Kind>-Meta-*`` header is set, so a header that sets a key wins
    over one that removes it.

    :param kind: ``"account"`` or ``"container"``.
    :raises HTTPError: 400 ``Metadata must be valid UTF-8``.
    """
    prefix = "X-%s-Meta-" % kind.title()
    remove = "X-Remove-" + prefix[2:]
    updates: dict[str, str] = {}
    for name, _value in req.headers_with_prefix(remove, strict=False):
        updates[prefix + name[len(remove):]] = ""
    for name, value in req.headers_with_prefix(prefix):
        updates[name] = value
    return updates
