"""Temporary URLs, as Swift's ``tempurl`` middleware grants them.

A temporary URL lets whoever holds it make one request without a token::

    GET /v1/AUTH_test/photos/cat.jpg?temp_url_sig=<sig>&temp_url_expires=<t>

The signature is an HMAC, under one of the account's keys
(``X-Account-Meta-Temp-URL-Key``, ``-Key-2``) or the container's
(``X-Container-Meta-Temp-URL-Key``, ``-Key-2``), of::

    [ip=<temp_url_ip_range>\\n]<METHOD>\\n<expires>\\n<path>

where ``<path>`` is ``/v1/<account>/<container>/<object>``, or
``prefix:/v1/<account>/<container>/<prefix>`` when the URL carries
``temp_url_prefix`` (any object whose name starts with the prefix).
``temp_url_expires`` is seconds since the epoch or ISO 8601
(``2026-12-07T16:00:00Z``); the HMAC is over the integer either way.
The signature is hex (its length tells the digest: SHA-1, SHA-256,
SHA-512) or ``<digest>:<base64>`` (standard or URL-safe, padding
optional).  A HEAD is allowed by a signature for HEAD, GET, POST or PUT.

The module is in two parts:

* :func:`verify` decides, without any I/O, whether the parameters of a
  request (:func:`params_of`) and the keys grant it; the answer is a
  :class:`Grant` (the request's scope: the account, or one container) or
  None.  Signatures are compared with :func:`hmac.compare_digest`.
* :func:`identify` is what the application calls before it looks for a
  token: it reads the keys through the object service, verifies, applies
  Swift's rules for incoming headers and the query string, and returns
  ``Identity("", <account>, via="tempurl")``; :func:`finish` applies
  Swift's rules to the response (object metadata hidden but
  ``X-Object-Meta-Public-*``, ``Content-Disposition``, ``Expires``).

Every failure is the same **401** (``401 Unauthorized: Temp URL
invalid``), whatever was wrong, so that a URL tells nothing about the
keys.  Keys and signatures are never logged; the access log has no query
string.

A grant covers one method on one path (or prefix): the request it came
with.  What that request reaches beyond its path is held to the grant's
scope as Swift's ``authorize_same_account`` / ``authorize_same_container``
hold it: a copy's source (``X-Copy-From``), a dynamic large object's
segments and a symlink's target must be in the granted container for a
container key, in the account for an account key.
"""

from __future__ import annotations

import binascii
import calendar
from collections.abc import Iterable
from collections.abc import Mapping
import dataclasses
import hashlib
import hmac
import ipaddress
import time
from typing import Any
from typing import Final
from urllib import parse as urlparse

from storaged import concurrency
from storaged import exception
from storaged.api import auth
from storaged.api import routes
from storaged.api.protocol import HTML
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import http_date
from storaged.objects.repository import ObjectRepository

#: Methods a temporary URL may be made for (Swift's default ``methods``).
METHODS: Final = ("GET", "HEAD", "PUT", "POST", "DELETE")
#: Digests allowed (Swift 2.36's default), and which of them are deprecated.
ALLOWED_DIGESTS: Final = ("sha1", "sha256", "sha512")
DEPRECATED_DIGESTS: Final = ("sha1",)
#: A hex signature's length tells its digest.
_HEX_DIGESTS: Final = {40: "sha1", 64: "sha256", 128: "sha512"}
#: Request headers dropped from a temporary URL's request.
INCOMING_REMOVE_HEADERS: Final = ("x-timestamp", "x-open-expired")
INCOMING_ALLOW_HEADERS: Final[tuple[str, ...]] = ()
#: Request headers that make a write through a temporary URL a 400: they
#: would let it reach other objects.
DISALLOWED_HEADERS: Final = ("X-Object-Manifest", "X-Symlink-Target")
#: Response headers hidden from a temporary URL's holder, and kept.
OUTGOING_REMOVE_HEADERS: Final = ("x-object-meta-*",)
OUTGOING_ALLOW_HEADERS: Final = ("x-object-meta-public-*",)
#: ``temp_url_expires`` in ISO 8601 form.
ISO8601: Final = "%Y-%m-%dT%H:%M:%SZ"
_BASE64: Final = frozenset(
    "0123456789+/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
#: The metadata names of the keys, lower case, without the prefix.
KEY_NAMES: Final = ("temp-url-key", "temp-url-key-2")

ACCOUNT_SCOPE: Final = "account"
CONTAINER_SCOPE: Final = "container"
#: Where :func:`identify` leaves the grant, for :func:`finish`.
ENVIRON_KEY: Final = "storaged.tempurl"
INVALID_BODY: Final = "401 Unauthorized: Temp URL invalid\n"


@dataclasses.dataclass(frozen=True)
class Params:
    """A request's temporary URL parameters, as given (None when absent).

    The first value of a parameter given twice counts, as in Swift.
    """

    sig: str | None = None
    expires: str | None = None
    prefix: str | None = None
    filename: str | None = None
    inline: bool = False
    ip_range: str | None = None

    @property
    def present(self) -> bool:
        """True when the request asks for a temporary URL at all."""
        return self.sig is not None or self.expires is not None


@dataclasses.dataclass(frozen=True)
class Grant:
    """What a valid temporary URL allows.

    :ivar account: the account it acts for.
    :ivar container: the only container it may reach (container keys), or
        ``""`` (account keys: any container of the account).
    :ivar expires: when it stops working (seconds since the epoch).
    :ivar filename: ``filename`` for ``Content-Disposition``.
    :ivar inline: ``inline`` was given.
    :ivar path: the path of the request it was granted to (its
        sub-requests have others).
    """

    account: str
    container: str
    expires: int
    filename: str | None = None
    inline: bool = False
    path: str = ""

    @property
    def scope(self) -> str:
        return CONTAINER_SCOPE if self.container else ACCOUNT_SCOPE

    def covers(self, account: str, container: str) -> bool:
        """Tell whether a path of ``account``/``container`` is within the grant."""
        if account != self.account:
            return False
        return not self.container or container == self.container


def params_of(query_string: str) -> Params:
    """Return the temporary URL parameters of a WSGI ``QUERY_STRING``."""
    qs = urlparse.parse_qs(query_string, keep_blank_values=True)

    def first(name: str) -> str | None:
        values = qs.get(name)
        return values[0] if values else None

    return Params(
        sig=first("temp_url_sig"),
        expires=first("temp_url_expires"),
        prefix=first("temp_url_prefix"),
        filename=first("filename"),
        inline="inline" in qs,
        ip_range=first("temp_url_ip_range"),
    )


def normalize_expires(value: str, now: float) -> int:
    """Return ``temp_url_expires`` as seconds since the epoch; 0 if bad or past."""
    try:
        expires = int(value)
    except ValueError:
        try:
            expires = calendar.timegm(time.strptime(value, ISO8601))
        except ValueError:
            return 0
    return 0 if expires < now else expires


def parse_signature(value: str) -> tuple[str, str]:
    """Return ``(digest, hex signature)`` of a ``temp_url_sig``.

    Hex (SHA-1, SHA-256 or SHA-512 by its length) or ``<digest>:<base64>``,
    standard or URL-safe, with or without padding.

    :raises ValueError: neither form.
    """
    if ":" in value:
        digest, encoded = value.split(":", 1)
        url_safe = "-" in encoded or "_" in encoded
        if url_safe and not ("+" in encoded or "/" in encoded):
            encoded = encoded.replace("-", "+").replace("_", "/")
        if not set(encoded.strip("=")) <= _BASE64:
            raise ValueError("not base64")
        try:
            raw = binascii.a2b_base64(encoded + "==")
        except binascii.Error as err:
            raise ValueError("not base64") from err
        return digest, raw.hex()
    binascii.unhexlify(value)  # raises ValueError (binascii.Error) if not hex
    by_length = _HEX_DIGESTS.get(len(value))
    if by_length is None:
        raise ValueError("bad digest length")
    return by_length, value


def signature(
    method: str, path: str, expires: int, key: str, digest: str,
    ip_range: str | None = None,
) -> str:
    """Return the hex HMAC a temporary URL for ``method`` on ``path`` needs."""
    lines = [method, str(expires), path]
    if ip_range:
        lines.insert(0, "ip=" + ip_range)
    message = "\n".join(lines).encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, getattr(hashlib, digest)).hexdigest()


def keys_from_metadata(metadata: Mapping[str, str]) -> list[str]:
    """Return the temporary URL keys set in account or container metadata."""
    keys = []
    for name, value in metadata.items():
        lower = name.lower()
        for prefix in ("x-account-meta-", "x-container-meta-"):
            if lower.startswith(prefix) and lower[len(prefix):] in KEY_NAMES and value:
                keys.append(value)
    return keys


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(
        a.encode("utf-8", "replace"), b.encode("utf-8", "replace")
    )


def _in_range(ip_range: str, remote_addr: str | None) -> bool:
    if remote_addr is None:
        return False
    try:
        return ipaddress.ip_address(remote_addr) in ipaddress.ip_network(ip_range)
    except ValueError:
        return False


def verify(
    method: str,
    route: routes.Route,
    version: str,
    params: Params,
    account_keys: Iterable[str],
    container_keys: Iterable[str],
    remote_addr: str | None,
    now: float,
) -> Grant | None:
    """Return what the temporary URL of a request grants, or None (invalid).

    Pure: the keys are given.

    :param version: the path's version (only ``v1`` has temporary URLs).
    """
    if not params.sig or params.expires is None:
        return None
    expires = normalize_expires(params.expires, now)
    if not expires:
        return None
    try:
        digest, sig = parse_signature(params.sig)
    except ValueError:
        return None
    if digest not in ALLOWED_DIGESTS or method not in METHODS or version != "v1":
        return None
    container_root = method in ("GET", "HEAD") and params.prefix == ""
    if route.kind == routes.CONTAINER and container_root:
        obj = ""
    elif route.kind == routes.OBJECT and route.obj.strip("/"):
        obj = route.obj
    else:
        return None
    if params.ip_range and not _in_range(params.ip_range, remote_addr):
        return None
    base = "/v1/%s/%s/" % (route.account, route.container)
    if params.prefix is None:
        path = base + obj
    elif obj.startswith(params.prefix):
        path = "prefix:" + base + params.prefix
    else:
        return None
    methods = ("HEAD", "GET", "POST", "PUT") if method == "HEAD" else (method,)
    scoped = [(key, "") for key in account_keys]
    scoped += [(key, route.container) for key in container_keys]
    for key, container in scoped:
        for signed in methods:
            expected = signature(signed, path, expires, key, digest, params.ip_range)
            if _same(sig, expected):
                return Grant(route.account, container, expires,
                             params.filename, params.inline)
    return None


def invalid(req: Request, account: str) -> HTTPError:
    """Return Swift's 401 for a temporary URL that is not valid."""
    realm = urlparse.quote(account or "unknown", safe="")
    headers = [("Www-Authenticate", 'Swift realm="%s"' % realm)]
    if req.method == "HEAD":
        return error(401, headers=headers, log_info="tempurl:invalid")
    return error(401, INVALID_BODY, headers=headers, content_type=HTML,
                 log_info="tempurl:invalid")


def read_keys(
    service: ObjectRepository, account: str, container: str
) -> tuple[list[str], list[str], bool]:
    """Return the account's keys, the container's keys and whether it exists."""
    account_keys = keys_from_metadata(service.account_metadata(account))
    if not container:
        return account_keys, [], False
    try:
        info = service.container_info(account, container)
    except exception.ContainerNotFound:
        return account_keys, [], False
    return account_keys, keys_from_metadata(info.metadata), True


def _header_text(value: str) -> str:
    """Return a WSGI header value as the text of its UTF-8, percent-decoded."""
    raw = value.encode("latin-1", "replace")
    return urlparse.unquote(raw.decode("utf-8", "replace"))


def _copy_source_allowed(req: Request, grant: Grant) -> bool:
    """Tell whether a copy's source (``X-Copy-From``) is within the grant."""
    source = req.header("X-Copy-From")
    account = req.header("X-Copy-From-Account")
    if source is None and account is None:
        return True
    account_text = _header_text(account) if account is not None else grant.account
    container = ""
    if source is not None:
        container = _header_text(source).lstrip("/").split("/", 1)[0]
    return grant.covers(account_text, container or grant.container)


def identify(
    req: Request, route: routes.Route, service: ObjectRepository,
    now: float | None = None,
) -> tuple[auth.Identity, str] | None:
    """Return the identity a temporary URL gives ``req``, or None (no such URL).

    On success the request is made what Swift passes on: the headers of
    :data:`INCOMING_REMOVE_HEADERS` removed, the query string reduced to
    the temporary URL's own parameters (so ``multipart-manifest=``,
    ``symlink=`` and the like mean nothing through it), and the grant
    left in the environ for :func:`finish`.

    :raises HTTPError: 401 for a URL that is not valid; 400 for a write
        with a header of :data:`DISALLOWED_HEADERS`; 401 or 404 for a
        container's root (its listing is never given).
    """
    environ = req.environ
    if req.method == "OPTIONS":
        return None
    params = params_of(environ.get("QUERY_STRING", ""))
    if not params.present:
        return None
    if route.kind not in (routes.CONTAINER, routes.OBJECT):
        raise invalid(req, route.account)
    account_keys, container_keys, exists = concurrency.run_blocking(
        read_keys, service, route.account, route.container
    )
    version = req.path.split("/", 2)[1]
    grant = verify(
        req.method, route, version, params, account_keys, container_keys,
        environ.get("REMOTE_ADDR"), time.time() if now is None else now,
    )
    if grant is None or not _copy_source_allowed(req, grant):
        raise invalid(req, route.account)
    if req.method not in ("GET", "HEAD"):
        for name in DISALLOWED_HEADERS:
            if req.header(name) is not None:
                raise error(400, "The header '%s' is not allowed in this tempurl"
                            % name, content_type=HTML, log_info="tempurl")
    if route.kind == routes.CONTAINER:
        # Swift answers the listing's failure, and a 401 for its success.
        if not exists:
            raise error(404, log_info="tempurl")
        raise invalid(req, route.account)
    for name in INCOMING_REMOVE_HEADERS:
        environ.pop("HTTP_" + name.upper().replace("-", "_"), None)
    query = {"temp_url_sig": params.sig, "temp_url_expires": params.expires}
    if params.prefix is not None:
        query["temp_url_prefix"] = params.prefix
    if params.filename:
        query["filename"] = params.filename
    environ["QUERY_STRING"] = urlparse.urlencode(query)
    req._query = None  # parsed again, from the new query string
    environ[ENVIRON_KEY] = dataclasses.replace(grant, path=req.path)
    return auth.Identity("", route.account, via="tempurl"), "tempurl"


def _disposition(kind: str, filename: str) -> str:
    return "%s; filename=\"%s\"; filename*=UTF-8''%s" % (
        kind, urlparse.quote(filename, safe=" /"), urlparse.quote(filename)
    )


def _hidden(name: str) -> bool:
    lower = name.lower()
    for pattern in OUTGOING_ALLOW_HEADERS:
        if lower.startswith(pattern.rstrip("*")):
            return False
    return any(lower.startswith(p.rstrip("*")) if p.endswith("*") else lower == p
               for p in OUTGOING_REMOVE_HEADERS)


def _close(body: Any) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _outside(grant: Grant) -> HTTPError:
    """Swift's 401 for a path outside a grant (its ``authorize`` callback's)."""
    realm = urlparse.quote(grant.account, safe="")
    return error(401, headers=[("Www-Authenticate", 'Swift realm="%s"' % realm)],
                 log_info="tempurl")


def finish(req: Request, route: routes.Route, response: Response) -> Response:
    """Apply a temporary URL's rules to the response of its request.

    Object metadata is hidden but ``X-Object-Meta-Public-*``; a successful
    GET or HEAD gets ``Content-Disposition`` (``inline``, ``filename``,
    the object's own, or ``attachment`` with the object's name) and
    ``Expires`` (the URL's expiry).  A dynamic large object whose segments
    are outside a container key's container is a 401, as its segments'
    listing is in Swift.

    A request made on the way with the URL's authority (a symlink's
    target) only has to be within the grant: 401 otherwise, as Swift's
    ``authorize_same_container`` answers it; its answer is left for the
    URL's own request to finish.
    """
    grant: Grant | None = req.environ.get(ENVIRON_KEY)
    if grant is None:
        return response
    if req.path != grant.path:
        if not grant.covers(route.account, route.container):
            _close(response.body)
            raise _outside(grant)
        return response
    headers = response.headers
    for name, _value in headers.items():
        if _hidden(name):
            del headers[name]
    if req.method not in ("GET", "HEAD") or not 200 <= response.status < 300:
        return response
    manifest = headers.get("X-Object-Manifest")
    if manifest is not None and grant.container:
        segments = urlparse.unquote(manifest).split("/", 1)[0]
        if segments != grant.container:
            _close(response.body)
            raise _outside(grant)
    existing = headers.pop("Content-Disposition")
    if grant.inline:
        value = _disposition("inline", grant.filename) if grant.filename else "inline"
    elif grant.filename:
        value = _disposition("attachment", grant.filename)
    elif existing is not None:
        value = existing
    else:
        value = _disposition("attachment", req.path.rstrip("/").rsplit("/", 1)[-1])
    headers["Content-Disposition"] = value.replace("\n", "%0A")
    headers["Expires"] = http_date(grant.expires)
    return response


def info() -> dict[str, list[str]]:
    """Return ``/info``'s ``tempurl``, as Swift's middleware registers it."""
    return {
        "methods": list(METHODS),
        "incoming_remove_headers": list(INCOMING_REMOVE_HEADERS),
        "incoming_allow_headers": list(INCOMING_ALLOW_HEADERS),
        "outgoing_remove_headers": list(OUTGOING_REMOVE_HEADERS),
        "outgoing_allow_headers": list(OUTGOING_ALLOW_HEADERS),
        "allowed_digests": sorted(ALLOWED_DIGESTS),
        "deprecated_digests": sorted(DEPRECATED_DIGESTS),
    }
