"""``storaged-api``: the Swift-compatible object API server (a systemd service).

It parses the configuration, checks it (users, realms file, object store
and catalog) before binding, binds ``[api] bind_host:bind_port``, tells
systemd it is ready once the socket listens, and serves until SIGTERM
(requests in progress finish within ``[api] shutdown_timeout``; exit 0).
"""

from __future__ import annotations

import sys

from storaged import concurrency
from storaged.common import config

PROG = "storaged-api"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-api``."""
    args = sys.argv[1:] if argv is None else argv
    concurrency.setup(argv=args)

    def body() -> int:
        from storaged.api import app as app_mod
        from storaged.api import server
        from storaged.common import systemd
        from storaged.conf import api as api_conf
        from storaged.sync import realms

        notifier = systemd.Notifier.from_environ()
        # The ``user_*`` options are registered once the files are parsed
        # (storaged.opts.register_dynamic_opts), never from unparsed files.
        conf = config.prepare_service(
            args,
            prog=PROG,
            description="The Swift-compatible object API: auth, accounts, "
            "containers, objects and container-sync receipt.",
            validators=[api_conf.check_users],
        )
        # Users and realms are checked before the socket is bound; the object
        # store and catalog when the application is built (in each worker,
        # never before a fork): a bad configuration exits with status 2
        # before READY=1 either way.
        authority = app_mod.authority_from_conf(conf)
        realms.Realms.load(conf.sync.realms_conf)

        def build_app() -> app_mod.Application:
            return app_mod.make_app(conf, authority=authority)

        return server.run(conf, build_app, notifier)

    return config.run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
