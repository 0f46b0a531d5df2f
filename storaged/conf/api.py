"""Options of the ``[api]`` group: ``storaged-api``, the Swift-compatible server.

Besides the options below, the group holds one ``user_<account>_<user>``
entry per user, as Swift's tempauth does::

    [api]
    user_test_tester = testing .admin
    user_test_reader = secret
    user_ops_backup = s3cr3t .reseller_admin

They cannot be declared in advance: :func:`register_dynamic_opts` reads the
names present in the configuration files and registers a secret option for
each (so the unknown-option check accepts them and they are never shown).
The format of an entry is defined here too (:class:`User`,
:func:`parse_user`, :func:`users_from_conf`), so that checking it needs
nothing above the option modules; :mod:`storaged.api.auth` uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import os
from typing import Any
from typing import Final

from oslo_config import cfg
from oslo_config import types

from storaged import exception
from storaged.common import configfiles
from storaged.conf import metrics

GROUP = cfg.OptGroup(
    "api",
    title="Object API server",
    help="storaged-api: the Swift-compatible object API (auth, accounts, "
    "containers, objects, container-sync receipt).",
)

#: Prefix of the options that define users.
USER_PREFIX: Final = "user_"
#: Prefix of every account served (tempauth's ``reseller_prefix``).
ACCOUNT_PREFIX: Final = "AUTH_"
ADMIN: Final = ".admin"
RESELLER_ADMIN: Final = ".reseller_admin"
GROUPS: Final = frozenset({ADMIN, RESELLER_ADMIN})


#: The most workers ``[api] workers`` takes.
MAX_WORKERS: Final = 256


class WorkerCount(types.ConfigType):
    """``[api] workers``: a number of processes, or ``auto``."""

    def __init__(self) -> None:
        super().__init__(type_name="integer or 'auto'")
        self._number = types.Integer(min=1, max=MAX_WORKERS)

    def __call__(self, value: Any) -> int | str:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        number = self._number(value)
        assert isinstance(number, int)  # Integer(min=1) never gives None
        return number

    def __repr__(self) -> str:
        return "WorkerCount"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkerCount)

    def __hash__(self) -> int:
        return hash(WorkerCount)

    def _formatter(self, value: Any) -> str:
        return str(value)


def worker_count(value: int | str) -> int:
    """The processes ``[api] workers`` asks for: ``auto`` is the usable CPUs."""
    if value != "auto":
        return int(value)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


API_OPTS = [
    cfg.HostAddressOpt(
        "bind_host",
        default="127.0.0.1",
        help="""
Address the server listens on.

``0.0.0.0`` (or ``::``) listens on every interface. The default only
accepts local clients, e.g. behind a TLS-terminating proxy on the same host.

Related options:
    * ``bind_port``
    * ``public_url``
""",
    ),
    cfg.PortOpt(
        "bind_port",
        default=8080,
        help="TCP port the server listens on (Swift's proxy uses 8080 too).",
    ),
    cfg.Opt(
        "workers",
        type=WorkerCount(),
        default="auto",
        help="""
Server processes sharing the listening socket: a number, or ``auto`` (the
default, as Swift's proxy has it): one per CPU this process may run on.

One process serves many connections at once (thousands under eventlet), but
its Python work runs on one CPU core at a time; more workers use more cores
(each is a separate process forked after the socket is bound, and the
SIGHUP, SIGTERM and READY behaviour holds for every one). Tokens stay valid
across workers (they are signed, not stored).

Possible values:
    * ``auto``: the number of CPUs in this process's affinity mask
    * 1 to 256

Related options:
    * ``max_clients``
    * ``token_secret``
""",
    ),
    cfg.IntOpt(
        "max_clients",
        default=1024,
        min=1,
        max=65536,
        help="""
Connections one worker serves at once; more wait in the listen queue
(under both backends) until one is closed: a slow client holds its slot at
most twice ``client_timeout`` before its request is read.

Under the threading backend each connection has a thread.
""",
    ),
    cfg.FloatOpt(
        "client_timeout",
        default=60.0,
        min=1.0,
        max=3600.0,
        help="""
Seconds to wait on a client's socket (a read of the request or body, a
write of the response, or the next request on a kept-alive connection)
before closing the connection. A request's head (request line and headers)
must also arrive whole within this many seconds of its first byte, however
slowly it is sent. An upload stalled this long is abandoned and nothing of
it is stored.
""",
    ),
    cfg.FloatOpt(
        "shutdown_timeout",
        default=30.0,
        min=0.0,
        max=3600.0,
        help="""
Seconds requests in progress may take to finish after SIGTERM.

On SIGTERM the server stops accepting connections, closes idle ones, lets
the requests in progress finish for at most this long, then exits with
status 0. ``[DEFAULT] graceful_shutdown_timeout`` (after which the launcher
ends a worker) must be larger, and the systemd unit's ``TimeoutStopSec``
larger still.
""",
    ),
    cfg.IntOpt(
        "max_object_size",
        default=5 * 1024 * 1024 * 1024 + 2,
        min=0,
        help="""
Largest object a PUT may store, in bytes (Swift's ``max_file_size``).

A PUT that declares more is refused with 413 before any data is read; a
chunked upload that grows beyond it is cut off with 413 and nothing is
stored.
""",
    ),
    cfg.IntOpt(
        "max_url_length",
        default=8192,
        min=1024,
        max=65536,
        help="""
Longest request line accepted (method, URL and version), in bytes; longer
ones get 414. Under eventlet each header line is limited to the same length
(under threading, to 64 KiB).
""",
    ),
    cfg.IntOpt(
        "token_ttl",
        default=86400,
        min=60,
        max=31 * 86400,
        help="""
Seconds a token from ``/auth/v1.0`` stays valid (``X-Auth-Token-Expires``).
""",
    ),
    cfg.StrOpt(
        "token_secret",
        default="",
        secret=True,
        help="""
Secret that signs tokens.

Tokens are not stored anywhere: each carries its user, its expiry and a
random part, signed with this secret (HMAC-SHA256) and with the user's key,
so changing a user's key revokes that user's tokens. When empty, a random
secret is made at each start: tokens do not survive a restart and each
server has its own. Set the same value on every server behind one load
balancer.
""",
    ),
    cfg.StrOpt(
        "public_url",
        default="",
        help="""
Base URL clients use to reach this server, e.g. ``https://swift.example.com``.

``/auth/v1.0`` answers ``X-Storage-Url: <public_url>/v1/AUTH_<account>``.
When empty, the URL is built from the request (its scheme and ``Host``
header), which is only right when clients reach the server directly.
""",
    ),
    cfg.BoolOpt(
        "verify_reads",
        default=True,
        help="""
Check the digest of whole objects while sending them (back ends that can).

A corrupt object is never sent completely: the connection is cut before the
last chunk, and the error is logged. Ranged reads are never verified.
""",
    ),
    cfg.IntOpt(
        "chunk_size",
        default=256 * 1024,
        min=4096,
        max=16 * 1024 * 1024,
        help="""
Bytes read from a client's upload at a time.
""",
    ),
    metrics.port_opt("storaged-api"),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[api]`` options on ``conf``."""
    # A fresh group per ConfigOpts: oslo.config copies the group shallowly,
    # so a shared module-level one would carry options between instances.
    conf.register_group(
        cfg.OptGroup(GROUP.name, title=GROUP.title, help=GROUP.help)
    )
    conf.register_opts(API_OPTS, group=GROUP.name)


def _user_opt(name: str) -> cfg.StrOpt:
    # ``dest`` keeps the name as written: an account or user name may hold
    # ``-``, which oslo.config would otherwise turn into ``_`` (and then not
    # find the value in the file).
    return cfg.StrOpt(
        name,
        dest=name,
        secret=True,
        help="A user: ``<key> [.admin] [.reseller_admin] [storage URL]``.",
    )


def user_option_names(files: Sequence[str]) -> list[str]:
    """Return the ``user_*`` option names of ``[api]`` in ``files``, sorted."""
    sources = configfiles.OptionSources(files)
    return sorted({
        option
        for (section, option) in sources.location
        if section == GROUP.name and option.startswith(USER_PREFIX)
    })


def register_dynamic_opts(
    conf: cfg.ConfigOpts, files: Sequence[str] | None = None
) -> None:
    """Register one secret option per ``user_<account>_<user>`` in the files.

    Idempotent.  Called after parsing with no ``files`` (those oslo.config
    read are used, and every user entry is checked), or before parsing with
    the files named on the command line.

    :raises storaged.exception.ConfigError: a malformed user entry (the
        value is never shown).
    """
    register_opts(conf)
    parsed = files is None
    if parsed:
        names = user_option_names(configfiles.config_files(conf))
    else:
        # Before parsing, a file may be missing, malformed or not UTF-8:
        # leave it to the parse, which reports it in one line (a raw error
        # here would escape as a traceback).
        names = []
        for path in files or ():
            try:
                names.extend(user_option_names([path]))
            except (OSError, ValueError, cfg.ParseError):
                continue
    for name in names:
        # Equal options register once: calling this twice is harmless.
        conf.register_opt(_user_opt(name), group=GROUP)
    if parsed:
        users_from_conf(conf)


def check_users(conf: cfg.ConfigOpts, sources: object = None) -> None:
    """Validator for :func:`storaged.common.config.prepare_service`: every
    ``user_*`` entry must be well formed.

    :raises storaged.exception.ConfigError: naming the option, never its value.
    """
    users_from_conf(conf)


def check_shutdown(conf: cfg.ConfigOpts, sources: Any = None) -> None:
    """Validator: the launcher must wait longer than a worker's drain.

    oslo.service's launcher ends a worker that has not stopped after
    ``[DEFAULT] graceful_shutdown_timeout`` seconds (0: never), so it must
    be larger than ``[api] shutdown_timeout``.

    :raises storaged.exception.ConfigError: naming the option.
    """
    grace = conf.graceful_shutdown_timeout
    if grace and grace <= conf.api.shutdown_timeout:
        where = sources.where(None, "graceful_shutdown_timeout") if sources else ""
        raise exception.ConfigError(
            "must be larger than [api] shutdown_timeout (%s), or 0"
            % conf.api.shutdown_timeout,
            where,
            "DEFAULT",
            "graceful_shutdown_timeout",
        )


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(GROUP, API_OPTS)]


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
    if not option.startswith(USER_PREFIX):
        raise ValueError("a user option starts with %r" % USER_PREFIX)
    account, sep, name = option[len(USER_PREFIX):].partition("_")
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
        if not option.startswith(USER_PREFIX):
            continue
        value = group[option]
        if value is None:
            continue
        try:
            user = parse_user(option, value)
        except ValueError as err:
            raise exception.ConfigError(
                str(err), group=GROUP.name, option=option
            ) from err
        users[user.login] = user
    return users
