"""Which handler a request goes to, and whether its path is acceptable.

Paths, after the server percent-decoded them::

    /healthcheck                          always 200 "OK"
    /info                                 capabilities (Swift's /info)
    /auth/v1.0  /auth/v1  /v1.0           tempauth-style login (GET)
    /v1/<account>                         account GET/HEAD
    /v1/<account>/<container>             container PUT/POST/HEAD/GET/DELETE
    /v1/<account>/<container>/<object>    object PUT/GET/HEAD/POST/DELETE

Checks, in Swift's order and with Swift's answers:

* the path must be UTF-8 without NUL: else **412** ``Invalid UTF8 or
  contains NULL``;
* a path Swift's ``split_path`` refuses: **404** (``/`` alone, a first
  segment that is empty as in ``//v1/a`` (the server does not fold it), an
  empty segment before the last as in ``/v1//c`` or ``/v1/a//o``);
* another version than ``v1`` before an account: **400**;
* no account (``/v1``, ``/v1/``, ``/anything``): **412** ``Bad URL``, as
  Swift's proxy answers when it finds no controller;
* names longer than the limits: **400** ``Object name length of 1030 longer
  than 1024`` (and the same for containers and accounts), in UTF-8 bytes;
* names the catalog refuses (``.`` or ``..`` as a name or an object path
  segment, control characters): **400** with the reason.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from storaged import exception
from storaged.api.protocol import HTML
from storaged.api.protocol import PLAIN
from storaged.api.protocol import HTTPError
from storaged.api.protocol import error
from storaged.catalog import Limits
from storaged.catalog import validate_account
from storaged.catalog import validate_container
from storaged.catalog import validate_object

AUTH_PATHS: Final = frozenset({"/auth/v1.0", "/auth/v1", "/auth/v1/", "/v1.0"})
VERSIONS: Final = frozenset({"v1", "v1.0"})

HEALTHCHECK: Final = "healthcheck"
INFO: Final = "info"
AUTH: Final = "auth"
ACCOUNT: Final = "account"
CONTAINER: Final = "container"
OBJECT: Final = "object"


@dataclasses.dataclass(frozen=True)
class Route:
    """Where a request goes.

    :ivar kind: one of :data:`HEALTHCHECK`, :data:`INFO`, :data:`AUTH`,
        :data:`ACCOUNT`, :data:`CONTAINER`, :data:`OBJECT`.
    """

    kind: str
    account: str = ""
    container: str = ""
    obj: str = ""


def decode_path(path_info: str) -> str:
    """Return a WSGI ``PATH_INFO`` (latin-1 text of the bytes) as text.

    :raises HTTPError: 412 for bytes that are not UTF-8, or NUL.
    """
    try:
        text = path_info.encode("latin-1").decode("utf-8")
    except UnicodeError as err:
        raise error(412, "Invalid UTF8 or contains NULL", content_type=HTML) from err
    if "\x00" in text:
        raise error(412, "Invalid UTF8 or contains NULL", content_type=HTML)
    return text


def _too_long(kind: str, name: str, limit: int) -> HTTPError | None:
    size = len(name.encode("utf-8"))
    if size > limit:
        # Swift's check_object_creation says so in plain text; its proxy's
        # container and account controllers in swob's default HTML type.
        return error(400, "%s name length of %d longer than %d" % (kind, size, limit),
                     content_type=PLAIN if kind == "Object" else HTML)
    return None


def route(path: str, limits: Limits) -> Route:
    """Map a decoded path to a :class:`Route`, checking its names.

    :raises HTTPError: 400, 404 or 412, as Swift answers such paths.
    """
    if path in AUTH_PATHS:
        return Route(AUTH)
    if path == "/healthcheck":
        return Route(HEALTHCHECK)
    if path == "/info":
        return Route(INFO)
    parts = path.split("/", 4)
    # Swift's split_path(path, 1, 4, True): ValueError (404) for these.
    segments = parts[1:]
    if parts[0] or not segments or not segments[0] or not all(segments[:-1]):
        raise error(404)
    version = segments[0]
    account = parts[2] if len(parts) > 2 else ""
    container = parts[3] if len(parts) > 3 else ""
    obj = parts[4] if len(parts) > 4 else ""
    if account and version not in VERSIONS:
        raise error(400)
    if not account:
        raise error(412, "Bad URL", content_type=HTML)
    for problem in (
        _too_long("Account", account, limits.max_account_name_length),
        _too_long("Container", container, limits.max_container_name_length),
        _too_long("Object", obj, limits.max_object_name_length),
    ):
        if problem is not None:
            raise problem
    try:
        validate_account(account, limits)
        if container:
            validate_container(container, limits)
        if obj:
            validate_object(obj, limits)
    except exception.InvalidName as err:
        raise error(400, str(err)) from err
    if obj:
        return Route(OBJECT, account, container, obj)
    if container:
        return Route(CONTAINER, account, container)
    return Route(ACCOUNT, account)
