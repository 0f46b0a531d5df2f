"""The ``http`` driver: read-only objects behind HTTP(S) URLs.

A location is the object's URL (``https://mirror.example.org/images/x``).
``get`` sends a GET, with a ``Range`` header for ranged reads; ``get_size``
sends a HEAD (or a one-byte ranged GET when HEAD is refused).  Every request
has a connect and a read timeout; redirects are followed up to a bound, never
from ``https`` to ``http``; TLS certificates are verified by default.

Only the standard library is used (``http.client``): under eventlet its
sockets are green, under threads they block only the calling thread.
"""

from __future__ import annotations

import base64
import http.client
import re
import ssl
from urllib import parse as urlparse

from oslo_config import cfg

from storaged import exception
from storaged.objectstore.capabilities import Capability
from storaged.objectstore.driver import ChunkIterator
from storaged.objectstore.driver import Driver
from storaged.objectstore.driver import InvalidRange

MiB = 1024 * 1024

_REDIRECTS = (301, 302, 303, 307, 308)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)\s*\Z")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)\s*\Z")
_USER_AGENT = "storaged-objectstore"

OPTIONS = [
    cfg.FloatOpt(
        "connect_timeout",
        default=10.0,
        min=0.1,
        max=600.0,
        help="Seconds to wait for a TCP (and TLS) connection to be set up.",
    ),
    cfg.FloatOpt(
        "read_timeout",
        default=60.0,
        min=0.1,
        max=3600.0,
        help="""
Seconds to wait for each read from the server (not for the whole transfer):
a server that stops sending for this long fails the read.
""",
    ),
    cfg.IntOpt(
        "max_redirects",
        default=5,
        min=0,
        max=20,
        help="""
Redirects followed per request before giving up. A redirect from ``https``
to ``http`` is never followed.
""",
    ),
    cfg.StrOpt(
        "https_ca_certificates_file",
        help="""
CA certificates (PEM) used to verify HTTPS servers, instead of the system's.

Possible values:
    * An absolute path to a PEM file; unset to use the system CA store

Related options:
    * ``https_insecure``
""",
    ),
    cfg.BoolOpt(
        "https_insecure",
        default=False,
        help="""
DANGEROUS: do not verify HTTPS certificates or host names.

Anyone on the network path can then serve other data in place of the
objects. Only for testing; use ``https_ca_certificates_file`` for private
CAs instead.

Related options:
    * ``https_ca_certificates_file``
""",
    ),
    cfg.ListOpt(
        "allowed_url_prefixes",
        default=[],
        help="""
URL prefixes locations (and redirects) must start with.

Empty allows any ``http://`` or ``https://`` URL. Set it when locations can
come from users, so that the store cannot be used to reach internal
services.

Possible values:
    * A comma-separated list of URL prefixes, e.g.
      ``https://mirror.example.org/images/``
""",
    ),
    cfg.IntOpt(
        "chunk_size",
        default=MiB,
        min=4096,
        max=64 * MiB,
        help="Bytes read from the server at a time; the size of chunks ``get`` yields.",
    ),
]


def redact(url: str) -> str:
    """Return ``url`` fit for a message: without its password, not too long."""
    try:
        parts = urlparse.urlsplit(url)
        if parts.password is not None:
            netloc = "{}:***@{}".format(
                parts.username or "", parts.netloc.rsplit("@", 1)[-1]
            )
            url = urlparse.urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        url = "<unparsable URL>"
    return url if len(url) <= 200 else url[:200] + "..."


class HttpStore(Driver):
    """Read-only objects served over HTTP(S)."""

    OPTIONS = OPTIONS
    CAPABILITIES = (
        Capability.READ
        | Capability.RANGE_READ
        | Capability.REUSABLE
        | Capability.THREAD_SAFE
    )
    SCHEMES = ("http", "https")
    BLOCKING_IO = False  # a network client: green under eventlet

    @classmethod
    def check_conf(cls, conf: cfg.ConfigOpts, backend_id: str) -> None:
        group = conf[backend_id]
        cafile = group.https_ca_certificates_file
        if cafile:
            if group.https_insecure:
                raise exception.ConfigError(
                    "is set while https_insecure is on: certificates would not "
                    "be verified at all; turn https_insecure off",
                    group=backend_id,
                    option="https_ca_certificates_file",
                )
            if not cafile.startswith("/"):
                raise exception.ConfigError(
                    f"{cafile!r} is not an absolute path",
                    group=backend_id,
                    option="https_ca_certificates_file",
                )
        for prefix in group.allowed_url_prefixes:
            parts = urlparse.urlsplit(prefix)
            if parts.scheme not in cls.SCHEMES or not parts.hostname:
                raise exception.ConfigError(
                    f"{prefix!r} is not an http:// or https:// URL prefix with a host",
                    group=backend_id,
                    option="allowed_url_prefixes",
                )

    def __init__(self, conf: cfg.ConfigOpts, backend_id: str) -> None:
        super().__init__(conf, backend_id)
        group = conf[backend_id]
        self._connect_timeout = float(group.connect_timeout)
        self._read_timeout = float(group.read_timeout)
        self._max_redirects = int(group.max_redirects)
        self._chunk_size = int(group.chunk_size)
        self._prefixes = list(group.allowed_url_prefixes)
        try:
            self._tls = ssl.create_default_context(
                cafile=group.https_ca_certificates_file or None
            )
        except (OSError, ssl.SSLError) as err:
            raise exception.ConfigError(
                f"cannot load {group.https_ca_certificates_file}: {err}",
                group=backend_id,
                option="https_ca_certificates_file",
            ) from err
        if group.https_insecure:
            self._tls.check_hostname = False
            self._tls.verify_mode = ssl.CERT_NONE

    # -- URLs ----------------------------------------------------------------

    def _check_url(self, url: str) -> urlparse.SplitResult:
        def refuse(reason: str) -> exception.InvalidLocation:
            return exception.InvalidLocation(
                backend=self.backend_id, reason=f"{redact(url)}: {reason}"
            )

        if any(c <= " " or c == "\x7f" for c in url):
            raise refuse("spaces and control characters are not allowed")
        try:
            parts = urlparse.urlsplit(url)
            _ = parts.port  # raises ValueError for a bad port
        except ValueError as err:
            raise refuse(str(err)) from None
        if parts.scheme not in self.SCHEMES:
            raise refuse("only http:// and https:// URLs are served")
        if not parts.hostname:
            raise refuse("no host name")
        if self._prefixes and not any(url.startswith(p) for p in self._prefixes):
            raise refuse("outside the allowed URL prefixes")
        return parts

    # -- requests ------------------------------------------------------------

    def _unavailable(self, url: str, reason: str) -> exception.BackendUnavailable:
        return exception.BackendUnavailable(
            backend=self.backend_id, reason=f"{redact(url)}: {reason}"
        )

    def _connect(self, parts: urlparse.SplitResult) -> http.client.HTTPConnection:
        host = parts.hostname or ""
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, parts.port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(
                host, parts.port, timeout=self._connect_timeout
            )
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self._read_timeout)
        return conn

    def _request(
        self, method: str, url: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, str]:
        """Send a request, following redirects; return the final response."""
        first = self._check_url(url)
        original = url
        for _hop in range(self._max_redirects + 1):
            parts = self._check_url(url)
            target = urlparse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            send = {
                "User-Agent": _USER_AGENT,
                "Accept-Encoding": "identity",
                **headers,
            }
            if parts.username is not None and parts.hostname == first.hostname:
                creds = "{}:{}".format(
                    urlparse.unquote(parts.username),
                    urlparse.unquote(parts.password or ""),
                )
                send["Authorization"] = (
                    "Basic " + base64.b64encode(creds.encode()).decode()
                )
            conn = None
            try:
                conn = self._connect(parts)
                conn.request(method, target, headers=send)
                resp = conn.getresponse()
            except ssl.SSLCertVerificationError as err:
                if conn is not None:
                    conn.close()
                raise self._unavailable(
                    url, f"TLS certificate verification failed: {err.verify_message}"
                ) from err
            except TimeoutError as err:
                if conn is not None:
                    conn.close()
                raise self._unavailable(url, "timed out") from err
            except (OSError, http.client.HTTPException) as err:
                if conn is not None:
                    conn.close()
                raise self._unavailable(url, str(err) or type(err).__name__) from err
            if resp.status not in _REDIRECTS:
                return conn, resp, url
            target_url = resp.getheader("Location")
            conn.close()
            if not target_url:
                raise self._unavailable(url, "redirect without a Location")
            new_url = urlparse.urljoin(url, target_url)
            if urlparse.urlsplit(url).scheme == "https" and not new_url.startswith(
                "https:"
            ):
                raise self._unavailable(url, "refusing a redirect from https to http")
            url = new_url
        raise self._unavailable(original, f"more than {self._max_redirects} redirects")

    def _fail(self, url: str, resp: http.client.HTTPResponse) -> exception.StoreError:
        if resp.status in (404, 410):
            return exception.ObjectNotFound(what=redact(url))
        if resp.status >= 500 or resp.status in (408, 429):
            return self._unavailable(url, f"HTTP {resp.status} {resp.reason}")
        return exception.StoreError(
            reason=f"back end {self.backend_id}: {redact(url)}: "
            f"HTTP {resp.status} {resp.reason}"
        )

    # -- operations ----------------------------------------------------------

    def _verify_store(self) -> None:
        """Reach each allowed URL prefix (any HTTP answer will do).

        Without ``allowed_url_prefixes`` there is no server to check until a
        location names one.
        """
        for prefix in self._prefixes:
            conn, _resp, _url = self._request("HEAD", prefix, {})
            conn.close()

    def _get_size(self, location: str) -> int:
        conn, resp, url = self._request("HEAD", location, {})
        try:
            length = resp.getheader("Content-Length")
            if resp.status == 200 and length is not None and length.isdigit():
                return int(length)
            if resp.status not in (200, 405, 501):
                raise self._fail(url, resp)
        finally:
            conn.close()
        # HEAD refused or without a length: ask for one byte.
        conn, resp, url = self._request("GET", location, {"Range": "bytes=0-0"})
        try:
            total = _total_size(resp)
            if total is None:
                raise (
                    self._fail(url, resp)
                    if resp.status >= 300
                    else self._unavailable(url, "the server does not give the size")
                )
            return total
        finally:
            conn.close()

    def _get(
        self,
        location: str,
        offset: int,
        length: int | None,
        chunk_size: int | None,
        verify: bool,
    ) -> tuple[ChunkIterator, int]:
        if length == 0:
            size = self._get_size(location)
            if offset > size:
                raise InvalidRange(
                    what=redact(location),
                    reason=f"offset {offset} is beyond its {size} bytes",
                )
            return _HttpChunks(self, location, None, None, 0, 1), 0
        headers: dict[str, str] = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        conn, resp, url = self._request("GET", location, headers)
        try:
            skip, n = self._body_range(url, resp, offset, length)
        except BaseException:
            conn.close()
            raise
        chunks = _HttpChunks(
            self, url, conn, resp, n, chunk_size or self._chunk_size, skip=skip
        )
        return chunks, n

    def _body_range(
        self,
        url: str,
        resp: http.client.HTTPResponse,
        offset: int,
        length: int | None,
    ) -> tuple[int, int]:
        """Return (bytes to skip, bytes to hand out) of a GET's body."""
        if resp.status == 416:
            match = _UNSATISFIED_RANGE.match(resp.getheader("Content-Range") or "")
            if match and offset == int(match.group(1)):
                return 0, 0  # offset == size: nothing left, not an error
            raise InvalidRange(
                what=redact(url),
                reason=f"offset {offset} is beyond the end of the object",
            )
        if resp.status == 206:
            match = _CONTENT_RANGE.match(resp.getheader("Content-Range") or "")
            if not match or int(match.group(1)) != offset:
                raise self._unavailable(url, "bad Content-Range in a 206 answer")
            n = int(match.group(2)) - offset + 1
            if length is not None and n > length:
                raise self._unavailable(
                    url, "the server sent a larger range than asked"
                )
            return 0, n
        if resp.status == 200:
            header = resp.getheader("Content-Length")
            if header is None or not header.isdigit():
                raise self._unavailable(url, "no Content-Length in the answer")
            total = int(header)
            if offset > total:
                raise InvalidRange(
                    what=redact(url),
                    reason=f"offset {offset} is beyond its {total} bytes",
                )
            # The server ignored Range: skip to the offset ourselves.
            n = total - offset if length is None else min(length, total - offset)
            return offset, n
        raise self._fail(url, resp)


def _total_size(resp: http.client.HTTPResponse) -> int | None:
    if resp.status == 206:
        match = _CONTENT_RANGE.match(resp.getheader("Content-Range") or "")
        if match and match.group(3) != "*":
            return int(match.group(3))
        return None
    if resp.status == 416:
        match = _UNSATISFIED_RANGE.match(resp.getheader("Content-Range") or "")
        return int(match.group(1)) if match else None
    if resp.status == 200:
        header = resp.getheader("Content-Length")
        return int(header) if header is not None and header.isdigit() else None
    return None


class _HttpChunks:
    """Chunks of an HTTP answer's body; fails if it ends early."""

    def __init__(
        self,
        store: HttpStore,
        url: str,
        conn: http.client.HTTPConnection | None,
        resp: http.client.HTTPResponse | None,
        length: int,
        chunk_size: int,
        skip: int = 0,
    ) -> None:
        self._store = store
        self._url = url
        self._conn = conn
        self._resp = resp
        self._remaining = length
        self._length = length
        self._chunk_size = chunk_size
        self._skip = skip

    def __iter__(self) -> _HttpChunks:
        return self

    def __enter__(self) -> _HttpChunks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, n: int) -> bytes:
        assert self._resp is not None
        try:
            data: bytes = self._resp.read(n)
        except TimeoutError as err:
            raise self._store._unavailable(
                self._url, "timed out while reading"
            ) from err
        except (OSError, http.client.HTTPException) as err:
            raise self._store._unavailable(
                self._url, str(err) or type(err).__name__
            ) from err
        if not data:
            raise self._store._unavailable(
                self._url,
                f"the connection ended after {self._length - self._remaining} "
                f"of {self._length} bytes",
            )
        return data

    def __next__(self) -> bytes:
        if self._resp is None or self._remaining <= 0:
            self.close()
            raise StopIteration
        try:
            while self._skip:
                self._skip -= len(self._read(min(self._skip, self._chunk_size)))
            data = self._read(min(self._chunk_size, self._remaining))
        except BaseException:
            self.close()
            raise
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        """Close the connection (safe to call more than once)."""
        conn, self._conn, self._resp = self._conn, None, None
        if conn is not None:
            conn.close()

    def __del__(self) -> None:
        self.close()
