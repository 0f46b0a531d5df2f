"""The WSGI application of the object API, and its factories.

:func:`make_app` builds it from a parsed configuration (``storaged-api``
does that); :func:`app_factory` is the paste.deploy entry point, so that any
WSGI server can serve it::

    [app:storaged]
    paste.app_factory = storaged.api.app:app_factory
    config_file = /etc/storaged/storaged.conf

Every request, whatever happens, gets:

* a request id, ``tx<21 hex>-<10 hex time>`` as Swift makes them, answered
  in ``X-Trans-Id`` and ``X-Openstack-Request-Id`` (a client's
  ``X-Trans-Id-Extra`` is appended, quoted);
* one access log line (logger ``storaged.api.access``), once the response
  was sent or abandoned::

      127.0.0.1 PUT /v1/AUTH_test/photos/cat%20.jpg 201 0 1048576 0.0213 tx... -

  client address, method, path (percent-encoded, no query string), status,
  bytes sent, bytes received, seconds, request id, and a note (``-``, or
  e.g. ``cs:valid`` / ``cs:invalid-sig`` for a container-sync request,
  ``incomplete`` when the body was cut short, ``error`` after a failure
  logged with its traceback, ``aborted`` when nothing reached the client).
  Served by ``storaged-api``, the status and bytes are those the server
  really wrote (a 500 it sent instead, the body bytes before a cut; see
  :mod:`storaged.api.guard`).  Tokens, keys and signatures never appear in
  it;
* an answer: an unexpected exception becomes a 500 with Swift's body, its
  traceback logged with the request id, never sent;
* its figures in the metrics (:func:`declare_metrics`), from the same
  numbers as its access log line: requests by method and status class,
  latency, bytes in and out, authentication failures, requests in
  progress.  Labels are a method and a status class, never an account or
  a name.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import json
import logging
import time
from typing import Any
from urllib import parse as urlparse

from oslo_config import cfg

from storaged import concurrency
from storaged import exception
from storaged import metrics as metrics_mod
from storaged import version
from storaged.api import auth
from storaged.api import errors
from storaged.api import formpost
from storaged.api import guard
from storaged.api import routes
from storaged.api import tempurl
from storaged.api.handlers import DRAIN_LIMIT
from storaged.api.handlers import POLICY
from storaged.api.handlers import Handlers
from storaged.api.handlers import Settings
from storaged.api.handlers import bulk_delete
from storaged.api.handlers import extract
from storaged.api.handlers import slo_manifest
from storaged.api.handlers import symlink
from storaged.api.handlers import versioned_writes
from storaged.api.handlers.segments import MAX_GET_TIME
from storaged.api.protocol import HTTPError
from storaged.api.protocol import Request
from storaged.api.protocol import Response
from storaged.api.protocol import error
from storaged.api.protocol import new_request_id
from storaged.api.protocol import quote_path
from storaged.api.protocol import status_line
from storaged.api.protocol import text_to_wsgi
from storaged.api.protocol import wsgi_to_text
from storaged.catalog import MAX_LIMIT
from storaged.objects import expiry
from storaged.objects.repository import ObjectRepository
from storaged.sync import realms as realms_mod

LOG = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger("storaged.api.access")

StartResponse = Callable[..., Any]

#: Methods a legacy ``X-Container-Sync-Key`` authorises.  Swift allows only
#: PUT and DELETE, which breaks its own daemon's HEAD before each PUT; HEAD
#: is allowed here so that the old (full URL) form of sync works.
LEGACY_SYNC_METHODS = frozenset({"HEAD", "PUT", "DELETE"})
SYNC_401_BODY = (
    "X-Container-Sync-Auth header not valid; contact cluster operator for support."
)
#: Methods counted under their own name; any other is ``other``.
METRIC_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "COPY", "OPTIONS"})


def declare_metrics(metrics: metrics_mod.Metrics) -> None:
    """Declare the API's metrics (every worker; they add up across workers)."""
    metrics.counter("api_requests", "Requests answered, by method and status "
                    "class (2xx, 4xx, ...; aborted: nothing reached the client).",
                    ["method", "status"])
    metrics.histogram("api_request_duration_seconds", "Seconds from a "
                      "request's arrival to the end of its response.", ["method"])
    metrics.counter("api_received_bytes", "Request body bytes received.",
                    ["method"])
    metrics.counter("api_sent_bytes", "Response body bytes sent.", ["method"])
    metrics.counter("api_auth_failures", "Requests refused for want of valid "
                    "credentials (401: a bad or expired token, a wrong key, a "
                    "bad container-sync or TempURL signature).")
    metrics.gauge("api_requests_in_progress", "Requests being served.",
                  multiprocess_mode="livesum")
    metrics.gauge("api_open_connections", "Client connections open (idle "
                  "kept-alive ones too).", multiprocess_mode="livesum")


def _method_label(method: str) -> str:
    return method if method in METRIC_METHODS else "other"


class Application:
    """The object API as a WSGI callable.

    :param service: the object service.
    :param authority: users and tokens.
    :param realms: container-sync realms.
    :param settings: the ``[api]`` settings.
    :param metrics: where the figures go (this process's when None).
    """

    def __init__(
        self,
        service: ObjectRepository,
        authority: auth.TokenAuthority,
        realms: realms_mod.Realms,
        settings: Settings | None = None,
        metrics: metrics_mod.Metrics | None = None,
    ) -> None:
        self.service = expiry.ExpiringObjects.over(service)
        self.authority = authority
        self.realms = realms
        self.settings = settings or Settings()
        self.handlers = Handlers(self.service, realms, self.settings)
        self.limits = service.catalog.limits
        self.metrics = metrics or metrics_mod.process()
        declare_metrics(self.metrics)

    def __repr__(self) -> str:
        return "<storaged.api.Application %r>" % (self.service.catalog,)

    def close(self) -> None:
        """Release the object service."""
        self.service.close()

    # -- WSGI ------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        started = time.monotonic()
        rid = new_request_id(environ.get("HTTP_X_TRANS_ID_EXTRA"))
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        note = ""
        # Decremented when the request is logged (_LoggedBody._log).
        self.metrics.incr("api_requests_in_progress")
        try:
            response, note = self._handle(environ, rid)
        except HTTPError as err:
            response, note = err.response, err.log_info
        except exception.StoragedError as err:
            http = errors.to_http(err)
            response = http.response
            if response.status >= 500:
                LOG.error("%s %s failed (request %s): %s", method,
                          quote_path(environ), rid, err)
        except Exception:
            LOG.exception("Unexpected error in %s %s (request %s)", method,
                          quote_path(environ), rid)
            response = Response(500)
        headers = response.headers
        headers["X-Trans-Id"] = rid
        headers["X-Openstack-Request-Id"] = rid
        reader = environ.get("storaged.body")
        if _body_left(environ, reader):
            # Reading the rest just to drop it would cost the client and us
            # the whole upload: close the connection instead.
            headers["Connection"] = "close"
        # Text becomes the bytes of the wire here, and only here.
        start_response(status_line(response.status), [
            (text_to_wsgi(name), text_to_wsgi(value)) for name, value in headers.items()
        ])
        chunks = [] if method == "HEAD" else response.chunks()
        return _LoggedBody(
            chunks, environ, method, response, started, rid, note, self.metrics,
        )

    def _handle(self, environ: dict[str, Any], rid: str) -> tuple[Response, str]:
        path = routes.decode_path(environ.get("PATH_INFO", ""))
        req = Request(environ, path, rid)
        route = routes.route(path, self.limits)
        if route.kind == routes.HEALTHCHECK:
            return Response(200, b"OK", content_type="text/plain"), ""
        if route.kind == routes.INFO:
            if req.method not in ("GET", "HEAD"):
                raise error(405, headers=[("Allow", "GET, HEAD")])
            return self._info(), ""
        if route.kind == routes.AUTH:
            return self._auth(req), ""
        ident, note = self._identify(req, route)
        try:
            if route.kind == routes.ACCOUNT:
                return self.handlers.account(req, route, ident), note
            if route.kind == routes.CONTAINER:
                return self.handlers.container(req, route, ident), note
            return self.handlers.obj(req, route, ident), note
        except HTTPError as err:
            err.log_info = err.log_info or note
            raise
        except exception.StoragedError as err:
            http = errors.to_http(err)
            http.log_info = note
            if http.response.status >= 500:
                LOG.error("%s %s failed (request %s): %s", req.method,
                          quote_path(environ), rid, err)
            raise http from err

    # -- authentication ----------------------------------------------------------

    def _unauthorized(self, account: str, note: str = "") -> HTTPError:
        realm = urlparse.quote(account or "unknown", safe="")
        return error(401, headers=[("Www-Authenticate", 'Swift realm="%s"' % realm)],
                     log_info=note)

    def _sync_key_of(self, account: str, container: str) -> str:
        if not container:
            return ""
        try:
            info = concurrency.run_blocking(
                self.service.container_info, account, container
            )
        except exception.ContainerNotFound:
            return ""
        return info.sync_key

    def _identify(self, req: Request, route: routes.Route) -> tuple[auth.Identity, str]:
        """Return who sends ``req`` and a note for the access log.

        A request without credentials is anonymous
        (:attr:`~storaged.api.auth.Identity.is_anonymous`).

        :raises HTTPError: 401 (a bad token, or a bad sync signature) or
            403 (a sync sender outside its container).
        """
        account, container = route.account, route.container
        sync_auth = req.header("X-Container-Sync-Auth")
        if sync_auth:
            ident, note = self._sync_identity(req, route, sync_auth)
        else:
            ident, note = self._token_identity(req, route)
        if ident.is_sync and (
            route.kind != routes.OBJECT
            or ident.account != account
            or ident.sync_container != container
        ):
            raise error(403, log_info=note)
        # What users (and anonymous requests) may do is decided per
        # request by the handlers (:mod:`storaged.api.access`), since ACLs
        # are kept with the containers and accounts they open.
        return ident, note

    def _sync_identity(
        self, req: Request, route: routes.Route, header: str
    ) -> tuple[auth.Identity, str]:
        user_key = self._sync_key_of(route.account, route.container)
        script = req.environ.get("SCRIPT_NAME", "").encode("latin-1", "replace")
        path = realms_mod.canonical_path(script + req.raw_path)
        result = realms_mod.verify_auth(
            header, req.method, path, req.header("X-Timestamp"), self.realms,
            user_key,
        )
        note = "cs:" + result.reason
        if not result.valid:
            LOG.info("Refused a container-sync request for %s (request %s): %s",
                     path, req.request_id, result.reason)
            realm = urlparse.quote(route.account or "unknown", safe="")
            raise error(
                401, SYNC_401_BODY,
                headers=[("Www-Authenticate", 'SwiftContainerSync realm="%s"' % realm)],
                log_info=note,
            )
        return auth.Identity("", route.account, sync_container=route.container), note

    def _token_identity(
        self, req: Request, route: routes.Route
    ) -> tuple[auth.Identity, str]:
        signed = tempurl.identify(req, route, self.service)
        if signed is None:
            signed = formpost.identify(req, route)
        if signed is not None:
            return signed
        token = req.header("X-Auth-Token") or req.header("X-Storage-Token")
        ident = self.authority.validate(token) if token else None
        if ident is not None:
            return ident, ""
        legacy = req.header("X-Container-Sync-Key")
        if (
            legacy is not None
            and route.kind == routes.OBJECT
            and req.method in LEGACY_SYNC_METHODS
        ):
            user_key = self._sync_key_of(route.account, route.container)
            if realms_mod.verify_legacy_key(legacy, user_key):
                return (
                    auth.Identity("", route.account, sync_container=route.container),
                    "cs:legacy-valid",
                )
            raise self._unauthorized(route.account, "cs:legacy-invalid")
        if token and token.startswith(auth.ACCOUNT_PREFIX):
            # A token of ours that is bad or expired: refused outright, as
            # tempauth refuses the tokens of its own reseller prefix.
            raise self._unauthorized(route.account)
        # No credentials (or another system's token): anonymous, let in
        # only where an ACL opens the way.
        return auth.Identity("", ""), ""

    def _auth(self, req: Request) -> Response:
        """``GET /auth/v1.0``: exchange a user's key for a token."""
        if req.method != "GET":
            raise error(400)
        login = req.header("X-Auth-User") or req.header("X-Storage-User")
        key = req.header("X-Auth-Key") or req.header("X-Storage-Pass")
        if not login or key is None or ":" not in login:
            raise self._unauthorized("unknown")
        try:
            login_text = wsgi_to_text(login)
        except UnicodeError:
            raise self._unauthorized("unknown") from None
        user = self.authority.authenticate(login_text, key)
        if user is None:
            raise self._unauthorized("unknown")
        token, expires = self.authority.issue(user)
        return Response(200, b"", [
            ("X-Auth-Token", token),
            ("X-Storage-Token", token),
            ("X-Auth-Token-Expires", str(max(0, int(expires - time.time())))),
            ("X-Storage-Url", self._storage_url(req, user)),
        ])

    def _storage_url(self, req: Request, user: auth.User) -> str:
        if user.storage_url:
            return user.storage_url
        account = urlparse.quote(user.account_name.encode("utf-8"), safe="")
        base = self.settings.public_url.rstrip("/")
        if not base:
            env = req.environ
            host = env.get("HTTP_HOST") or "%s:%s" % (
                env.get("SERVER_NAME", "localhost"), env.get("SERVER_PORT", "80")
            )
            script = urlparse.quote(
                env.get("SCRIPT_NAME", "").encode("latin-1", "replace"), safe="/"
            )
            base = "%s://%s%s" % (env.get("wsgi.url_scheme", "http"), host, script)
        return "%s/v1/%s" % (base, account)

    def _info(self) -> Response:
        limits = self.limits
        info = {
            "swift": {
                "version": "storaged-%s" % version.version_string(),
                "max_file_size": self.settings.max_object_size,
                "max_account_name_length": limits.max_account_name_length,
                "max_container_name_length": limits.max_container_name_length,
                "max_object_name_length": limits.max_object_name_length,
                "max_meta_name_length": limits.max_meta_name_length,
                "max_meta_value_length": limits.max_meta_value_length,
                "max_meta_count": limits.max_meta_count,
                "max_meta_overall_size": limits.max_meta_overall_size,
                "container_listing_limit": MAX_LIMIT,
                "account_listing_limit": MAX_LIMIT,
                "extra_header_count": 0,
                "max_header_size": 8192,
                "policies": [{"name": POLICY, "aliases": POLICY, "default": True}],
            },
            "tempauth": {"account_acls": True},
            "container_sync": {"realms": self.realms.as_info()},
            "slo": {
                "max_manifest_segments": slo_manifest.MAX_MANIFEST_SEGMENTS,
                "max_manifest_size": slo_manifest.MAX_MANIFEST_SIZE,
                "yield_frequency": slo_manifest.YIELD_FREQUENCY,
                "min_segment_size": 1,
                "allow_async_delete": False,
            },
            "dlo": {"max_get_time": MAX_GET_TIME},
            "bulk_delete": {
                "max_deletes_per_request": bulk_delete.MAX_DELETES_PER_REQUEST,
                "max_failed_deletes": bulk_delete.MAX_FAILED_DELETES,
            },
            "bulk_upload": {
                "max_containers_per_extraction": extract.MAX_CONTAINERS_PER_EXTRACTION,
                "max_failed_extractions": extract.MAX_FAILED_EXTRACTIONS,
            },
            "container_quotas": {},
            "account_quotas": {},
            "symlink": {"symloop_max": symlink.SYMLOOP_MAX, "static_links": True},
            "versioned_writes": versioned_writes.INFO,
            "tempurl": tempurl.info(),
            "formpost": formpost.info(),
        }
        return Response(200, json.dumps(info, sort_keys=True).encode("utf-8"),
                        content_type="application/json; charset=utf-8")


def _body_left(environ: dict[str, Any], reader: Any) -> bool:
    """Tell whether a request body is left unread and too large to drain."""
    if reader is not None:
        if reader.complete:
            return False
        length = environ.get("CONTENT_LENGTH") or ""
        left = int(length) - reader.received if length.isdigit() else DRAIN_LIMIT + 1
        return left > DRAIN_LIMIT
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    length = environ.get("CONTENT_LENGTH") or ""
    return length.isdigit() and int(length) > DRAIN_LIMIT


class _LoggedBody:
    """A response body that counts what was sent and logs the request once."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        environ: dict[str, Any],
        method: str,
        response: Response,
        started: float,
        rid: str,
        note: str,
        metrics: metrics_mod.Metrics,
    ) -> None:
        self._chunks = chunks
        self._environ = environ
        self._method = method
        self._response = response
        self._started = started
        self._rid = rid
        self._note = note
        self._metrics = metrics
        self._sent = 0
        self._logged = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            sent = self._environ.get(guard.SENT_KEY)
            if sent is None:
                self._log()
            else:
                # The server may still send its own 500, or fail to write
                # what was buffered: log once it is done.
                sent.when_finished(self._log)

    def _log(self) -> None:
        if self._logged:
            return
        self._logged = True
        notes = [self._note] if self._note else []
        status, sent_bytes = self._response.status, self._sent
        wire: guard.SentResponse | None = self._environ.get(guard.SENT_KEY)
        if wire is not None:
            sent_bytes = wire.body_bytes
            if wire.error:
                notes.append("error")
            if wire.status is None:
                notes.append("aborted")
            else:
                status = wire.status
        cut = status == self._response.status and (
            (wire is not None and wire.write_failed)
            or (self._method != "HEAD" and sent_bytes < self._response.length)
        )
        if cut and "aborted" not in notes:
            notes.append("incomplete")
        reader = self._environ.get("storaged.body")
        received = reader.received if reader is not None else 0
        elapsed = time.monotonic() - self._started
        self._measure(status if wire is None or wire.status is not None else None,
                      sent_bytes, received, elapsed)
        ACCESS_LOG.info(
            "%s %s %s %d %d %d %.4f %s %s",
            self._environ.get("REMOTE_ADDR", "-"),
            self._method,
            quote_path(self._environ),
            status,
            sent_bytes,
            received,
            elapsed,
            self._rid,
            ",".join(notes) or "-",
        )

    def _measure(
        self, status: int | None, sent: int, received: int, elapsed: float
    ) -> None:
        m, method = self._metrics, _method_label(self._method)
        m.incr("api_requests_in_progress", -1)
        m.incr("api_requests", method=method,
               status="aborted" if status is None else "%dxx" % (status // 100))
        m.observe("api_request_duration_seconds", elapsed, method=method)
        if received:
            m.incr("api_received_bytes", received, method=method)
        if sent:
            m.incr("api_sent_bytes", sent, method=method)
        if status == 401:
            m.incr("api_auth_failures")


def settings_from_conf(conf: cfg.ConfigOpts) -> Settings:
    """Return the handler settings of ``[api]``."""
    group = conf.api
    return Settings(
        max_object_size=group.max_object_size,
        chunk_size=group.chunk_size,
        client_timeout=group.client_timeout,
        verify_reads=group.verify_reads,
        public_url=group.public_url,
        allowed_sync_hosts=tuple(conf.sync.allowed_sync_hosts),
    )


def make_app(
    conf: cfg.ConfigOpts,
    service: ObjectRepository | None = None,
    authority: auth.TokenAuthority | None = None,
) -> Application:
    """Build the application from a parsed configuration.

    :param service: the object service; built from ``conf`` when None.
    :param authority: users and tokens; built from ``[api]`` when None (a
        server with several workers makes one before forking, so that they
        share a random token secret).
    :raises storaged.exception.ConfigError: a bad user entry or realms file.
    """
    if authority is None:
        authority = authority_from_conf(conf)
    realms = realms_mod.Realms.load(conf.sync.realms_conf)
    if service is None:
        service = ObjectRepository.from_conf(conf)
    return Application(service, authority, realms, settings_from_conf(conf))


def authority_from_conf(conf: cfg.ConfigOpts) -> auth.TokenAuthority:
    """Return the token authority of ``[api]`` (users, secret, ttl)."""
    return auth.TokenAuthority(
        auth.users_from_conf(conf), conf.api.token_secret, conf.api.token_ttl
    )


def app_factory(global_conf: dict[str, str], **local_conf: str) -> Application:
    """paste.deploy entry point: ``config_file`` names storaged's configuration.

    ``config_file`` (in the app's section or ``[DEFAULT]``) may list several
    files separated by commas; ``config_dir`` is honoured too.  The process
    must have chosen its concurrency backend already (a server that
    monkey-patches with eventlet, or not); storaged's is set up here if not.
    """
    from storaged.common import config
    from storaged.conf import api as api_conf

    merged = dict(global_conf)
    merged.update(local_conf)
    argv: list[str] = []
    for path in (merged.get("config_file") or "").split(","):
        if path.strip():
            argv += ["--config-file", path.strip()]
    if merged.get("config_dir"):
        argv += ["--config-dir", merged["config_dir"].strip()]
    concurrency.setup(argv=argv)
    # The ``user_*`` options are registered once the files are parsed, as
    # storaged-api does.
    conf = config.prepare_service(
        argv, prog="storaged-api", validators=[api_conf.check_users],
    )
    return make_app(conf)
