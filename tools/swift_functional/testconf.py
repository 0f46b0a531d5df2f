"""Swift's ``test.conf``, and the users it names.

The users are those of Swift's ``test/sample.conf`` (and of the tempauth
section of Swift's own dev setup) that storaged's ``[api] user_*`` entries
can express:

=====  ================  ==============================  ====================
index  login             Swift's tempauth groups          storaged groups
=====  ================  ==============================  ====================
1      ``test:tester``   ``.admin``                      ``.admin``
2      ``test2:tester2`` ``.admin`` (a second account)   ``.admin``
3      ``test:tester3``  none (not an owner)             none
6      ``test:tester6``  ``.reseller_admin``             ``.reseller_admin``
s3 2   ``test:tester2``  ``.admin``                      ``.admin``
=====  ================  ==============================  ====================

Left out, so that Swift's tests that need them skip:

* user 4, ``account4``/``domain4``: Keystone v3 only;
* user 5 and ``service_prefix``: a service user in a group of its own
  (``service``) and a second reseller prefix (``SERVICE_``); storaged has
  one prefix, ``AUTH_``, and no groups but ``.admin`` and ``.reseller_admin``.

``storage_domain`` stays empty (no domain_remap), so its tests skip too.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class User:
    """A user both storaged's configuration and ``test.conf`` name.

    :ivar account: the account (``test`` serves ``AUTH_test``).
    :ivar name: the user's name in the account.
    :ivar key: the password.
    :ivar groups: tempauth groups (``.admin``, ``.reseller_admin``).
    """

    account: str
    name: str
    key: str
    groups: tuple[str, ...] = ()

    @property
    def login(self) -> str:
        """``account:user``."""
        return "%s:%s" % (self.account, self.name)

    @property
    def storaged_option(self) -> tuple[str, str]:
        """The ``[api]`` option and value that define this user in storaged."""
        value = " ".join((self.key, *self.groups))
        return "user_%s_%s" % (self.account, self.name), value


TESTER = User("test", "tester", "testing", (".admin",))
TESTER2 = User("test2", "tester2", "testing2", (".admin",))
TESTER3 = User("test", "tester3", "testing3")
TESTER6 = User("test", "tester6", "testing6", (".reseller_admin",))
# s3api's second owner of the primary account (its tests skip: no s3api).
S3_TESTER2 = User("test", "tester2", "testing2", (".admin",))

USERS = (TESTER, TESTER2, TESTER3, TESTER6, S3_TESTER2)


def func_test_options(auth_uri: str) -> dict[str, str]:
    """Return the ``[func_test]`` options, in Swift's sample.conf order."""
    return {
        "auth_uri": auth_uri,
        "account": TESTER.account,
        "username": TESTER.name,
        "password": TESTER.key,
        "s3_access_key": TESTER.login,
        "s3_secret_key": TESTER.key,
        "account2": TESTER2.account,
        "username2": TESTER2.name,
        "password2": TESTER2.key,
        "username3": TESTER3.name,
        "password3": TESTER3.key,
        "s3_access_key2": S3_TESTER2.login,
        "s3_secret_key2": S3_TESTER2.key,
        "s3_access_key3": TESTER3.login,
        "s3_secret_key3": TESTER3.key,
        "account6": TESTER6.account,
        "username6": TESTER6.name,
        "password6": TESTER6.key,
        "collate": "C",
        "insecure": "no",
        "storage_domain": "",
    }


def render(auth_uri: str) -> str:
    """Return the text of a ``test.conf`` for the server at ``auth_uri``."""
    lines = ["[func_test]"]
    lines += ["%s = %s" % kv for kv in func_test_options(auth_uri).items()]
    return "\n".join(lines) + "\n"


def write(path: str, auth_uri: str) -> None:
    """Write a ``test.conf`` for the server at ``auth_uri`` to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(auth_uri))
