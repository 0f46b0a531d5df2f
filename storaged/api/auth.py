"""Users and tokens, as Swift's tempauth has them.

Users come from ``[api] user_<account>_<user> = <key> [.admin] [.reseller_admin]
[storage URL]``: ``user_test_tester = testing .admin`` lets ``test:tester``
with key ``testing`` use the account ``AUTH_test`` as its owner.

* ``.admin`` makes the user the account's **owner**: it may do anything in
  the account, and only owners see and set the owner-only headers (ACLs,
  sync settings, temp URL keys); for others they are dropped from requests
  and responses, as Swift does;
* ``.reseller_admin`` makes the user owner of every account;
* any other user may do only what an ACL grants it
  (:mod:`storaged.api.access`, by its :attr:`Identity.acl_groups`).

``GET /auth/v1.0`` with ``X-Auth-User: test:tester`` and ``X-Auth-Key``
answers a token.  Tokens are not stored: a token carries its user, its
expiry and a random part, signed with HMAC-SHA256 under the server's
secret and the user's key::

    AUTH_tk<base64url("<expiry hex>:<random hex>:<account>:<user>")>.<signature hex>

so it is valid on every worker and every server sharing ``token_secret``,
it expires on its own, and changing a user's key revokes its tokens.
Keys and signatures are compared with :func:`hmac.compare_digest` (the time
taken does not depend on how much of a value matched), and an unknown user
costs the same comparison as a known one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from collections.abc import Mapping
import dataclasses
import hashlib
import hmac
import secrets
import time
from typing import Final

from storaged.conf.api import ACCOUNT_PREFIX as ACCOUNT_PREFIX
from storaged.conf.api import ADMIN as ADMIN
from storaged.conf.api import GROUPS as GROUPS
from storaged.conf.api import RESELLER_ADMIN as RESELLER_ADMIN
from storaged.conf.api import User as User
from storaged.conf.api import parse_user as parse_user
from storaged.conf.api import users_from_conf as users_from_conf

#: Prefix of every token, as tempauth's.
TOKEN_PREFIX: Final = "AUTH_tk"  # noqa: S105 - a prefix, not a secret
# Longest token accepted, so a hostile header costs little to reject.
_MAX_TOKEN: Final = 2048


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a request comes from, once authenticated.

    :ivar user: ``account:user`` (or ``""`` for a container-sync sender).
    :ivar account: the account it belongs to (``AUTH_test``).
    :ivar groups: the user's groups.
    :ivar sync_container: for a container-sync sender, the only container
        it may touch; ``""`` for users.
    :ivar via: for a request let in by a signature in its URL or form
        rather than by a user (``"tempurl"``, ``"formpost"``), what let it
        in; ``""`` otherwise.  Such a request acts for ``account`` on the
        one path its signature covers, and is never an owner.
    :ivar acl_owner: an account whose ACL (``admin``) makes this user one
        of its owners, for the request at hand (:mod:`storaged.api.access`).
    """

    user: str
    account: str
    groups: frozenset[str] = frozenset()
    sync_container: str = ""
    via: str = ""
    acl_owner: str = ""

    @property
    def is_sync(self) -> bool:
        """True for a container-sync sender."""
        return bool(self.sync_container)

    @property
    def is_anonymous(self) -> bool:
        """True for a request with no credentials at all (only ACLs let it in)."""
        return not (self.user or self.sync_container or self.via)

    @property
    def acl_groups(self) -> frozenset[str]:
        """The names an ACL grants this user access by, as tempauth's groups.

        The user's account (``test``: every user of it), the user
        (``test:tester``), its groups (``.reseller_admin``), and for an
        ``.admin`` the account's full name (``AUTH_test``).
        """
        if not self.user:
            return frozenset()
        names = {self.user, self.user.split(":", 1)[0]}
        names.update(self.groups - {ADMIN})
        if ADMIN in self.groups:
            names.add(self.account)
        return frozenset(names)

    def owns(self, account: str) -> bool:
        """Tell whether this identity is an owner of ``account``."""
        if self.is_sync or self.via:
            return False
        if self.acl_owner and self.acl_owner == account:
            return True
        if RESELLER_ADMIN in self.groups:
            return True
        return ADMIN in self.groups and account == self.account


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Checks users' keys, and issues and validates tokens.

    :param users: by ``account:user``.
    :param secret: signs the tokens; random when empty.
    :param ttl: seconds a token is valid.
    :param clock: ``time.time`` (tests replace it).
    """

    def __init__(
        self,
        users: Mapping[str, User],
        secret: str | bytes = b"",
        ttl: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = dict(users)
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._secret = raw or secrets.token_bytes(32)
        self.ttl = ttl
        self._clock = clock
        # Compared against when the user is unknown, so that the answer
        # takes as long as for a known user with a wrong key.
        self._decoy = secrets.token_hex(16).encode("ascii")

    def __repr__(self) -> str:
        return "<TokenAuthority %d users, ttl %ss>" % (len(self.users), self.ttl)

    def authenticate(self, login: str, key: str | bytes) -> User | None:
        """Return the user if ``key`` is its key, else None.

        :param login: ``account:user``.
        :param key: the key sent (WSGI text or bytes).
        """
        raw = key if isinstance(key, bytes) else key.encode("latin-1", "replace")
        user = self.users.get(login)
        expected = user.key.encode("utf-8") if user is not None else self._decoy
        match = hmac.compare_digest(raw, expected)
        return user if (match and user is not None) else None

    def _mac(self, payload: bytes, user: User) -> str:
        user_part = hashlib.sha256(user.key.encode("utf-8")).digest()
        return hmac.new(
            self._secret, payload + b"\0" + user_part, hashlib.sha256
        ).hexdigest()

    def issue(self, user: User) -> tuple[str, int]:
        """Return a new token for ``user`` and its expiry (seconds since the epoch)."""
        expires = int(self._clock() + self.ttl)
        payload = "%x:%s:%s:%s" % (
            expires, secrets.token_hex(16), user.account, user.name
        )
        raw = payload.encode("utf-8")
        token = "%s%s.%s" % (TOKEN_PREFIX, _b64encode(raw), self._mac(raw, user))
        return token, expires

    def validate(self, token: str) -> Identity | None:
        """Return who a token belongs to, or None (bad, forged or expired)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN:
            return None
        body, sep, sig = token[len(TOKEN_PREFIX):].rpartition(".")
        if not sep:
            return None
        try:
            raw = _b64decode(body)
            payload = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        parts = payload.split(":", 3)
        if len(parts) != 4:
            return None
        expiry_hex, _random, account, name = parts
        user = self.users.get("%s:%s" % (account, name))
        if user is None:
            return None
        expected = self._mac(raw, user)
        if not hmac.compare_digest(sig.encode("latin-1", "replace"),
                                   expected.encode("ascii")):
            return None
        try:
            expires = int(expiry_hex, 16)
        except ValueError:
            return None
        if expires <= self._clock():
            return None
        return Identity(user.login, user.account_name, user.groups)

    def expires_in(self, token: str) -> int:
        """Seconds until a (valid) token expires, 0 when it cannot be read."""
        body = token[len(TOKEN_PREFIX):].rpartition(".")[0]
        try:
            expires = int(_b64decode(body).decode("utf-8").split(":", 1)[0], 16)
        except (binascii.Error, ValueError):
            return 0
        return max(0, int(expires - self._clock()))
