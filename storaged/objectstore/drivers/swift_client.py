"""The HTTP side of the ``swift`` driver: auth, kept-alive connections, retries.

:class:`SwiftClient` sends requests to one Swift account.  It

* authenticates with Swift's v1 auth (``GET auth_url`` with
  ``X-Auth-User``/``X-Auth-Key``) or with Keystone's v3 password method
  (``POST .../v3/auth/tokens``, the endpoint picked from the token's service
  catalog by service type, interface and region), and keeps the token and
  storage URL until Swift answers 401 (then it authenticates once more and
  sends the request again) or the token is about to expire;
* keeps a small pool of kept-alive :mod:`http.client` connections per host,
  shared by every thread: a connection is handed back only when its answer
  was read to the end, so the next request never reads a stale body;
* retries, with exponential backoff, requests that failed with a 5xx answer
  (but 507), a 408 or 429, a timeout or a connection error, *only* when the
  request can be sent again unchanged: its body is ``None`` or ``bytes``.
  A streamed body is sent once, on a fresh connection (a kept-alive one may
  have been closed by the server meanwhile, which would consume the stream
  for nothing).

Errors are raised as :class:`SwiftHTTPError` (an answer nobody expected)
and :class:`SwiftTransportError` (no answer); the driver maps both to
storaged's exceptions in one place.  Tokens and keys never appear in these
errors or in the log.

Only the standard library is used: under eventlet the sockets are green,
under threads they block only the calling thread.
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import datetime
import http.client
import json
import logging
import random
import socket
import ssl
import time
from typing import Any
from urllib import parse as urlparse

from storaged import concurrency
from storaged import exception
from storaged.objectstore.drivers.http import redact

LOG = logging.getLogger(__name__)

#: answers worth sending the same request again for.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: seconds of validity a token must have left to be used for a request.
TOKEN_MARGIN = 120.0

_JITTER = random.SystemRandom()

#: idle connections kept per host.
MAX_IDLE = 16

_USER_AGENT = "storaged-objectstore-swift"

#: prefix of the metadata headers the driver records with each object.
META = "x-object-meta-storaged-"

#: the v3 catalog's interface name of each ``endpoint_type``.
INTERFACES = {"publicURL": "public", "internalURL": "internal", "adminURL": "admin"}


class SwiftClientError(exception.StoragedError):
    """Base of the errors of this module (the driver translates each one)."""


class SwiftHTTPError(SwiftClientError):
    """Swift (or Keystone) answered with an unexpected status."""

    def __init__(
        self,
        status: int = 0,
        reason: str = "",
        what: str = "request",
        body: bytes = b"",
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.reason = reason
        self.what = what
        self.body = body[:300]
        self.attempts = attempts
        super().__init__(f"{what}: HTTP {status} {reason}")


class SwiftTransportError(SwiftClientError):
    """No answer: connection refused or reset, timed out, TLS failure."""

    def __init__(
        self, what: str = "request", reason: str = "no answer", timeout: bool = False
    ) -> None:
        self.what = what
        self.reason = reason
        self.timeout = timeout
        super().__init__(f"{what}: {reason}")


class AuthError(SwiftClientError):
    """Authentication failed, or gave no usable storage URL."""


@dataclasses.dataclass(frozen=True)
class Auth:
    """A token and the storage URL it is good for."""

    token: str = dataclasses.field(repr=False)
    storage_url: str
    expires: float | None = None  # time.time() seconds

    def fresh(self) -> bool:
        return self.expires is None or self.expires - time.time() > TOKEN_MARGIN


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    """What authentication needs (the driver's options)."""

    auth_url: str
    auth_version: str
    user: str
    key: str = dataclasses.field(repr=False)
    project_name: str | None = None
    project_domain_name: str = "Default"
    user_domain_name: str = "Default"
    region_name: str | None = None
    endpoint_type: str = "publicURL"
    service_type: str = "object-store"


@dataclasses.dataclass
class Response:
    """An answer: status, headers (lower-case names) and its body or stream.

    ``body`` holds the whole body unless the request asked for a stream;
    then :meth:`read` reads it and :meth:`release` must be called (it hands
    the connection back when the body was read to its end, else closes it).
    """

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes = b""
    attempts: int = 1
    _resp: http.client.HTTPResponse | None = None
    _conn: http.client.HTTPConnection | None = None
    _pool: ConnectionPool | None = None

    def read(self, n: int) -> bytes:
        assert self._resp is not None
        data: bytes = self._resp.read(n)
        return data

    def release(self) -> None:
        """Give the connection back (or close it, if the body was not read)."""
        resp, conn, pool = self._resp, self._conn, self._pool
        self._resp = self._conn = self._pool = None
        if conn is None:
            return
        if pool is not None and resp is not None and resp.isclosed():
            pool.put(conn)
        else:
            conn.close()


class ConnectionPool:
    """Kept-alive connections to one ``scheme://host:port``, for any thread."""

    def __init__(
        self,
        parts: urlparse.SplitResult,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        # Held only around list operations, never across I/O; native, as
        # reads of small objects may run in run_blocking's pool threads.
        self._lock = concurrency.native_lock()

    def get(self, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """Return ``(connection, reused)``: an idle one unless ``fresh``."""
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(
                self._host, self._port, timeout=self._connect_timeout
            )
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self._read_timeout)
            # Headers and body go out in separate sends: without this, Nagle
            # and delayed ACKs can hold a small body back for tens of ms.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, False

    def put(self, conn: http.client.HTTPConnection) -> None:
        """Keep ``conn`` for the next request (its last answer was read)."""
        with self._lock:
            if conn.sock is not None and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


#: data at least this long is hashed in the thread pool under eventlet (a
#: MiB of sha256 takes milliseconds the hub would otherwise stall for).
HASH_OFFLOAD = 256 * 1024


def hash_update(hashers: list[Any], data: bytes) -> None:
    """Feed ``data`` to each hash, off the eventlet hub when it is large."""
    if len(data) >= HASH_OFFLOAD:
        concurrency.run_blocking(_update_all, hashers, data)
    else:
        _update_all(hashers, data)


def _update_all(hashers: list[Any], data: bytes) -> None:
    for h in hashers:
        h.update(data)


def quote(name: str) -> str:
    """Quote a container or object name for a request path."""
    return urlparse.quote(name, safe="/")


def _lower(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers}


class SwiftClient:
    """Requests to one Swift account, authenticated, pooled and retried.

    :param settings: what authentication needs.
    :param tls: the TLS context for ``https`` URLs.
    :param retries: times a failed request that can be sent again is retried.
    :param backoff: first pause between tries in seconds (doubled each time,
        with jitter, at most 10 s).
    """

    def __init__(
        self,
        settings: AuthSettings,
        tls: ssl.SSLContext,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
        backoff: float = 0.25,
    ) -> None:
        self.settings = settings
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self.retries = retries
        self.backoff = backoff
        self._auth: Auth | None = None
        # Held across the authentication request: one thread authenticates,
        # the others wait for its token.
        # Held across the auth request; taken from the hub's thread and from
        # the pool's (the API runs store calls there): shared, never green.
        self._auth_lock = concurrency.shared_lock()
        self._pools: dict[tuple[str, str, int | None], ConnectionPool] = {}
        self._pools_lock = concurrency.native_lock()  # never held across I/O
        #: authentications done (for tests and the log).
        self.auth_count = 0

    # -- connections ---------------------------------------------------------

    def _pool(self, url: str) -> tuple[ConnectionPool, urlparse.SplitResult]:
        parts = urlparse.urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port)
        pool = self._pools.get(key)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = ConnectionPool(
                        parts, self._tls, self._connect_timeout, self._read_timeout
                    )
                    self._pools[key] = pool
        return pool, parts

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    # -- auth ----------------------------------------------------------------

    def auth(self, stale: Auth | None = None) -> Auth:
        """Return a usable token, authenticating when there is none.

        :param stale: a token Swift refused: a new one is fetched unless
            another thread already replaced it.
        """
        current = self._auth
        if current is not None and current is not stale and current.fresh():
            return current
        with self._auth_lock:
            current = self._auth
            if current is not None and current is not stale and current.fresh():
                return current
            self._auth = None
            current = self._authenticate()
            self._auth = current
            self.auth_count += 1
            return current

    def forget_token(self) -> None:
        """Drop the token (the next request authenticates)."""
        self._auth = None

    def _authenticate(self) -> Auth:
        s = self.settings
        if s.auth_version == "3":
            return self._auth_v3()
        status, reason, headers, _body = self._simple(
            "GET",
            s.auth_url,
            {"X-Auth-User": s.user, "X-Auth-Key": s.key, "X-Storage-User": s.user,
             "X-Storage-Pass": s.key},
            None,
            "v1 auth",
        )  # fmt: skip
        if status // 100 != 2:
            raise AuthError(
                f"v1 auth at {redact(s.auth_url)} answered HTTP {status} {reason}"
            )
        token = headers.get("x-auth-token") or headers.get("x-storage-token")
        url = headers.get("x-storage-url")
        if not token or not url:
            raise AuthError(
                f"v1 auth at {redact(s.auth_url)} gave no token or storage URL"
            )
        expires = None
        ttl = headers.get("x-auth-token-expires", "")
        if ttl.replace(".", "", 1).isdigit():
            expires = time.time() + float(ttl)
        return Auth(token, url.rstrip("/"), expires)

    def _v3_url(self) -> str:
        url = self.settings.auth_url.rstrip("/")
        if url.endswith("/auth/tokens"):
            return url
        if not url.endswith("/v3"):
            url += "/v3"
        return url + "/auth/tokens"

    def _auth_v3(self) -> Auth:
        s = self.settings
        user, project = s.user, s.project_name
        if not project and ":" in user:
            # glance_store's "project:user" form
            project, user = user.split(":", 1)
        body: dict[str, Any] = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": user,
                            "domain": {"name": s.user_domain_name},
                            "password": s.key,
                        }
                    },
                }
            }
        }
        if project:
            body["auth"]["scope"] = {
                "project": {"name": project, "domain": {"name": s.project_domain_name}}
            }
        url = self._v3_url()
        status, reason, headers, raw = self._simple(
            "POST",
            url,
            {"Content-Type": "application/json", "Accept": "application/json"},
            json.dumps(body).encode(),
            "v3 auth",
        )
        if status // 100 != 2:
            raise AuthError(f"v3 auth at {redact(url)} answered HTTP {status} {reason}")
        token = headers.get("x-subject-token")
        try:
            doc = json.loads(raw)["token"]
            catalog = doc.get("catalog") or []
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise AuthError(
                f"v3 auth at {redact(url)}: unreadable token document"
            ) from err
        if not token:
            raise AuthError(f"v3 auth at {redact(url)} gave no X-Subject-Token")
        storage_url = pick_endpoint(
            catalog, s.service_type, INTERFACES[s.endpoint_type], s.region_name
        )
        if storage_url is None:
            raise AuthError(
                f"v3 auth at {redact(url)}: the catalog has no "
                f"{s.endpoint_type} endpoint of type {s.service_type}"
                + (f" in region {s.region_name}" if s.region_name else "")
            )
        return Auth(
            token, storage_url.rstrip("/"), _parse_expiry(doc.get("expires_at"))
        )

    def _simple(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        what: str,
    ) -> tuple[int, str, dict[str, str], bytes]:
        """One auth request on a fresh connection, retried like any other."""
        for attempt in range(self.retries + 1):
            pool, parts = self._pool(url)
            target = urlparse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
            conn = None
            try:
                conn, _reused = pool.get(fresh=True)
                conn.request(
                    method, target, body=body,
                    headers={"User-Agent": _USER_AGENT, **headers},
                )  # fmt: skip
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as err:
                if conn is not None:
                    conn.close()
                if attempt < self.retries:
                    self._pause(attempt)
                    continue
                raise _transport(f"{what} at {redact(url)}", err) from err
            conn.close()
            if resp.status in RETRY_STATUSES and attempt < self.retries:
                self._pause(attempt)
                continue
            return resp.status, resp.reason, _lower(resp.getheaders()), raw
        raise AssertionError("unreachable")  # pragma: no cover

    # -- requests ------------------------------------------------------------

    def _pause(self, attempt: int) -> None:
        delay = min(10.0, self.backoff * (2**attempt))
        concurrency.sleep(delay * _JITTER.uniform(0.5, 1.0))

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        query: str = "",
        stream: bool = False,
        ok: Iterable[int] = (),
    ) -> Response:
        """Send a request to ``STORAGE_URL/path`` and return the answer.

        :param path: quoted, relative to the storage URL (``container/obj``).
        :param body: ``bytes`` (re-sent on a retry) or an iterable of bytes
            (sent once; give ``Content-Length`` in ``headers``, else it is
            sent with chunked transfer encoding).
        :param stream: leave the body to be read (``Response.read``) and
            the connection held until ``Response.release``.
        :param ok: statuses returned rather than raised, besides 2xx.
        :raises SwiftHTTPError: another status (after the retries).
        :raises SwiftTransportError: no answer (after the retries).
        :raises AuthError: authentication failed.
        """
        resendable = body is None or isinstance(body, bytes)
        tries = self.retries + 1 if resendable else 1
        accepted = set(ok)
        reauthed = False
        auth = self.auth()
        attempt = 0
        sent = 0
        while True:
            sent += 1
            url = f"{auth.storage_url}/{path}" + (f"?{query}" if query else "")
            what = f"{method} {path}" + (f"?{query}" if query else "")
            pool, parts = self._pool(url)
            target = urlparse.urlunsplit(("", "", parts.path, parts.query, ""))
            send = {
                "User-Agent": _USER_AGENT,
                "Accept-Encoding": "identity",
                **(headers or {}),
                "X-Auth-Token": auth.token,
            }
            conn = None
            reused = False
            try:
                conn, reused = pool.get(fresh=not resendable)
                conn.request(method, target, body=body, headers=send)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as err:
                early = _early_answer(conn, err) if not resendable else None
                if early is not None:
                    assert conn is not None
                    status, reason, _headers = early
                    conn.close()
                    if status == 401:
                        self.forget_token()
                    raise SwiftHTTPError(status, reason, what, attempts=sent) from err
                if conn is not None:
                    conn.close()
                if resendable and reused:
                    # The server closed an idle connection: not a failure.
                    continue
                attempt += 1
                if attempt < tries:
                    LOG.debug("swift %s failed (%s); retrying", what, err)
                    self._pause(attempt - 1)
                    continue
                raise _transport(what, err) from err
            except BaseException:
                # e.g. the body's iterator failed: Swift must not get the rest
                if conn is not None:
                    conn.close()
                raise
            status = resp.status
            if status == 401 and not reauthed:
                _drain(resp, conn, pool)
                if not resendable:
                    self.forget_token()
                    raise SwiftHTTPError(status, resp.reason, what, attempts=sent)
                reauthed = True
                auth = self.auth(stale=auth)
                continue
            if status in RETRY_STATUSES and attempt + 1 < tries:
                _drain(resp, conn, pool)
                attempt += 1
                LOG.debug("swift %s answered %s; retrying", what, status)
                self._pause(attempt - 1)
                continue
            out = Response(
                status, resp.reason, _lower(resp.getheaders()), attempts=sent
            )
            if stream and (status // 100 == 2 or status in accepted):
                out._resp, out._conn, out._pool = resp, conn, pool
                return out
            try:
                out.body = resp.read()
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                raise _transport(what, err) from err
            if resp.will_close:
                conn.close()
            else:
                pool.put(conn)
            if status // 100 == 2 or status in accepted:
                return out
            raise SwiftHTTPError(status, resp.reason, what, out.body, out.attempts)


def _drain(
    resp: http.client.HTTPResponse,
    conn: http.client.HTTPConnection,
    pool: ConnectionPool,
) -> None:
    try:
        resp.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        return
    if resp.will_close:
        conn.close()
    else:
        pool.put(conn)


def _early_answer(
    conn: http.client.HTTPConnection | None, err: BaseException
) -> tuple[int, str, dict[str, str]] | None:
    """The answer a server sent before it stopped reading a streamed body."""
    if conn is None or not isinstance(err, (BrokenPipeError, ConnectionResetError)):
        return None
    try:
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException):
        return None
    return resp.status, resp.reason, _lower(resp.getheaders())


def _transport(what: str, err: BaseException) -> SwiftTransportError:
    if isinstance(err, ssl.SSLCertVerificationError):
        return SwiftTransportError(
            what, f"TLS certificate verification failed: {err.verify_message}"
        )
    if isinstance(err, TimeoutError):
        return SwiftTransportError(what, "timed out", timeout=True)
    return SwiftTransportError(what, str(err) or type(err).__name__)


def _parse_expiry(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def pick_endpoint(
    catalog: list[Any], service_type: str, interface: str, region: str | None
) -> str | None:
    """Return the URL of the first matching endpoint of a v3 catalog."""
    for service in catalog:
        if not isinstance(service, dict) or service.get("type") != service_type:
            continue
        for endpoint in service.get("endpoints") or []:
            if not isinstance(endpoint, dict):
                continue
            if endpoint.get("interface") != interface:
                continue
            regions = (endpoint.get("region"), endpoint.get("region_id"))
            if region and region not in regions:
                continue
            url = endpoint.get("url")
            if isinstance(url, str) and url:
                return url
    return None
