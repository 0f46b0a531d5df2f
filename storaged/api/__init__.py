"""``storaged-api``: a Swift-compatible object API over the object service.

Real Swift clients (``python-swiftclient``'s ``swift``, rclone) and Swift's
container-sync talk to it: tempauth-style ``/auth/v1.0``, accounts,
containers and objects under ``/v1/``, and container-sync receipt (signed
``X-Container-Sync-Auth`` requests, or the legacy ``X-Container-Sync-Key``).

* :mod:`storaged.api.app`: the WSGI application (:func:`make_app`,
  :func:`app_factory` for paste.deploy);
* :mod:`storaged.api.routes`, :mod:`storaged.api.handlers`: paths and methods;
* :mod:`storaged.api.auth`: users and tokens;
* :mod:`storaged.api.errors`: storaged's exceptions as HTTP statuses;
* :mod:`storaged.api.server`: the server of ``storaged-api`` (eventlet's
  WSGI server, or the standard library's under the threading backend).

See ``docs/api.rst``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Application", "app_factory", "make_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the option module reads users through
    # storaged.api.auth, and every command loads it; the application (and
    # the object service behind it) is only needed by storaged-api.
    if name in __all__:
        from storaged.api import app

        return getattr(app, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
