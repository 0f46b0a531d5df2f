"""Options of the ``[DEFAULT]`` group shared by every storaged command."""

from __future__ import annotations

import socket

from oslo_config import cfg

from storaged import concurrency

GROUP = None

DEFAULT_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "state_path",
        default="/var/lib/storaged",
        help="""
Directory where storaged keeps its local state.

The embedded defaults put the state store (``state.sqlite``), the
``file://`` coordination directory and the object cache below it. It must be
on a local filesystem, writable by the ``storaged`` user.

Possible values:
    * An absolute directory path

Related options:
    * ``[kvs] backend_url``
""",
    ),
    cfg.StrOpt(
        "node_id",
        default=socket.gethostname(),
        sample_default="<host name>",
        regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        help="""
Stable name of this storage node.

It names the node in the state store (daemon status), in coordination group
membership and in logs, so it must be unique in the cluster and must not change
across restarts.

Possible values:
    * 1 to 128 characters: letters, digits, ``.``, ``_`` and ``-``,
      starting with a letter or digit
""",
    ),
    cfg.StrOpt(
        "concurrency_backend",
        default=concurrency.DEFAULT_BACKEND,
        choices=[
            (concurrency.EVENTLET,
             "green threads; blocking calls run in a thread pool"),
            (concurrency.THREADING, "native threads (oslo.service threading backend)"),
        ],
        help="""
How a storaged process runs its concurrent work.

Read before anything else at start-up. The ``STORAGED_CONCURRENCY_BACKEND``
environment variable, when set, wins over this option.

Related options:
    * none
""",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the ``[DEFAULT]`` options on ``conf``."""
    conf.register_opts(DEFAULT_OPTS)


def list_opts() -> list[tuple[str | cfg.OptGroup | None, list[cfg.Opt]]]:
    """List the options for the sample configuration."""
    return [(None, DEFAULT_OPTS)]
