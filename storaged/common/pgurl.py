"""``postgresql://`` URLs of the catalog and the state store: libpq arguments.

``postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=NAME]``
(``postgres://`` is the same), with ``sslmode``, ``sslrootcert``,
``sslcert`` and ``sslkey`` as libpq takes them.  Messages never quote the
URL: a password with unencoded special characters would spill into
whichever part got quoted.  Each user passes its own default schema.
"""

from __future__ import annotations

import re
from typing import Any
from typing import Final
import urllib.parse

SCHEMES: Final = ("postgresql", "postgres")
SCHEMA_NAME_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PARAM_RE: Final = re.compile(r"^[A-Za-z_]{1,40}$")
_SSLMODES: Final = (
    "disable", "allow", "prefer", "require", "verify-ca", "verify-full"
)
_OPTIONS: Final = ("schema", "sslmode", "sslrootcert", "sslcert", "sslkey")
_FORM: Final = "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?schema=NAME]"


def check_schema_name(name: str) -> str:
    """Return ``name`` if it is a schema name storaged accepts.

    :raises ValueError: not 1 to 63 lower-case letters, digits or ``_``.
    """
    if not SCHEMA_NAME_RE.match(name):
        raise ValueError(
            "postgresql URL parameter schema must be 1 to 63 lower-case "
            "letters, digits or '_', not starting with a digit"
        )
    return name


def parse_url(url: str, default_schema: str) -> dict[str, Any]:
    """Return the libpq connection arguments of a URL, and ``schema``.

    :param default_schema: the schema when the URL names none.
    :raises ValueError: not a valid URL (the message never quotes it).
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(
            "postgresql URL port must be a number from 1 to 65535"
        ) from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"postgresql URL has the form {_FORM}")
    if parts.fragment:
        raise ValueError(
            "postgresql URL must not have a #fragment "
            "(write a '#' in a password as %23)"
        )
    if not parts.hostname:
        raise ValueError(f"postgresql URL names no host ({_FORM})")
    if port == 0:
        raise ValueError("postgresql URL port must be a number from 1 to 65535")
    dbname = urllib.parse.unquote(parts.path.lstrip("/"))
    if not dbname or "/" in dbname or "\x00" in dbname:
        raise ValueError(f"postgresql URL names no database ({_FORM})")
    kwargs: dict[str, Any] = {
        "host": parts.hostname,
        "port": port or 5432,
        "dbname": dbname,
        "schema": default_schema,
    }
    if parts.username:
        kwargs["user"] = urllib.parse.unquote(parts.username)
    if parts.password:
        kwargs["password"] = urllib.parse.unquote(parts.password)
    known = ", ".join(_OPTIONS)
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name not in _OPTIONS:
            shown = repr(name) if _PARAM_RE.match(name) else "(unprintable)"
            raise ValueError(
                f"postgresql URL parameter {shown} is not known (it takes {known})"
            )
        if name == "schema":
            check_schema_name(value)
        if name == "sslmode" and value not in _SSLMODES:
            raise ValueError(
                "postgresql URL parameter sslmode must be one of "
                + ", ".join(_SSLMODES)
            )
        kwargs[name] = value
    return kwargs
