"""An object's headers, both ways: what a write keeps, what a read sends.

A PUT or POST keeps ``X-Object-Meta-*``, the :data:`OBJECT_HEADERS` and
its ``Content-Type`` (:func:`request_metadata`, :func:`request_content_type`);
a GET or HEAD sends them back with the ETag and timestamps
(:func:`object_headers`).  Whatever writes or reads an object (a plain PUT
or GET, a server-side copy, a large object's segments) goes through these.
"""

from __future__ import annotations

from typing import Final

from storaged.api.auth import Identity
from storaged.api.handlers.common import TRUE_VALUES
from storaged.api.handlers.expiry import request_expiry
from storaged.api.protocol import HTML
from storaged.api.protocol import Headers
from storaged.api.protocol import Request
from storaged.api.protocol import error
from storaged.api.protocol import last_modified
from storaged.objects.repository import ObjectInfo

#: Object headers kept with the object and sent back with it, besides
#: ``X-Object-Meta-*`` (Swift's default ``allowed_headers``; ``X-Delete-At``
#: is kept too, checked by :mod:`.expiry`).
OBJECT_HEADERS: Final = (
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Cache-Control",
    "Expires",
    "X-Robots-Tag",
)
#: Large-object manifests: ``X-Object-Manifest`` (a dynamic large object)
#: from anyone, checked as Swift's ``dlo`` does; ``X-Static-Large-Object``
#: only from a sync sender (users make one with ``?multipart-manifest=put``).
MANIFEST_HEADERS: Final = ("X-Object-Manifest", "X-Static-Large-Object")
#: Metadata a user never sees nor sets (a static large object's size and
#: ETag, as Swift's object system metadata); sync senders push it along.
SYSMETA_PREFIX: Final = "X-Object-Sysmeta-"


def object_headers(info: ObjectInfo) -> Headers:
    """Return the headers of an object's GET and HEAD."""
    headers = Headers([
        # Bare, as Swift's proxy sends a plain object's ETag.
        ("Etag", info.etag),
        ("Last-Modified", last_modified(info.timestamp)),
        ("X-Timestamp", info.timestamp.normal),
        ("X-Backend-Timestamp", info.timestamp.internal),
        ("Accept-Ranges", "bytes"),
    ])
    for name, value in info.metadata.items():
        if not name.startswith(SYSMETA_PREFIX):
            headers[name] = value
    return headers


def clean_content_type(value: str) -> str:
    """Return a stored ``Content-Type`` without Swift's ``swift_bytes``."""
    parts = [p for p in value.split(";") if not p.strip().startswith("swift_bytes=")]
    return ";".join(parts).strip()


def request_metadata(req: Request, ident: Identity) -> dict[str, str]:
    """Return the metadata a PUT or POST stores with the object.

    :raises HTTPError: 400 for ``X-Static-Large-Object`` from anyone but a
        sync sender, or a malformed ``X-Object-Manifest``.
    """
    # Swift keeps an object's headers whatever their bytes.
    meta = dict(req.headers_with_prefix("X-Object-Meta-", strict=False))
    for name in OBJECT_HEADERS:
        value = req.header_text(name, strict=False)
        if value is not None:
            meta[name] = value
    for name in MANIFEST_HEADERS:
        value = req.header_text(name)
        if value is None:
            continue
        if not ident.is_sync:
            if name == "X-Static-Large-Object":
                raise error(
                    400, "X-Static-Large-Object is a reserved header. To create "
                    "a static large object add query param multipart-manifest=put.",
                    content_type=HTML,  # swob's default, as Swift's slo sends it
                )
            check_object_manifest(value)
        meta[name] = value
    if ident.is_sync:
        meta.update(req.headers_with_prefix(SYSMETA_PREFIX, strict=False))
    meta.update(request_expiry(req, ident))
    return meta


def check_object_manifest(value: str) -> None:
    """Check an ``X-Object-Manifest`` value as Swift's ``dlo`` does.

    :raises HTTPError: 400 unless it is ``<container>/<prefix>`` (both
        non-empty, no ``?`` or ``&``, the prefix not starting with ``/``).
    """
    container, sep, prefix = value.partition("/")
    if (
        not sep or not container or not prefix or "?" in value or "&" in value
        or prefix.startswith("/")
    ):
        raise error(400, "X-Object-Manifest must be in the format container/prefix",
                    content_type=HTML)  # as Swift's dlo


def request_content_type(req: Request) -> str | None:
    """Return the ``Content-Type`` to store, or None to guess from the name.

    :raises HTTPError: 400 for a value that is not UTF-8.
    """
    raw = req.environ.get("headers_raw")
    if raw is not None and not any(k.lower() == "content-type" for k, _v in raw):
        # eventlet's server fills in text/plain when the client sent no
        # Content-Type; the object's name should tell instead.
        return None
    value = req.header_text("Content-Type", invalid="Invalid Content-Type")
    detect = (req.header("X-Detect-Content-Type") or "").lower() in TRUE_VALUES
    if value is None or detect or not value.strip():
        return None
    # Swift's internal size hint never belongs to the stored type.
    return clean_content_type(value)
