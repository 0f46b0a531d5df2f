"""Access control lists, as Swift's tempauth writes and reads them.

Two kinds, both kept with what they protect:

* **container ACLs** (version 1), ``X-Container-Read`` and
  ``X-Container-Write``: a comma-separated list of grantees::

      .r:*,.r:-.thief.example.com,.rlistings,other,test:tester3

  ``.r:<host>`` lets requests whose ``Referer`` names that host in
  (``*`` any host, a leading ``.`` a domain, a leading ``-`` a refusal,
  applied in order); referrers are for reading objects, and for listings
  too only with ``.rlistings``; other entries are groups: an account
  (``other``: all its users), a user (``other:bob``) or a group of the
  user's.  Referrers make no sense in a write ACL and are refused there.
  :func:`clean_acl` is Swift's cleaning (``.referrer : *`` becomes
  ``.r:*``), with its error texts.

* **account ACLs** (version 2), ``X-Account-Access-Control``: JSON with
  the lists ``admin``, ``read-write`` and ``read-only``; an ``admin`` is
  an owner of the account, ``read-write`` may do anything under it but
  change the account, ``read-only`` may read.  :func:`check_account_acl`
  gives tempauth's error for a bad one; :func:`format_account_acl` its
  canonical form (sorted keys, no spaces, ASCII).

Nothing here does I/O: :mod:`storaged.api.access` applies the lists.
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import json
from typing import Any
from typing import Final
from urllib import parse as urlparse

#: The container ACL headers.
READ_ACL: Final = "X-Container-Read"
WRITE_ACL: Final = "X-Container-Write"
#: The account ACL header.
ACCOUNT_ACL: Final = "X-Account-Access-Control"
#: The keys of an account ACL, in order of power.
ACCOUNT_ACL_KEYS: Final = ("admin", "read-write", "read-only")

_REFERRER_DESIGNATORS: Final = frozenset({".r", ".ref", ".referer", ".referrer"})


def clean_acl(name: str, value: str) -> str:
    """Return a container ACL in its clean form, or refuse it.

    :param name: the header it came in (``X-Container-Read`` ...): a
        write ACL may not hold referrers.
    :raises ValueError: with Swift's message (the 400's body).
    """
    write = "write" in name.lower()
    values = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw:
            continue
        if ":" not in raw:
            values.append(raw)
            continue
        first, second = (part.strip() for part in raw.split(":", 1))
        if not first or not first.startswith("."):
            values.append(raw)
            continue
        if first not in _REFERRER_DESIGNATORS:
            raise ValueError("Unknown designator %r in ACL: %r" % (first, raw))
        if write:
            raise ValueError("Referrers not allowed in write ACL: %r" % raw)
        negate = second.startswith("-")
        if negate:
            second = second[1:].strip()
        if second and second != "*" and second.startswith("*"):
            second = second[1:].strip()
        if not second or second == ".":
            raise ValueError(
                "No host/domain value after referrer designation in ACL: %r" % raw)
        values.append(".r:%s%s" % ("-" if negate else "", second))
    return ",".join(values)


@dataclasses.dataclass(frozen=True)
class ContainerAcl:
    """A parsed container ACL.

    :ivar referrers: the referrer designations, without ``.r:``.
    :ivar groups: the groups (accounts, users, ``.rlistings``), unquoted.
    """

    referrers: tuple[str, ...] = ()
    groups: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, value: str | None) -> ContainerAcl:
        """Parse a stored (clean) ACL; None or ``""`` is the empty ACL."""
        referrers: list[str] = []
        groups: set[str] = set()
        for item in (value or "").split(","):
            if not item:
                continue
            if item.startswith(".r:"):
                referrers.append(item[3:])
            else:
                groups.add(urlparse.unquote(item))
        return cls(tuple(referrers), frozenset(groups))

    @property
    def listings(self) -> bool:
        """True when referrers may list the container too (``.rlistings``)."""
        return ".rlistings" in self.groups

    def grants(self, user_groups: Iterable[str]) -> bool:
        """Tell whether any of a user's groups is in the list."""
        return any(group in self.groups for group in user_groups)

    def referrer_allowed(self, referer: str | None) -> bool:
        """Tell whether a request with this ``Referer`` is let in.

        Every designation is applied in order, the last match deciding.
        """
        allow = False
        if not self.referrers:
            return False
        try:
            host = urlparse.urlparse(referer or "").hostname or "unknown"
        except ValueError:
            host = "unknown"
        for designation in self.referrers:
            if designation.startswith("-"):
                if _host_matches(designation[1:], host):
                    allow = False
            elif designation == "*" or _host_matches(designation, host):
                allow = True
        return allow


def _host_matches(pattern: str, host: str) -> bool:
    return pattern == host or (pattern.startswith(".") and host.endswith(pattern))


@dataclasses.dataclass(frozen=True)
class AccountAcl:
    """A parsed account ACL: who is an admin, who may read and write, who may read."""

    admin: frozenset[str] = frozenset()
    read_write: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, value: str | None) -> AccountAcl | None:
        """Parse a stored account ACL; None when there is none (or it is unreadable)."""
        data = _json_object(value)
        if not data:
            return None
        lists = [data.get(key, []) for key in ACCOUNT_ACL_KEYS]
        if not all(isinstance(members, list) for members in lists):
            return None
        acl = cls(*(frozenset(m for m in members if isinstance(m, str))
                    for members in lists))
        if not (acl.admin or acl.read_write or acl.read_only):
            return None
        return acl


def _json_object(value: str | None) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def check_account_acl(value: str) -> str | None:
    """Return tempauth's complaint about an ``X-Account-Access-Control``, or None.

    An empty value is accepted: it removes the ACL.
    """
    if value == "":
        return None
    try:
        data = json.loads(value)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return "Syntax error in input (%r)" % value
    for key in data:
        if key not in ACCOUNT_ACL_KEYS:
            return "Key %s not recognized" % json.dumps(key)
    for key in ACCOUNT_ACL_KEYS:
        if key not in data:
            continue
        if not isinstance(data[key], list):
            return "Value for key %s must be a list" % json.dumps(key)
        if not all(isinstance(grantee, str) for grantee in data[key]):
            return "Elements of %s list must be strings" % json.dumps(key)
    return None


def format_account_acl(value: str) -> str:
    """Return a stored account ACL as Swift sends it back, ``""`` for none.

    Swift's form: compact, sorted keys, ASCII escapes; an empty object is
    no ACL.
    """
    data = _json_object(value)
    if not data:
        return ""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
