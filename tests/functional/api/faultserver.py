"""``storaged-api`` with faults on purpose under ``/fault/``, for failure tests.

Run as ``python -m tests.functional.api.faultserver --config-file ...``: the
real command, whose application answers three extra paths (without
authentication) by failing in the ways a server must never keep quiet about:

``/fault/header``
    a response header whose value cannot go on the wire (not latin-1);
``/fault/early``
    a body whose iterator raises before its first chunk;
``/fault/midbody``
    a 400,000-byte body whose iterator raises after 200,000 bytes.
"""

from __future__ import annotations

import sys

from storaged.api import app as app_mod
from storaged.api.protocol import Response
from storaged.cmd import api

MIDBODY_SENT = 200_000
MIDBODY_LENGTH = 400_000


def _failing(before: int):
    sent = 0
    while sent < before:
        chunk = b"x" * min(8192, before - sent)
        sent += len(chunk)
        yield chunk
    raise RuntimeError("fault injected after %d bytes" % sent)


_original_handle = app_mod.Application._handle


def _handle(self, environ, rid):
    path = environ.get("PATH_INFO", "")
    if path == "/fault/header":
        return Response(200, b"OK"), ""
    if path == "/fault/early":
        return Response(200, _failing(0), length=1000), ""
    if path == "/fault/midbody":
        return Response(200, _failing(MIDBODY_SENT), length=MIDBODY_LENGTH), ""
    return _original_handle(self, environ, rid)


def _bad_header(app):
    """Add a header no HTTP/1.1 server can encode to ``/fault/header``."""

    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") != "/fault/header":
            return app(environ, start_response)

        def start(status, headers, exc_info=None):
            return start_response(
                status, [*headers, ("X-Fault", "snow \u2603")], exc_info
            )

        return app(environ, start)

    wrapped.close = app.close
    wrapped.realms = app.realms
    return wrapped


_original_make_app = app_mod.make_app


def _make_app(*args, **kwargs):
    return _bad_header(_original_make_app(*args, **kwargs))


def main() -> int:
    app_mod.Application._handle = _handle
    app_mod.make_app = _make_app
    return api.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
