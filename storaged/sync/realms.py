"""Container-sync realms: ``container-sync-realms.conf`` and request signatures.

Swift's container-sync signs every request it sends to a realm target with
``X-Container-Sync-Auth: <REALM> <nonce> <sig>``, where::

    sig = hex(HMAC-SHA1(realm key,
                        METHOD \\n PATH \\n X-Timestamp \\n nonce \\n container key))

* ``METHOD`` is the HTTP method (``HEAD``, ``PUT``, ``DELETE``);
* ``PATH`` is the URL path, percent-encoded the canonical way (UTF-8,
  unreserved characters and ``/`` kept), without the query string;
* ``X-Timestamp`` is the header's text as sent (``0`` when absent);
* the container key is the target container's ``X-Container-Sync-Key``
  (the "user key"); both clusters' containers carry the same value.

The realm key is the secret shared by the operators of the clusters of a
realm; ``key2`` is accepted too while keys are rotated.  Worked example, the
realm ``US`` with ``key = realmkey`` and a container whose sync key is
``secret``::

    >>> sign("PUT", "/v1/AUTH_b/dst/a%20b", "1700000000.00000", "abc",
    ...      "realmkey", "secret")
    '70c8e45544a8b56dd60c5e3db848fc7a88bd3cd2'

and the sender puts ``US abc 70c8e455...`` in the header.  A receiver
re-encodes the path it was sent, looks up the realm's keys and the
container's key, computes the signature with ``key`` and ``key2`` and
compares each with the one sent in constant time.

The file has Swift's format (section names are realms, case-insensitive)::

    [DEFAULT]
    mtime_check_interval = 300
    [us]
    key = realm-secret
    key2 = next-realm-secret
    cluster_east = https://east.example.com/v1/
    cluster_west = https://west.example.com/v1/

:class:`Realms` re-reads it when its modification time changes, checked at
most every ``mtime_check_interval`` seconds, as Swift does.  Keys are
secrets: they are never logged and never part of a ``repr`` or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import configparser
import dataclasses
import hashlib
import hmac
import logging
import os
import time
from typing import Final
from urllib import parse as urlparse
import uuid

from storaged import concurrency
from storaged import exception

LOG = logging.getLogger(__name__)

#: Seconds between two looks at the file's modification time (Swift's default).
DEFAULT_MTIME_CHECK_INTERVAL: Final = 300

#: The reasons :func:`verify_auth` gives, as Swift's proxy logs them (``cs:...``).
VALID: Final = "valid"
NOT_3_ARGS: Final = "not-3-args"
NO_LOCAL_REALM_KEY: Final = "no-local-realm-key"
NO_LOCAL_USER_KEY: Final = "no-local-user-key"
INVALID_SIG: Final = "invalid-sig"


class RealmsFileError(exception.ConfigError):
    """``container-sync-realms.conf`` cannot be read or parsed."""


class InvalidSyncTo(exception.StoragedError):
    """An ``X-Container-Sync-To`` value cannot be used (Swift answers 400)."""

    msg_fmt = "%(reason)s"


@dataclasses.dataclass(frozen=True, repr=False)
class Realm:
    """One realm: its keys and the endpoints of its clusters.

    :ivar name: upper-cased realm name.
    :ivar key: the realm key (a secret).
    :ivar key2: the second key accepted during a rotation, or ``""``.
    :ivar clusters: upper-cased cluster name -> endpoint URL (``.../v1/``).
    """

    name: str
    key: str
    key2: str = ""
    clusters: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        return "Realm(name=%r, clusters=%r)" % (self.name, sorted(self.clusters))


def parse_realms(text: str, source: str = "container-sync-realms.conf") -> tuple[
    dict[str, Realm], int
]:
    """Parse the text of a realms file.

    A section without ``key`` is kept (its clusters are listed) but cannot
    sign or verify anything, as in Swift.

    :returns: ``(realms by upper-cased name, mtime_check_interval)``.
    :raises RealmsFileError: malformed text or a bad ``mtime_check_interval``.
    """
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(text, source=source)
    except configparser.Error as err:
        raise RealmsFileError(
            "malformed file: %s" % str(err).splitlines()[0], source
        ) from err
    interval = DEFAULT_MTIME_CHECK_INTERVAL
    raw_interval = parser.defaults().get("mtime_check_interval")
    if raw_interval is not None:
        try:
            interval = int(raw_interval)
        except ValueError as err:
            raise RealmsFileError(
                "mtime_check_interval must be an integer, not %r" % raw_interval,
                source,
            ) from err
        if interval < 0:
            raise RealmsFileError("mtime_check_interval must not be negative", source)
    realms: dict[str, Realm] = {}
    for section in parser.sections():
        values = {
            k: v for k, v in parser.items(section) if k not in parser.defaults()
        }
        clusters = {
            option[len("cluster_"):].upper(): value.strip()
            for option, value in values.items()
            if option.startswith("cluster_") and len(option) > len("cluster_")
        }
        name = section.strip().upper()
        realms[name] = Realm(
            name=name,
            key=values.get("key", "").strip(),
            key2=values.get("key2", "").strip(),
            clusters=clusters,
        )
    return realms, interval


class Realms:
    """The realms of ``container-sync-realms.conf``, re-read when it changes.

    Thread-safe.  A missing file means no realm (logged at debug level, as
    Swift does); a file that becomes unreadable or malformed after a good
    load keeps the last good realms and logs an error.

    :param path: the file, or None for a fixed set of realms (tests).
    :param realms: the realms when ``path`` is None.
    :param clock: ``time.time`` (tests replace it).
    """

    def __init__(
        self,
        path: str | None = None,
        realms: Mapping[str, Realm] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._realms: dict[str, Realm] = {
            k.upper(): v for k, v in (realms or {}).items()
        }
        self._clock = clock
        # A native lock: the sync daemon reads realms from native threads.
        self._lock = concurrency.native_module("threading").Lock()
        self._interval = DEFAULT_MTIME_CHECK_INTERVAL
        self._next_check = 0.0
        self._mtime: float | None = None

    @classmethod
    def load(cls, path: str, clock: Callable[[], float] = time.time) -> Realms:
        """Read ``path`` now; a missing file gives no realm.

        :raises RealmsFileError: the file exists but cannot be used.
        """
        realms = cls(path, clock=clock)
        realms._reload(strict=True)
        return realms

    def __repr__(self) -> str:
        return "<Realms %s: %s>" % (self.path, ", ".join(sorted(self._realms)))

    def _reload(self, strict: bool = False) -> None:
        assert self.path is not None
        now = self._clock()
        self._next_check = now + self._interval
        try:
            mtime = os.path.getmtime(self.path)
        except FileNotFoundError:
            if self._mtime is not None or strict:
                LOG.debug("No container-sync realms file at %s", self.path)
            self._realms, self._mtime = {}, None
            return
        except OSError as err:
            if strict:
                raise RealmsFileError(
                    "cannot read: %s" % err.strerror, self.path
                ) from err
            LOG.error("Could not read %s: %s", self.path, err.strerror)
            return
        if mtime == self._mtime:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
            realms, interval = parse_realms(text, self.path)
        except (OSError, UnicodeDecodeError) as err:
            if strict:
                raise RealmsFileError("cannot read: %s" % err, self.path) from err
            LOG.error("Could not read %s: %s; keeping the realms loaded before",
                      self.path, err)
            return
        except RealmsFileError as err:
            if strict:
                raise
            LOG.error("Could not load %s: %s; keeping the realms loaded before",
                      self.path, err)
            return
        self._realms, self._mtime, self._interval = realms, mtime, interval
        self._next_check = now + interval
        LOG.info("Loaded %d container-sync realm(s) from %s: %s",
                 len(realms), self.path, ", ".join(sorted(realms)) or "none")

    def refresh(self) -> None:
        """Re-read the file if its check interval passed and it changed."""
        if self.path is None:
            return
        with self._lock:
            if self._clock() >= self._next_check:
                self._reload()

    def reload(self) -> None:
        """Re-read the file now (SIGHUP)."""
        if self.path is None:
            return
        with self._lock:
            self._mtime = None
            self._reload()

    def get(self, name: str) -> Realm | None:
        """Return a realm by name (any case), or None."""
        self.refresh()
        return self._realms.get(name.upper())

    def names(self) -> list[str]:
        """Return the realm names, upper-cased and sorted."""
        self.refresh()
        return sorted(self._realms)

    def key(self, name: str) -> str:
        """Return a realm's key, ``""`` when unknown."""
        realm = self.get(name)
        return realm.key if realm is not None else ""

    def key2(self, name: str) -> str:
        """Return a realm's second key, ``""`` when unknown or unset."""
        realm = self.get(name)
        return realm.key2 if realm is not None else ""

    def clusters(self, name: str) -> list[str]:
        """Return a realm's cluster names, upper-cased and sorted."""
        realm = self.get(name)
        return sorted(realm.clusters) if realm is not None else []

    def endpoint(self, realm: str, cluster: str) -> str:
        """Return a cluster's endpoint URL, ``""`` when unknown."""
        found = self.get(realm)
        if found is None:
            return ""
        return found.clusters.get(cluster.upper(), "")

    def as_info(self) -> dict[str, dict[str, dict[str, dict[str, bool]]]]:
        """Return what Swift's ``/info`` shows: realms and clusters, no keys."""
        self.refresh()
        return {
            name: {"clusters": {c: {} for c in sorted(realm.clusters)}}
            for name, realm in sorted(self._realms.items())
            if realm.clusters
        }


# -- signatures ----------------------------------------------------------------


def _utf8(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogateescape")


def canonical_path(path: str | bytes) -> str:
    """Return ``path`` percent-encoded as Swift's ``req.path`` is.

    ``path`` is the decoded path (text, or the raw bytes after
    percent-decoding).  Unreserved characters (letters, digits, ``-._~``)
    and ``/`` stay, every other byte of its UTF-8 becomes ``%XX``, e.g.
    ``/v1/AUTH_a/c/a b/ü`` gives ``/v1/AUTH_a/c/a%20b/%C3%BC``.
    """
    return urlparse.quote(_utf8(path), safe="/")


def sign(
    method: str,
    path: str,
    x_timestamp: str,
    nonce: str | bytes,
    realm_key: str | bytes,
    user_key: str | bytes,
) -> str:
    """Return the signature of a sync request (40 lower-case hex digits).

    :param method: the HTTP method, ASCII.
    :param path: the canonically percent-encoded path (:func:`canonical_path`).
    :param x_timestamp: the ``X-Timestamp`` header as sent, ``"0"`` if none.
    :param nonce: the nonce of the header.
    :param realm_key: the realm's ``key`` (or ``key2``).
    :param user_key: the container's sync key.
    :raises UnicodeEncodeError: ``method``, ``path`` or ``x_timestamp`` is
        not ASCII (a receiver treats that as an invalid signature).
    """
    message = b"\n".join((
        method.encode("ascii"),
        _utf8(path),
        x_timestamp.encode("ascii"),
        _utf8(nonce),
        _utf8(user_key),
    ))
    return hmac.new(_utf8(realm_key), message, hashlib.sha1).hexdigest()


def auth_header(
    method: str,
    path: str,
    x_timestamp: str,
    realm: str,
    realm_key: str | bytes,
    user_key: str | bytes,
    nonce: str | None = None,
) -> str:
    """Return the value of ``X-Container-Sync-Auth`` for a request to send.

    :param realm: the realm name (sent upper-cased, as Swift does).
    :param nonce: a fresh ``uuid4().hex`` when None.
    """
    nonce = nonce or uuid.uuid4().hex
    sig = sign(method, path, x_timestamp, nonce, realm_key, user_key)
    return "%s %s %s" % (realm.upper(), nonce, sig)


@dataclasses.dataclass(frozen=True)
class AuthResult:
    """What :func:`verify_auth` found.

    :ivar valid: the request is authentic.
    :ivar reason: one of :data:`VALID`, :data:`NOT_3_ARGS`,
        :data:`NO_LOCAL_REALM_KEY`, :data:`NO_LOCAL_USER_KEY`,
        :data:`INVALID_SIG` (for logs: never a key).
    :ivar realm: the realm named by the header, upper-cased, or ``""``.
    """

    valid: bool
    reason: str
    realm: str = ""


def _same(sent: bytes, expected: str) -> bool:
    return hmac.compare_digest(sent, expected.encode("ascii"))


def verify_auth(
    header: str | bytes,
    method: str,
    path: str,
    x_timestamp: str | None,
    realms: Realms,
    user_key: str,
) -> AuthResult:
    """Check an ``X-Container-Sync-Auth`` header, as Swift's middleware does.

    Both the realm's ``key`` and ``key2`` are tried; each comparison takes
    the same time whatever the signature sent.

    :param header: the header's value (WSGI text, or bytes).
    :param method: the request's method.
    :param path: the request's path, canonically encoded (:func:`canonical_path`).
    :param x_timestamp: the request's ``X-Timestamp`` header, or None.
    :param realms: the local realms.
    :param user_key: the target container's sync key, ``""`` when it has none
        (or does not exist).
    """
    raw = header if isinstance(header, bytes) else header.encode("latin-1", "replace")
    parts = raw.split()
    if len(parts) != 3:
        return AuthResult(False, NOT_3_ARGS)
    realm_raw, nonce, sig = parts
    realm_name = realm_raw.decode("utf-8", "replace").upper()
    realm = realms.get(realm_name)
    if realm is None or not realm.key:
        return AuthResult(False, NO_LOCAL_REALM_KEY, realm_name)
    if not user_key:
        return AuthResult(False, NO_LOCAL_USER_KEY, realm_name)
    ts = x_timestamp if x_timestamp is not None else "0"
    try:
        expected = sign(method, path, ts, nonce, realm.key, user_key)
        expected2 = (
            sign(method, path, ts, nonce, realm.key2, user_key)
            if realm.key2
            else expected
        )
    except UnicodeEncodeError:
        return AuthResult(False, INVALID_SIG, realm_name)
    # Both comparisons always run: the time taken says nothing about which
    # key matched, or how much of the signature did.
    first = _same(sig, expected)
    second = _same(sig, expected2)
    if first or second:
        return AuthResult(True, VALID, realm_name)
    return AuthResult(False, INVALID_SIG, realm_name)


def verify_legacy_key(sent: str | bytes, user_key: str) -> bool:
    """Check an ``X-Container-Sync-Key`` header against a container's key.

    The old (full URL) form of container-sync sends the container key
    itself.  The comparison takes the same time whatever the value sent; a
    container without a key never matches.
    """
    if not user_key:
        return False
    raw = sent if isinstance(sent, bytes) else sent.encode("latin-1", "replace")
    return hmac.compare_digest(raw, _utf8(user_key))


# -- X-Container-Sync-To ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SyncTarget:
    """Where a container syncs to.

    :ivar url: the target container's URL (``https://host/v1/AUTH_b/dst``).
    :ivar realm: the realm (upper-cased) for the realm form, ``""`` for a
        full URL (whose requests carry ``X-Container-Sync-Key``).
    :ivar cluster: the cluster (upper-cased), or ``""``.
    """

    url: str
    realm: str = ""
    cluster: str = ""

    @property
    def signed(self) -> bool:
        """True for the realm form (``X-Container-Sync-Auth``)."""
        return bool(self.realm)


def parse_sync_to(
    value: str, realms: Realms, allowed_sync_hosts: list[str] | tuple[str, ...]
) -> SyncTarget | None:
    """Validate an ``X-Container-Sync-To`` value, as Swift's ``validate_sync_to``.

    ``//realm/cluster/account/container`` needs a realm with a key and a
    cluster endpoint; ``http(s)://host/path`` needs ``host`` among
    ``allowed_sync_hosts``.

    :returns: the target, or None for an empty value (sync off).
    :raises InvalidSyncTo: with Swift's message.
    """
    value = value.rstrip("/")
    if not value:
        return None
    if value.startswith("//"):
        parts = value.split("/")
        if len(parts) != 6 or not all(parts[2:]):
            raise InvalidSyncTo(
                reason="Invalid X-Container-Sync-To format %r" % value
            )
        realm, cluster, account, container = parts[2:]
        if not realms.key(realm):
            raise InvalidSyncTo(reason="No realm key for %r" % realm)
        endpoint = realms.endpoint(realm, cluster)
        if not endpoint:
            raise InvalidSyncTo(
                reason="No cluster endpoint for %r %r" % (realm, cluster)
            )
        return SyncTarget(
            url="%s/%s/%s" % (endpoint.rstrip("/"), account, container),
            realm=realm.upper(),
            cluster=cluster.upper(),
        )
    parts_url = urlparse.urlparse(value)
    if parts_url.scheme not in ("http", "https"):
        raise InvalidSyncTo(
            reason='Invalid scheme %r in X-Container-Sync-To, must be "//", '
            '"http", or "https".' % parts_url.scheme
        )
    if not parts_url.path:
        raise InvalidSyncTo(reason="Path required in X-Container-Sync-To")
    if parts_url.params or parts_url.query or parts_url.fragment:
        raise InvalidSyncTo(
            reason="Params, queries, and fragments not allowed in "
            "X-Container-Sync-To"
        )
    if parts_url.hostname not in allowed_sync_hosts:
        raise InvalidSyncTo(
            reason="Invalid host %r in X-Container-Sync-To" % parts_url.hostname
        )
    return SyncTarget(url=value)
