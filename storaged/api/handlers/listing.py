"""Account and container listings: format, query parameters, rendering.

A listing is JSON, XML or plain text (``?format=``, else ``Accept``), and
is rendered from the catalog's entries as Swift renders it: an account
lists containers, a container lists objects and ``subdir`` entries.
"""

from __future__ import annotations

from collections.abc import Iterable
import json
import re
from typing import Any
from typing import Final
from xml.etree import ElementTree

from storaged.api.handlers.common import POLICY
from storaged.api.handlers.common import TRUE_VALUES
from storaged.api.handlers.objectmeta import clean_content_type
from storaged.api.handlers.slo_manifest import listing_fields
from storaged.api.handlers.symlink_meta import listing_fields as link_fields
from storaged.api.protocol import HTML
from storaged.api.protocol import Headers
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.catalog import MAX_LIMIT
from storaged.catalog import Subdir

#: The media types a listing can be rendered in, in swob's order of
#: preference (the first when ``Accept`` is absent).
MEDIA_TYPES: Final = ("text/plain", "application/json", "application/xml", "text/xml")
#: ``?format=`` values and their media types (anything else is plain text).
FORMATS: Final = {"plain": "text/plain", "json": "application/json",
                  "xml": "application/xml"}
#: The ``Content-Type`` of each listing media type.
CONTENT_TYPES: Final = {media: media + "; charset=utf-8" for media in MEDIA_TYPES}

#: An RFC 2616 token (a media type, subtype or parameter name).
_NAME: Final = r'[^()<>@,;:\\"/\[\]?={}\x00-\x20\x7f]+'
_ACCEPT_RANGE: Final = re.compile(
    r"^\s*(%s)/(%s)((?:\s*;\s*(?:%s)\s*=\s*(?:%s|\"(?:[^\"]|\\.)*\"))*?\s*)$"
    % (_NAME, _NAME, _NAME, _NAME))


def listing_format(req: Request) -> str:
    """Return the media type of a listing, as Swift's ``listing_formats`` picks it.

    ``?format=`` (``plain``, ``json``, ``xml``; any other value is plain
    text) stands for ``Accept``; then the most preferred of
    :data:`MEDIA_TYPES` that ``Accept`` allows (highest ``q`` first, exact
    types before wildcards; a ``q=0`` still counts, as in swob).

    :raises HTTPError: 400 ``Invalid Accept header``; 406 when ``Accept``
        allows none of them.
    """
    fmt = req.query.get("format", "")
    accept = FORMATS.get(fmt.lower(), "text/plain") if fmt else req.header("Accept")
    if not accept:
        return MEDIA_TYPES[0]
    ranked: list[tuple[float, bool, str, str]] = []
    for item in accept.split(","):
        match = _ACCEPT_RANGE.match(item)
        if match is None:
            raise error(400, "Invalid Accept header", content_type=HTML)
        main, sub, params = match.groups()
        quality = 1.0
        seen_q = False
        for param in (p.strip() for p in params.split(";")):
            if not param:
                continue
            name, sep, value = param.partition("=")
            if not sep or "=" in value:
                raise error(400, "Invalid Accept header", content_type=HTML)
            if name.strip() == "q":
                if seen_q:
                    raise error(400, "Invalid Accept header", content_type=HTML)
                seen_q = True
                try:
                    quality = float(value.strip())
                except ValueError:
                    raise error(400, "Invalid Accept header",
                                content_type=HTML) from None
        ranked.append((quality, "*" not in (main, sub), main, sub))
    # Stable: equally ranked ranges keep the header's order.
    ranked.sort(key=lambda r: (r[0], r[1]), reverse=True)
    for _quality, _exact, main, sub in ranked:
        for media in MEDIA_TYPES:
            m_main, m_sub = media.split("/")
            if main in ("*", m_main) and sub in ("*", m_sub):
                return media
    raise error(406)


def listing_params(req: Request) -> dict[str, Any]:
    """Return the listing parameters of the query (Swift's names).

    A limit that is not a number is ignored, as Swift ignores it.

    :raises HTTPError: 412 for a limit over 10,000.
    """
    query = req.query
    params: dict[str, Any] = {}
    limit = query.get("limit", "")
    if limit.isdigit():
        number = int(limit)
        if number > MAX_LIMIT:
            raise error(412, "Maximum limit is %d" % MAX_LIMIT, content_type=HTML)
        params["limit"] = number
    for name in ("marker", "end_marker", "prefix", "delimiter"):
        value = query.get(name)
        if value:
            params[name] = value
    if query.get("reverse", "").lower() in TRUE_VALUES:
        params["reverse"] = True
    return params


def _entry_json(kind: str, entry: Any) -> dict[str, Any]:
    if isinstance(entry, Subdir):
        return {"subdir": entry.name}
    if kind == "container":
        item = {
            "name": entry.name,
            "hash": entry.etag,
            "bytes": entry.size,
            "content_type": clean_content_type(entry.content_type),
            "last_modified": entry.created_at.isoformat,
        }
        # A static large object lists its total size and its ETag too.
        item.update(listing_fields(entry.size, entry.etag, entry.metadata))
        # A link lists its target (and a static link its ETag and size).
        item.update(link_fields(entry.metadata))
        return item
    return {
        "name": entry.name,
        "count": entry.object_count,
        "bytes": entry.bytes_used,
        "last_modified": entry.last_modified,
        "storage_policy": POLICY,
    }


def render_listing(
    fmt: str,
    kind: str,
    name: str,
    entries: Iterable[Any],
    headers: Headers,
) -> Response:
    """Return a listing as Swift renders it (an empty plain listing is a 204)."""
    items = [_entry_json(kind, e) for e in entries]
    if fmt.endswith("/json"):
        body = json.dumps(items).encode("ascii")  # \u escapes, as Swift
    elif fmt.endswith("/xml"):
        body = _listing_xml(kind, name, items)
    else:
        if not items:
            return Response(204, b"", headers, content_type=CONTENT_TYPES[fmt])
        body = "".join(
            "%s\n" % item.get("name", item.get("subdir")) for item in items
        ).encode("utf-8")
    return Response(200, body, headers, content_type=CONTENT_TYPES[fmt])


#: The fields of an XML listing entry, in Swift's order (others are left out).
XML_FIELDS: Final = {
    "container": ("name", "hash", "bytes", "content_type", "last_modified"),
    "account": ("name", "count", "bytes", "last_modified", "storage_policy"),
}


def _listing_xml(kind: str, name: str, items: list[dict[str, Any]]) -> bytes:
    """Render an XML listing as Swift's ``listing_formats`` does.

    An account's listing has a newline after its opening tag and after each
    entry, and its subdirs are empty elements; a container's has no
    newlines, and its subdirs hold a ``<name>``.
    """
    doc = ElementTree.Element(kind, name=name)
    if kind == "account":
        doc.text = "\n"
    for item in items:
        if "subdir" in item:
            sub = ElementTree.SubElement(doc, "subdir", name=item["subdir"])
            if kind == "container":
                ElementTree.SubElement(sub, "name").text = item["subdir"]
        else:
            sub = ElementTree.SubElement(
                doc, "object" if kind == "container" else "container")
            for field in XML_FIELDS[kind]:
                if field in item:
                    ElementTree.SubElement(sub, field).text = str(item[field])
        if kind == "account":
            sub.tail = "\n"
    body: bytes = ElementTree.tostring(doc, encoding="UTF-8")
    declaration = b"<?xml version='1.0' encoding='UTF-8'?>"
    if body.startswith(declaration):
        body = body[len(declaration):].lstrip(b"\n")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body
