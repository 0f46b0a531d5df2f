"""Static large object manifests: parsing, checks, ETags, response bodies.

What :mod:`.slo` needs that is pure data, as Swift's ``slo`` and ``bulk``
middlewares have it:

* :func:`parse_put`: a ``?multipart-manifest=put`` body (a JSON list of
  ``{"path", "etag", "size_bytes", "range"}`` or ``{"data"}`` entries)
  checked entry by entry, every problem listed in one 400;
* the stored form (``name``, ``bytes``, ``hash``, ``content_type``,
  ``last_modified``, ``range``, ``sub_slo``; or ``data``), its ETag
  (:func:`slo_etag`: the md5 of the segments' ETags, ``<etag>:<range>;``
  for a ranged one, the md5 of the data for inline data) and its
  ``?format=raw`` conversion back to the PUT form (:func:`raw_form`);
* the bodies of the bulk-style answers (:func:`response_body`) in the
  format ``Accept`` chooses (:func:`best_format`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any
from typing import Final
from urllib import parse as urlparse
from xml.sax import saxutils

from storaged.api.handlers.common import TRUE_VALUES
from storaged.api.protocol import error
from storaged.api.protocol import status_line

#: Most object-backed segments in one manifest (Swift's default).
MAX_MANIFEST_SEGMENTS: Final = 1000
#: Largest manifest PUT body (Swift's default, 8 MiB).
MAX_MANIFEST_SIZE: Final = 8 * 1024 * 1024
#: Seconds between heartbeats of a ``?heartbeat=on`` manifest PUT.
YIELD_FREQUENCY: Final = 10
#: Nesting of manifests in manifests read at most.
MAX_RECURSION: Final = 10
#: The formats of a bulk-style answer, in Swift's order of preference.
ACCEPTABLE_FORMATS: Final = ("text/plain", "application/json", "application/xml",
                             "text/xml")
#: The header that marks a static large object's manifest.
SLO_HEADER: Final = "X-Static-Large-Object"
#: System metadata with the large object's ETag and size (as Swift's).
SYSMETA_ETAG: Final = "X-Object-Sysmeta-Slo-Etag"
SYSMETA_SIZE: Final = "X-Object-Sysmeta-Slo-Size"

_KEYS: Final = {"data": frozenset(), "path": frozenset({"range", "etag", "size_bytes"})}


def is_slo(metadata: Any) -> bool:
    """Tell whether an object's metadata marks a static large object."""
    return str(metadata.get(SLO_HEADER, "")).lower() in TRUE_VALUES


def quote(name: str) -> str:
    """Return a name as Swift lists it in an error: percent-encoded, ``/`` kept."""
    return urlparse.quote(name.encode("utf-8"), safe="/")


def parse_byte_range(text: str) -> tuple[int | None, int | None]:
    """Parse one ``M-N``, ``M-`` or ``-N`` (the ``range`` of a segment).

    :raises ValueError: not one syntactically valid range.
    """
    first, sep, last = text.strip().partition("-")
    if not sep or (not first and not last):
        raise ValueError(text)
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        raise ValueError(text)
    start = int(first) if first else None
    end = int(last) if last else None
    if start is not None and end is not None and end < start:
        raise ValueError(text)
    return start, end


def range_for_length(
    rng: tuple[int | None, int | None], length: int
) -> tuple[int, int] | None:
    """Return ``(start, stop)`` (stop exclusive) of a range, None if unsatisfiable."""
    start, end = rng
    if length <= 0:
        return None
    if start is None:
        assert end is not None
        return None if end == 0 else (max(0, length - end), length)
    if start >= length:
        return None
    return start, length if end is None else min(end + 1, length)


def parse_put(body: bytes, container: str, obj: str) -> list[dict[str, Any]]:
    """Parse and check a manifest PUT's body, as Swift's ``slo`` does.

    ``size_bytes`` becomes an int, ``range`` a ``(start, end)`` pair, and
    ``data`` is normalised (its padding).

    :raises HTTPError: 400 listing every problem, one per line.
    """
    try:
        parsed = json.loads(body)
    except ValueError as err:
        raise error(400, "Manifest must be valid JSON.\n") from err
    if not isinstance(parsed, list):
        raise error(400, "Manifest must be a list.\n")
    problems = []
    last_index = len(parsed) - 1
    for index, seg in enumerate(parsed):
        problem = _check_entry(index, seg, last_index, container, obj)
        if problem:
            problems.append("Index %d: %s" % (index, problem))
    if parsed and all(isinstance(s, dict) and "data" in s for s in parsed):
        problems.append("Inline data segments require at least one "
                        "object-backed segment.")
    if problems:
        raise error(400, "".join(p + "\n" for p in problems))
    return parsed


def _check_entry(
    index: int, seg: Any, last_index: int, container: str, obj: str
) -> str:
    if not isinstance(seg, dict):
        return "not a JSON object"
    kind = next((k for k in _KEYS if k in seg), None)
    if kind is None:
        return "expected keys to include one of 'data' or 'path'"
    extra = sorted(k for k in seg if k not in _KEYS[kind] | {kind})
    if extra:
        return "extraneous keys %s" % ", ".join(json.dumps(k) for k in extra)
    if kind == "data":
        try:
            data = base64.b64decode(seg["data"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            return "data must be valid base64"
        if not data:
            return "too small; each segment must be at least 1 byte."
        seg["data"] = base64.b64encode(data).decode("ascii")
        return ""
    path = seg["path"]
    if not isinstance(path, str):
        return '"path" must be a string'
    if seg.get("etag") is not None and not isinstance(seg["etag"], str):
        return '"etag" must be a string or null (if provided)'
    if "/" not in path.strip("/"):
        return ("path does not refer to an object. Path must be of the form "
                "/container/object.")
    size = seg.get("size_bytes")
    if size is not None:
        try:
            size = int(size)
        except (TypeError, ValueError):
            return "invalid size_bytes"
        seg["size_bytes"] = size
        if size < 1 and index != last_index:
            return "too small; each segment must be at least 1 byte."
    if path.lstrip("/") == "%s/%s" % (container, obj):
        return "manifest must not include itself as a segment"
    if seg.get("range"):
        text = seg["range"]
        if not isinstance(text, str):
            return "invalid range"
        if "," in text:
            try:
                for part in text.split(","):
                    parse_byte_range(part)
            except ValueError:
                return "invalid range"
            return "multiple ranges (only one allowed)"
        try:
            seg["range"] = parse_byte_range(text)
        except ValueError:
            return "invalid range"
        if size is not None and range_for_length(seg["range"], size) is None:
            return "unsatisfiable range"
    else:
        seg.pop("range", None)
    return ""


def segment_length(entry: dict[str, Any]) -> int:
    """The bytes a stored manifest entry contributes."""
    if "data" in entry:
        return len(base64.b64decode(entry["data"]))
    if entry.get("range"):
        start, end = (int(x) for x in entry["range"].split("-"))
        return end - start + 1
    return int(entry["bytes"])


def slo_etag(entries: list[dict[str, Any]]) -> str:
    """Return the large object's ETag (bare) of stored manifest entries."""
    digest = hashlib.md5(usedforsecurity=False)
    for entry in entries:
        if "data" in entry:
            part = hashlib.md5(base64.b64decode(entry["data"]),
                               usedforsecurity=False).hexdigest()
        elif entry.get("range"):
            part = "%s:%s;" % (entry["hash"], entry["range"])
        else:
            part = entry["hash"]
        digest.update(part.encode("ascii"))
    return digest.hexdigest()


def raw_form(entries: list[dict[str, Any]]) -> bytes:
    """Return stored manifest entries in the form they were PUT (``format=raw``)."""
    out = []
    for entry in entries:
        if "data" in entry:
            out.append(entry)
            continue
        item = {k: v for k, v in entry.items()
                if k not in ("content_type", "last_modified", "sub_slo", "name",
                             "bytes", "hash")}
        item["path"] = entry.get("name")
        item["size_bytes"] = entry.get("bytes")
        item["etag"] = entry.get("hash")
        out.append(item)
    return json.dumps(out, sort_keys=True).encode("utf-8")


def best_format(accept: str | None) -> str | None:
    """Return the format of :data:`ACCEPTABLE_FORMATS` ``Accept`` prefers.

    No ``Accept`` means ``text/plain``; None when nothing it lists is
    acceptable.
    """
    if not accept or not accept.strip():
        return ACCEPTABLE_FORMATS[0]
    wanted = []
    for order, item in enumerate(accept.split(",")):
        mime, *params = [p.strip() for p in item.split(";")]
        q = 1.0
        for param in params:
            key, _sep, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    return ACCEPTABLE_FORMATS[0]
        if mime and q > 0:
            wanted.append((-q, order, mime.lower()))
    for _q, _order, mime in sorted(wanted):
        kind, _sep, sub = mime.partition("/")
        for offer in ACCEPTABLE_FORMATS:
            okind, _s, osub = offer.partition("/")
            if kind in ("*", okind) and sub in ("*", osub):
                return offer
    return None


def response_body(
    fmt: str | None, data: dict[str, Any], errors: list[list[str]], root: str
) -> bytes:
    """Render a bulk-style answer (Swift's ``get_response_body``)."""
    if fmt == "application/json":
        data = dict(data, Errors=errors)
        return json.dumps(data).encode("ascii")
    if fmt and fmt.endswith("/xml"):
        out = ["<%s>\n" % root]
        for key in sorted(data):
            tag = key.replace(" ", "_").lower()
            out.append("<%s>%s</%s>\n" % (tag, saxutils.escape(str(data[key])), tag))
        out.append("<errors>\n")
        for name, status in errors:
            out.append("<object><name>%s</name><status>%s</status></object>\n"
                       % (saxutils.escape(name), saxutils.escape(status)))
        out.append("</errors>\n</%s>\n" % root)
        return "".join(out).encode("utf-8")
    lines = ["%s: %s\n" % (key, data[key]) for key in sorted(data)]
    lines.append("Errors:\n")
    lines.extend("%s, %s\n" % (name, status) for name, status in errors)
    return "".join(lines).encode("utf-8")


def listing_fields(size: int, etag: str, metadata: Any) -> dict[str, Any]:
    """Return a manifest's listing fields that differ from its row's.

    A static large object lists its total size as ``bytes`` and its ETag,
    in quotes, as ``slo_etag`` (``hash`` stays the manifest's md5).
    """
    if not is_slo(metadata) or SYSMETA_ETAG not in metadata:
        return {}
    try:
        total = int(metadata.get(SYSMETA_SIZE, size))
    except ValueError:
        total = size
    return {"bytes": total, "slo_etag": '"%s"' % metadata[SYSMETA_ETAG]}


class DeleteTally:
    """What a bulk-style delete did, as Swift's bulk middleware reports it.

    Shared by ``?bulk-delete`` and ``?multipart-manifest=delete``: count
    each name's status, :meth:`finish`, then render with :meth:`body`.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {
            "Response Status": status_line(200), "Response Body": "",
            "Number Deleted": 0, "Number Not Found": 0,
        }
        self.failed: list[list[str]] = []
        self._bad_gateway = False

    def count(self, name: str, status: int) -> None:
        """Count one name's delete: deleted, not found, or failed."""
        if status // 100 == 2:
            self.data["Number Deleted"] += 1
        elif status == 404:
            self.data["Number Not Found"] += 1
        else:
            self._bad_gateway = self._bad_gateway or status // 100 == 5
            self.failed.append([quote(name), status_line(status)])

    def finish(self) -> None:
        """Set the overall status once every name was counted."""
        if self.failed:
            self.data["Response Status"] = status_line(
                502 if self._bad_gateway else 400)
        elif not (self.data["Number Deleted"] or self.data["Number Not Found"]):
            self.refuse(400, "Invalid bulk delete.")

    def refuse(self, status: int, message: str) -> None:
        """The whole request failed: its status and message."""
        self.data["Response Status"] = status_line(status)
        self.data["Response Body"] = message

    def body(self, fmt: str | None) -> bytes:
        """Render the outcome in ``fmt`` (Swift's ``get_response_body``)."""
        return response_body(fmt, self.data, self.failed, "delete")
