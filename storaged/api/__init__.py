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

from storaged.api.app import Application
from storaged.api.app import app_factory
from storaged.api.app import make_app

__all__ = ["Application", "app_factory", "make_app"]
