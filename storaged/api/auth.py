"""Users and tokens, as Swift's tempauth has them.

Users come from ``[api] user_<account>_<user> = <key> [.admin] [.reseller_admin]
[storage URL]``: ``user_test_tester = testing .admin`` lets ``test:tester``
with key ``testing`` use the account ``AUTH_test`` as its owner.

* a user of an account may list, read and write its containers and objects;
* ``.admin`` makes the user the account's **owner**: only owners see and set
  the owner-only container headers (``X-Container-Sync-To``,
  ``X-Container-Sync-Key``); for others they are dropped from requests and
  responses, as Swift does;
* ``.reseller_admin`` makes the user owner of every account.

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

from oslo_config import cfg

from storaged import exception

#: Prefix of every account served (tempauth's ``reseller_prefix``).
ACCOUNT_PREFIX: Final = "AUTH_"
#: Prefix of every token, as tempauth's.
TOKEN_PREFIX: Final = "AUTH_tk"  # noqa: S105 - a prefix, not a secret
ADMIN: Final = ".admin"
RESELLER_ADMIN: Final = ".reseller_admin"
GROUPS: Final = frozenset({ADMIN, RESELLER_ADMIN})

_USER_PREFIX: Final = "user_"
# Longest token accepted, so a hostile header costs little to reject.
_MAX_TOKEN: Final = 2048


@dataclasses.dataclass(frozen=True, repr=False)
class User:
    """A configured user.  ``repr`` leaves the key out.

    :ivar account: the account part of the option name (``test``).
    :ivar name: the user part (``tester``).
    :ivar key: the user's key, a secret.
    :ivar groups: ``.admin`` and/or ``.reseller_admin``.
    :ivar storage_url: the ``X-Storage-Url`` to hand out, or ``""`` to build it.
    """

    account: str
    name: str
    key: str
    groups: frozenset[str] = frozenset()
    storage_url: str = ""

    @property
    def login(self) -> str:
        """``account:user``, what ``X-Auth-User`` carries."""
        return "%s:%s" % (self.account, self.name)

    @property
    def account_name(self) -> str:
        """The account served for this user, ``AUTH_<account>``."""
        return ACCOUNT_PREFIX + self.account

    def __repr__(self) -> str:
        return "User(%r, groups=%r)" % (self.login, sorted(self.groups))


def parse_user(option: str, value: str) -> User:
    """Build a :class:`User` from an ``[api] user_<account>_<user>`` entry.

    :raises ValueError: a malformed name or value (the message never holds
        the key).
    """
    if not option.startswith(_USER_PREFIX):
        raise ValueError("a user option starts with %r" % _USER_PREFIX)
    account, sep, name = option[len(_USER_PREFIX):].partition("_")
    if not sep or not account or not name:
        raise ValueError("the name must be user_<account>_<user>")
    words = (value or "").split()
    if not words:
        raise ValueError("the value must start with the user's key")
    key, rest = words[0], words[1:]
    storage_url = ""
    if rest and "://" in rest[-1]:
        storage_url = rest.pop()
    unknown = [w for w in rest if w not in GROUPS]
    if unknown:
        raise ValueError(
            "unknown group %r (known: %s)" % (unknown[0], ", ".join(sorted(GROUPS)))
        )
    return User(account, name, key, frozenset(rest), storage_url)


def users_from_conf(conf: cfg.ConfigOpts) -> dict[str, User]:
    """Return the configured users by ``account:user``.

    :raises storaged.exception.ConfigError: a malformed entry.
    """
    users: dict[str, User] = {}
    group = conf.api
    for option in sorted(group):
        if not option.startswith(_USER_PREFIX):
            continue
        value = group[option]
        if value is None:
            continue
        try:
            user = parse_user(option, value)
        except ValueError as err:
            raise exception.ConfigError(str(err), group="api", option=option) from err
        users[user.login] = user
    return users


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a request comes from, once authenticated.

    :ivar user: ``account:user`` (or ``""`` for a container-sync sender).
    :ivar account: the account it belongs to (``AUTH_test``).
    :ivar groups: the user's groups.
    :ivar sync_container: for a container-sync sender, the only container
        it may touch; ``""`` for users.
    """

    user: str
    account: str
    groups: frozenset[str] = frozenset()
    sync_container: str = ""

    @property
    def is_sync(self) -> bool:
        """True for a container-sync sender."""
        return bool(self.sync_container)

    def may_access(self, account: str) -> bool:
        """Tell whether this identity may use ``account`` at all."""
        return RESELLER_ADMIN in self.groups or account == self.account

    def owns(self, account: str) -> bool:
        """Tell whether this identity is an owner of ``account``."""
        if self.is_sync:
            return False
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
