"""The sync daemon's HTTP client: Swift's container-sync protocol, kept alive.

:class:`HttpClient` keeps idle connections per target host (and proxy) and
reuses them, so that a pass over many rows costs one TCP handshake per
connection in flight, not one per request as Swift's ``SimpleClient``.
Every socket operation has a timeout.  A request on a reused connection
that the server had closed meanwhile is sent again once on a fresh one.

:class:`TargetClient` speaks to one target container the way Swift's
``swift-container-sync`` does::

    HEAD   /v1/AUTH_b/dst/<name>   X-Timestamp, auth
    PUT    /v1/AUTH_b/dst/<name>   X-Timestamp, Etag, Content-Type,
                                   Content-Length, X-Object-Meta-*, auth
    DELETE /v1/AUTH_b/dst/<name>   X-Timestamp, auth

where *auth* is ``X-Container-Sync-Auth: <REALM> <nonce> <sig>`` for a realm
target (``//realm/cluster/a/c``) and ``X-Container-Sync-Key: <key>`` for a
full-URL target.  The path is percent-encoded canonically (UTF-8, only
unreserved characters and ``/`` kept), and that same text is what is
signed, so a receiver that re-canonicalises the path (Swift's proxy,
``storaged-api``) computes the same signature.

Keys are secrets: they appear in no log line, exception text or ``repr``.
Green-thread safe (under eventlet the sockets are green); not meant to be
shared between OS threads.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import http.client
import logging
import random
import select
import threading
from typing import Final
from urllib import parse as urlparse

import tenacity

from storaged import exception
from storaged.common import headerbytes
from storaged.common import retry
from storaged.sync import realms as realms_mod

LOG = logging.getLogger(__name__)

#: Bytes of a response body kept (an error text); a longer body is drained
#: up to :data:`_MAX_DRAIN` so the connection can be reused, else closed.
_MAX_BODY: Final = 4096
_MAX_DRAIN: Final = 1 << 20
#: Idle connections kept per host.
DEFAULT_MAX_IDLE: Final = 64
USER_AGENT: Final = "storaged-sync"

# Errors that mean "the server closed this kept-alive connection", met
# before any response was read: the request can be sent again.
_STALE: Final = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)

#: A request body: bytes, or a callable giving a fresh iterable of chunks
#: (called again if the request must be re-sent).
Body = bytes | Callable[[], Iterable[bytes]] | None


def _text(value: str) -> str:
    return headerbytes.native_to_text(value, strict=False)


class SyncRequestError(exception.StoragedError):
    """A request to a sync target failed (no answer, timeout, bad answer)."""

    msg_fmt = "%(method)s %(url)s: %(reason)s"


class _StaleConnection(SyncRequestError):
    """A kept-alive connection had been closed by the server: send again."""


class TargetError(exception.StoragedError):
    """A target answered with a status that fails the row."""

    msg_fmt = "%(method)s %(url)s: HTTP %(status)s %(text)s"


@dataclasses.dataclass(frozen=True)
class Response:
    """A target's answer: status, headers (lower-case names), start of the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        """Return a header's value (any case), or ``default``."""
        return self.headers.get(name.lower(), default)


def _split(url: str) -> tuple[str, str, int, str]:
    parts = urlparse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL: %r" % url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return parts.scheme, parts.hostname, port, path


class HttpClient:
    """HTTP/1.1 requests over persistent connections, with timeouts.

    :param timeout: seconds for connecting and for each socket read/write.
    :param proxies: ``http://host:port`` proxies, one picked at random per
        new connection (Swift's ``sync_proxy``); empty for direct.
    :param max_idle: idle connections kept per host.
    """

    def __init__(
        self,
        timeout: float = 10.0,
        proxies: Sequence[str] = (),
        max_idle: int = DEFAULT_MAX_IDLE,
    ) -> None:
        self.timeout = timeout
        self.proxies = [p for p in (x.strip() for x in proxies) if p]
        for proxy in self.proxies:
            _split(proxy)  # raises ValueError for a malformed proxy URL
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        #: connections opened so far (tests and stats)
        self.connections_opened = 0

    def __repr__(self) -> str:
        return "<HttpClient timeout=%s proxies=%d>" % (self.timeout, len(self.proxies))

    def _new(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        self.connections_opened += 1
        conn: http.client.HTTPConnection
        if not self.proxies:
            if scheme == "https":
                return http.client.HTTPSConnection(host, port, timeout=self.timeout)
            return http.client.HTTPConnection(host, port, timeout=self.timeout)
        proxy = random.choice(self.proxies)  # noqa: S311 (load spreading)
        _pscheme, phost, pport, _path = _split(proxy)
        if scheme == "https":
            conn = http.client.HTTPSConnection(phost, pport, timeout=self.timeout)
            conn.set_tunnel(host, port)
        else:
            conn = http.client.HTTPConnection(phost, pport, timeout=self.timeout)
        return conn

    def _take(
        self, key: tuple[str, str, int]
    ) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None:
                return self._new(*key), False
            if _peer_closed(conn):
                conn.close()
                continue
            return conn, True

    def _give_back(
        self, key: tuple[str, str, int], conn: http.client.HTTPConnection
    ) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        conn.close()

    def sweep(self) -> int:
        """Close the idle connections that their server has closed.

        A server closes a kept-alive connection it has waited on for long
        enough; until this side closes it too, the socket stays in
        CLOSE-WAIT, holding a file descriptor.

        :returns: how many were closed.
        """
        with self._lock:
            pools = [(key, list(conns)) for key, conns in self._idle.items()]
        closed = 0
        for key, conns in pools:
            for conn in conns:
                if not _peer_closed(conn):
                    continue
                with self._lock:
                    idle = self._idle.get(key, [])
                    if conn not in idle:
                        continue  # taken meanwhile: _take looks again
                    idle.remove(conn)
                conn.close()
                closed += 1
        return closed

    def idle_count(self) -> int:
        """Return the number of idle connections kept."""
        with self._lock:
            return sum(len(conns) for conns in self._idle.values())

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body = None,
        shown_url: str | None = None,
    ) -> Response:
        """Send a request and read the answer.

        :param url: the full URL; its path must already be percent-encoded.
        :param headers: the request's headers (``Content-Length`` for a body).
        :param body: bytes, or a callable returning an iterable of chunks.
        :param shown_url: what to name the request by in errors.
        :raises SyncRequestError: no (valid) answer within the timeouts.
        """
        scheme, host, port, path = _split(url)
        key = (scheme, host, port)
        target = url if (self.proxies and scheme == "http") else path
        shown = shown_url or url

        def send() -> Response:
            conn, reused = self._take(key)
            try:
                response = self._send(conn, method, target, headers, body)
            except _STALE as err:
                conn.close()
                # Only a kept-alive connection may have been closed by the
                # server meanwhile: that one is worth sending again on.
                stale = _StaleConnection if reused else SyncRequestError
                raise stale(
                    method=method, url=shown, reason="connection lost: %s" % err
                ) from err
            except TimeoutError as err:
                conn.close()
                raise SyncRequestError(
                    method=method, url=shown, reason="timed out"
                ) from err
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                raise SyncRequestError(
                    method=method, url=shown, reason="%s: %s" % (
                        type(err).__name__, err)
                ) from err
            except BaseException:
                conn.close()
                raise
            if response[1]:
                self._give_back(key, conn)
            else:
                conn.close()
            return response[0]

        def resending(retry_state: tenacity.RetryCallState) -> None:
            LOG.debug("Kept-alive connection to %s:%d was closed; "
                      "sending again", host, port)

        # Sent at most twice; a second stale connection is an error.
        sent: Response = retry.retrying(
            retry=tenacity.retry_if_exception_type(_StaleConnection),
            stop=tenacity.stop_after_attempt(2),
            before_sleep=resending,
        )(send)
        return sent

    def _send(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Body,
    ) -> tuple[Response, bool]:
        conn.putrequest(method, target, skip_accept_encoding=True)
        sent = {k.lower() for k in headers}
        if "user-agent" not in sent:
            conn.putheader("User-Agent", USER_AGENT)
        for name, value in headers.items():
            conn.putheader(name, headerbytes.text_to_bytes(value))
        if body is None and method in ("PUT", "POST") and "content-length" not in sent:
            conn.putheader("Content-Length", "0")
        if isinstance(body, bytes):
            if "content-length" not in sent:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        else:
            conn.endheaders()
            if body is not None:
                for chunk in body():
                    if chunk:
                        conn.send(chunk)
        resp = conn.getresponse()
        try:
            data = b""
            if method != "HEAD":
                data = resp.read(_MAX_BODY)
                drained = len(data)
                while not resp.isclosed() and drained < _MAX_DRAIN:
                    more = resp.read(65536)
                    if not more:
                        break
                    drained += len(more)
            reusable = resp.isclosed() and not resp.will_close
            if method == "HEAD":
                resp.read()
                reusable = not resp.will_close
            return (
                Response(
                    resp.status,
                    # The header boundary: http.client reads latin-1.
                    {_text(k).lower(): _text(v)
                     for k, v in resp.getheaders()},
                    data,
                ),
                reusable,
            )
        finally:
            resp.close()


def _peer_closed(conn: http.client.HTTPConnection) -> bool:
    """Tell whether an idle connection is unusable: closed, or closed by its peer.

    An idle HTTP/1.1 connection has nothing to read; when its socket is
    readable all the same, the server has closed it (or sent something no
    request asked for): either way it cannot carry a request.
    """
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _w, _x = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class TargetClient:
    """Requests to one target container, signed as Swift's container-sync signs.

    :param http: the shared HTTP client.
    :param target: where to (from :func:`storaged.sync.realms.parse_sync_to`).
    :param user_key: the container's ``X-Container-Sync-Key`` (a secret).
    :param realms: the realms, for a realm target's key.
    """

    def __init__(
        self,
        http: HttpClient,
        target: realms_mod.SyncTarget,
        user_key: str,
        realms: realms_mod.Realms,
    ) -> None:
        self.http = http
        self.target = target
        self._user_key = user_key
        self._realms = realms
        scheme, _host, _port, path = _split(target.url)
        self._base = "%s://%s" % (scheme, urlparse.urlsplit(target.url).netloc)
        # The target's own path, decoded, so that it is re-encoded
        # canonically together with each object name.
        self._prefix = urlparse.unquote(path.rstrip("/"))

    def __repr__(self) -> str:
        return "<TargetClient %s>" % self.target.url

    def path_of(self, name: str) -> str:
        """Return the canonical, percent-encoded path of an object."""
        return realms_mod.canonical_path(self._prefix + "/" + name)

    def _headers(
        self, method: str, path: str, timestamp: str, extra: Mapping[str, str] = {}
    ) -> dict[str, str]:
        headers = dict(extra)
        headers["X-Timestamp"] = timestamp
        if self.target.signed:
            key = self._realms.key(self.target.realm)
            if not key:
                raise realms_mod.InvalidSyncTo(
                    reason="No realm key for %r" % self.target.realm
                )
            headers["X-Container-Sync-Auth"] = realms_mod.auth_header(
                method, path, timestamp, self.target.realm, key, self._user_key
            )
        else:
            headers["X-Container-Sync-Key"] = self._user_key
        return headers

    def _call(
        self,
        method: str,
        name: str,
        timestamp: str,
        extra: Mapping[str, str] = {},
        body: Body = None,
        query: str = "",
    ) -> Response:
        path = self.path_of(name)
        headers = self._headers(method, path, timestamp, extra)
        url = self._base + path + ("?" + query if query else "")
        return self.http.request(method, url, headers, body, shown_url=url)

    def head(self, name: str, timestamp: str) -> Response:
        """HEAD an object of the target (any status is returned).

        A symlink is asked for itself (``?symlink=get``, which means nothing
        for another object), never for its target.
        """
        return self._call("HEAD", name, timestamp, query="symlink=get")

    def put(
        self,
        name: str,
        timestamp: str,
        headers: Mapping[str, str],
        body: Body,
    ) -> Response:
        """PUT an object (``headers`` hold Content-Length, Etag, ...)."""
        return self._call("PUT", name, timestamp, headers, body)

    def delete(self, name: str, timestamp: str) -> Response:
        """DELETE an object (any status is returned)."""
        return self._call("DELETE", name, timestamp)

    def fail(self, method: str, name: str, response: Response) -> TargetError:
        """Return the error for an answer that fails a row."""
        text = response.body[:200].decode("utf-8", "replace").strip()
        return TargetError(
            method=method, url=self._base + self.path_of(name),
            status=response.status, text=text,
        )
