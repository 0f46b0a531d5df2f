"""Form POST, as Swift's ``formpost`` middleware: browsers upload without a token.

A web page holds a form whose hidden fields are signed with one of the
temporary URL keys (:mod:`storaged.api.tempurl`); the browser sends it as
``multipart/form-data`` to a container or to an object prefix::

    POST /v1/AUTH_test/uploads/user42_
    <input name="redirect" value="https://example.com/done">
    <input name="max_file_size" value="104857600">
    <input name="max_file_count" value="10">
    <input name="expires" value="1765123456">
    <input name="signature" value="<hmac>">
    <input type="file" name="file1">

and each file becomes an object PUT of ``<path><filename>`` (a ``/`` added
after a container's name).  The signature is an HMAC under an account or
container key of ``<path>\\n<redirect>\\n<max_file_size>\\n<max_file_count>\\n
<expires>``, hex or ``<digest>:<base64>`` as a temporary URL's.  Optional
fields, not signed: ``x_delete_at``, ``x_delete_after``, ``content-type``,
``content-encoding`` (a file part's own ``Content-Type`` and
``Content-Encoding`` count when the form sets none).  As in Swift, fields
after the first file are not seen by it (they count for the next files).

Memory stays bounded: the body is read as a stream, a field's value keeps
its first 4096 bytes, and each file streams to the object store through
the object handler (:meth:`Handlers.dispatch <storaged.api.handlers.Handlers.
dispatch>`) as the PUT of ``Identity("", <account>, via="formpost")``,
with every check and feature of a client's PUT (quotas, expiry from
``x_delete_at`` / ``x_delete_after``, versioning ...).  The signature is checked
when the first file arrives, before any of it is stored.

Answers, Swift's: the first file PUT's status, or after every file the last
one's (``201 Created``, text/plain), or with ``redirect`` a **303** to it
with ``status=`` and ``message=`` added; 400 ``FormPost: <reason>`` for a
bad form (``max_file_size exceeded``, ``max file count exceeded``, ``no
files to process``, ``invalid starting boundary`` ...); 401 ``FormPost:
Invalid Signature`` or ``FormPost: Form Expired``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
import email.parser
import hmac
import re
import time
from typing import Any
from typing import Final
from urllib import parse as urlparse

from storaged import concurrency
from storaged import exception
from storaged.api import auth
from storaged.api import errors
from storaged.api import routes
from storaged.api import tempurl
from storaged.api.body import BodyReader
from storaged.api.protocol import HTML
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import status_line
from storaged.objects.repository import ObjectRepository

#: Bytes read from the form at a time.
READ_CHUNK_SIZE: Final = 4096
#: Bytes of a field's value kept (the rest is read and dropped).
MAX_VALUE_LENGTH: Final = 4096
#: Longest line of a part's headers.
MAX_HEADER_LINE: Final = 8192
#: A part's headers, at most.
MAX_HEADER_LINES: Final = 100
#: Where the body of a form POST is read from (see :class:`BodyReader`).
_UNBOUNDED: Final = 1 << 62

_ATTRIBUTES = re.compile(r'(\w+)=(".*?"|[^";]+)(; ?|$)')

Dispatch = Callable[[Request, routes.Route, auth.Identity], Response]


class FormInvalid(exception.StoragedError):
    """The form is not acceptable: 400 ``FormPost: <reason>``."""

    msg_fmt = "invalid form"


class FormUnauthorized(exception.StoragedError):
    """Bad signature, or expired: 401 ``FormPost: <Reason>``."""

    msg_fmt = "invalid signature"


class MimeInvalid(exception.StoragedError):
    """The body does not start with the boundary."""

    msg_fmt = "invalid starting boundary"


def parse_attributes(header: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="a"; filename="b"`` into its value and attributes."""
    attributes: dict[str, str] = {}
    attrs = ""
    if ";" in header:
        header, attrs = (x.strip() for x in header.split(";", 1))
    while True:
        match = _ATTRIBUTES.match(attrs)
        if not match:
            break
        attrs = attrs[len(match.group(0)):]
        attributes[match.group(1)] = match.group(2).strip('"')
    return header, attributes


def is_form_post(req: Request) -> bool:
    """Tell whether ``req`` is a form POST (``multipart/form-data`` with a boundary)."""
    if req.method != "POST":
        return False
    kind, attrs = parse_attributes(req.environ.get("CONTENT_TYPE") or "")
    return kind == "multipart/form-data" and "boundary" in attrs


def identify(req: Request, route: routes.Route) -> tuple[auth.Identity, str] | None:
    """Return the identity of a form POST (checked by its signature later), or None.

    Swift's ``formpost`` takes every such POST, a token or not; the
    facade hands it to :meth:`FormPost.post`.
    """
    if route.kind not in (routes.ACCOUNT, routes.CONTAINER, routes.OBJECT):
        return None
    if not is_form_post(req):
        return None
    return auth.Identity("", route.account, via="formpost"), "formpost"


def info() -> dict[str, list[str]]:
    """Return ``/info``'s ``formpost``, as Swift's middleware registers it."""
    return {
        "allowed_digests": sorted(tempurl.ALLOWED_DIGESTS),
        "deprecated_digests": sorted(tempurl.DEPRECATED_DIGESTS),
    }


class _Input:
    """The form's body, with a look-ahead buffer (a chunk and a boundary at most)."""

    def __init__(self, reader: BodyReader) -> None:
        self._reader = reader
        self.buffer = b""
        self.eof = False

    def fill(self, size: int) -> None:
        """Read until the buffer holds ``size`` bytes or the body ends."""
        while len(self.buffer) < size and not self.eof:
            chunk = self._reader.read(max(size - len(self.buffer), READ_CHUNK_SIZE))
            if not chunk:
                self.eof = True
            self.buffer += chunk

    def readline(self, limit: int) -> bytes:
        """Return a line (up to ``limit`` bytes, its CRLF included)."""
        self.fill(limit)
        end = self.buffer.find(b"\n", 0, limit)
        end = limit if end < 0 else end + 1
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line


class _Part:
    """One part of the form: its bytes up to the next boundary (file-like)."""

    def __init__(self, data: _Input, boundary: bytes) -> None:
        self._data = data
        self._boundary = boundary
        self.done = False
        #: The boundary after this part was the closing one (or the body ended).
        self.last = False

    def read(self, size: int = -1) -> bytes:
        if self.done:
            return b""
        if size is None or size <= 0:
            size = READ_CHUNK_SIZE
        data = self._data
        data.fill(size + len(self._boundary) + 2)
        at = data.buffer.find(self._boundary)
        if at < 0 or at > size:
            out, data.buffer = data.buffer[:size], data.buffer[size:]
            if not out:  # the body ended without a closing boundary
                self.done = self.last = True
            return out
        out = data.buffer[:at]
        rest = data.buffer[at + len(self._boundary):]
        self.last = rest.startswith(b"--")
        data.buffer = rest[2:]
        self.done = True
        return out

    def readline(self) -> bytes:
        """Return a header line (CRLF or LF ended); bounded."""
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.read(1)
            if not chunk:
                break
            line += chunk
            if len(line) > MAX_HEADER_LINE:
                raise FormInvalid("header line too long")
        return line

    def drain(self) -> None:
        while self.read(READ_CHUNK_SIZE):
            pass


def parts(reader: BodyReader, boundary: bytes) -> Iterable[_Part]:
    """Yield the parts of a ``multipart/form-data`` body, one after the other.

    :raises MimeInvalid: the body does not start with the boundary.
    """
    data = _Input(reader)
    start = b"--" + boundary
    line = data.readline(len(start) + 2)
    while line == b"\r\n":
        line = data.readline(len(start) + 2)
    if line.strip() != start:
        raise MimeInvalid("invalid starting boundary")
    while True:
        part = _Part(data, b"\r\n" + start)
        yield part
        part.drain()
        if part.last:
            return


def part_headers(part: _Part) -> dict[str, str]:
    """Read a part's headers (names in lower case); the part is left at its body."""
    lines = []
    while True:
        line = part.readline()
        done = line in (b"\r\n", b"\n", b"")
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line.decode("latin-1"))
        if done:
            break
        if len(lines) > MAX_HEADER_LINES:
            raise FormInvalid("too many headers")
    message = email.parser.Parser().parsestr("".join(lines))
    return {name.lower(): str(value) for name, value in message.items()}


class _CappedPart:
    """A file part read as an upload, refused past ``max_file_size``."""

    def __init__(self, part: _Part, limit: int) -> None:
        self._part = part
        self._limit = limit
        self.received = 0
        self.exceeded = False

    def read(self, size: int = -1) -> bytes:
        data = self._part.read(size)
        self.received += len(data)
        if self.received > self._limit:
            self.exceeded = True
            raise FormInvalid("max_file_size exceeded")
        return data


def _text_body(status: int, text: str, content_type: str = "text/plain") -> Response:
    return Response(status, text.encode("utf-8"), content_type=content_type)


class FormPost:
    """Answers form POSTs, storing each file through ``dispatch``.

    :param dispatch: :meth:`Handlers.dispatch
        <storaged.api.handlers.Handlers.dispatch>`.
    :param service: the object service (for the keys).
    :param client_timeout: seconds a client may stay silent.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        service: ObjectRepository,
        client_timeout: float,
    ) -> None:
        self._dispatch = dispatch
        self._service = service
        self._timeout = client_timeout

    def post(self, req: Request, route: routes.Route) -> Response:
        """Answer a form POST (:func:`is_form_post`)."""
        _kind, attrs = parse_attributes(req.environ.get("CONTENT_TYPE") or "")
        length = req.content_length
        reader = BodyReader(req.environ["wsgi.input"], length, _UNBOUNDED,
                            self._timeout)
        req.environ["storaged.body"] = reader
        try:
            return self._translate(req, route, reader, attrs["boundary"])
        except MimeInvalid:
            return _text_body(400, "FormPost: invalid starting boundary")
        except FormInvalid as err:
            return _text_body(400, "FormPost: %s" % err)
        except FormUnauthorized as err:
            realm = urlparse.quote(route.account or "unknown", safe="")
            response = _text_body(401, "FormPost: %s" % str(err).title(), HTML)
            response.headers["Www-Authenticate"] = 'Swift realm="%s"' % realm
            return response

    def _keys(self, req: Request, route: routes.Route) -> list[str]:
        pieces = req.environ.get("PATH_INFO", "").split("/", 4)
        if (len(pieces) < 4 or pieces[0] or pieces[1] not in routes.VERSIONS
                or not pieces[2] or not pieces[3]):
            return []
        account_keys, container_keys, _exists = concurrency.run_blocking(
            tempurl.read_keys, self._service, route.account, route.container
        )
        return account_keys + container_keys

    def _translate(
        self, req: Request, route: routes.Route, reader: BodyReader, boundary: str
    ) -> Response:
        keys = self._keys(req, route)
        status = 0
        message = ""
        attributes: dict[str, str] = {}
        sub_headers: list[tuple[str, str]] = []
        sub_body = b""
        file_count = 0
        for part in parts(reader, boundary.encode("utf-8")):
            headers = part_headers(part)
            disposition, attrs = parse_attributes(
                headers.get("content-disposition", ""))
            if disposition == "form-data" and attrs.get("filename"):
                file_count += 1
                try:
                    max_count = int(attributes.get("max_file_count") or 0)
                except ValueError:
                    raise FormInvalid("max_file_count not an integer") from None
                if file_count > max_count:
                    status, message = 400, "max file count exceeded"
                    break
                file_attributes = dict(attributes)
                file_attributes["filename"] = attrs["filename"] or "filename"
                if "content-type" not in attributes and "content-type" in headers:
                    file_attributes["content-type"] = (
                        headers["content-type"] or "application/octet-stream")
                if ("content-encoding" not in attributes
                        and "content-encoding" in headers):
                    file_attributes["content-encoding"] = headers["content-encoding"]
                status, sub_headers, sub_body = self._store(
                    req, file_attributes, part, keys)
                if not 200 <= status < 300:
                    break
            else:
                value = b""
                while len(value) < MAX_VALUE_LENGTH:
                    chunk = part.read(MAX_VALUE_LENGTH - len(value))
                    if not chunk:
                        break
                    value += chunk
                part.drain()
                if "name" in attrs:
                    text = value.decode("utf-8", "replace")
                    attributes[attrs["name"].lower()] = text.rstrip("\r\n-")
        if not status:
            status, message = 400, "no files to process"
        return self._answer(status, message, attributes, sub_headers, sub_body)

    def _answer(
        self, status: int, message: str, attributes: dict[str, str],
        sub_headers: list[tuple[str, str]], sub_body: bytes,
    ) -> Response:
        headers = [(k, v) for k, v in sub_headers
                   if k.lower().startswith("access-control")]
        redirect = attributes.get("redirect")
        if not redirect:
            text = status_line(status)
            if message:
                text += "\r\nFormPost: " + message.title()
            body = text.encode("utf-8")
            if not 200 <= status < 300 and sub_body:
                body = sub_body
            return Response(status, body, headers, content_type="text/plain")
        redirect += "&" if "?" in redirect else "?"
        redirect += "status=%s&message=%s" % (
            urlparse.quote(str(status)), urlparse.quote(message))
        body = ('<html><body><p><a href="%s">Click to continue...</a></p>'
                "</body></html>" % redirect).encode("utf-8")
        response = Response(303, body, [*headers, ("Location", redirect)])
        response.headers.pop("Content-Type")  # Swift sends none
        return response

    def _store(
        self, req: Request, attributes: dict[str, str], part: _Part, keys: list[str],
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Check the form's signature and PUT one file; return the PUT's answer."""
        if not keys:
            raise FormUnauthorized("invalid signature")
        try:
            max_file_size = int(attributes.get("max_file_size") or 0)
        except ValueError:
            raise FormInvalid("max_file_size not an integer") from None
        capped = _CappedPart(part, max_file_size)
        path_info = req.environ.get("PATH_INFO", "")
        if not path_info.endswith("/") and path_info.count("/") < 4:
            path_info += "/"
        filename = attributes["filename"] or "filename"
        path_info += filename.encode("utf-8", "surrogateescape").decode("latin-1")
        env: dict[str, Any] = {
            key: req.environ[key]
            for key in ("SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "HTTP_HOST",
                        "REMOTE_ADDR", "HTTP_USER_AGENT", "HTTP_ORIGIN",
                        "HTTP_REFERER", "wsgi.url_scheme", "wsgi.errors")
            if key in req.environ
        }
        env.update({
            "REQUEST_METHOD": "PUT",
            "PATH_INFO": path_info,
            "QUERY_STRING": "",
            "HTTP_TRANSFER_ENCODING": "chunked",
            "wsgi.input": capped,
        })
        for field, key, what in (
            ("x_delete_at", "HTTP_X_DELETE_AT", "Unix timestamp required."),
            ("x_delete_after", "HTTP_X_DELETE_AFTER", "Number of seconds required."),
        ):
            if field in attributes:
                try:
                    env[key] = str(int(attributes[field]))
                except ValueError:
                    raise FormInvalid("%s not an integer: %s" % (field, what)) from None
        if "content-type" in attributes:
            env["CONTENT_TYPE"] = (
                attributes["content-type"] or "application/octet-stream")
        if "content-encoding" in attributes:
            env["HTTP_CONTENT_ENCODING"] = attributes["content-encoding"]
        try:
            if int(attributes.get("expires") or 0) < time.time():
                raise FormUnauthorized("form expired")
        except ValueError:
            raise FormInvalid("expired not an integer") from None
        self._check_signature(req, attributes, keys)
        response = self._put(req, env, capped)
        return (response.status, response.headers.items(),
                b"".join(_chunks(response)))

    def _check_signature(
        self, req: Request, attributes: dict[str, str], keys: list[str]
    ) -> None:
        message = "%s\n%s\n%s\n%s\n%s" % (
            req.path,
            attributes.get("redirect") or "",
            attributes.get("max_file_size") or "0",
            attributes.get("max_file_count") or "0",
            attributes.get("expires") or "0",
        )
        try:
            digest, signature = tempurl.parse_signature(attributes.get("signature", ""))
        except ValueError:
            raise FormUnauthorized("invalid signature") from None
        if digest not in tempurl.ALLOWED_DIGESTS:
            raise FormUnauthorized("invalid signature")
        valid = False
        for key in keys:
            expected = hmac.new(key.encode("utf-8"), message.encode("utf-8"),
                                digest).hexdigest()
            # Every key is compared, whatever matched before.
            valid |= hmac.compare_digest(
                expected.encode("ascii"), signature.encode("utf-8", "replace"))
        if not valid:
            raise FormUnauthorized("invalid signature")

    def _put(self, req: Request, env: dict[str, Any], capped: _CappedPart) -> Response:
        """PUT one file as a client's request would go; its answer, errors included."""
        try:
            path = routes.decode_path(env["PATH_INFO"])
            sub = Request(env, path, req.request_id)
            route = routes.route(path, self._service.catalog.limits)
            ident = auth.Identity("", route.account, via="formpost")
            response = self._dispatch(sub, route, ident)
        except Exception as err:
            if capped.exceeded:
                raise FormInvalid("max_file_size exceeded") from err
            if isinstance(err, HTTPError):
                return err.response
            if isinstance(err, exception.StoragedError):
                return errors.to_http(err).response
            raise
        if capped.exceeded:
            raise FormInvalid("max_file_size exceeded")
        return response


def _chunks(response: Response) -> Iterable[bytes]:
    chunks = response.chunks()
    try:
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
