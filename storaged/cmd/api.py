"""``storaged-api``: the Swift-compatible object API server (a systemd service).

It parses the configuration, checks it (users, realms file, object store
and catalog), binds ``[api] bind_host:bind_port`` and runs ``[api] workers``
workers on oslo.service's launcher (:mod:`storaged.api.daemon`): READY=1
once every worker serves, SIGTERM lets requests in progress finish within
``[api] shutdown_timeout`` (exit 0), SIGHUP re-reads the mutable options.
"""

from __future__ import annotations

import os
import sys

from storaged import concurrency
from storaged.common import config

PROG = "storaged-api"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``storaged-api``."""
    args = sys.argv[1:] if argv is None else argv
    concurrency.setup(argv=args)

    def body() -> int:
        from storaged import metrics
        from storaged.api import app as app_mod
        from storaged.api import daemon
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
            validators=[api_conf.check_users, api_conf.check_shutdown],
        )
        # Before any metric exists (the application makes them): with an
        # endpoint, every worker's figures go to files of one directory
        # that the parent's /metrics adds up; a port in use stops here.
        metrics.setup(conf, "api", "api", multiprocess_dir=os.path.join(
            conf.state_path, "metrics", "api"))
        # Users and realms are checked before the socket is bound; the object
        # store and catalog when the application is first built (in this
        # process, before any worker is forked): a bad configuration exits
        # with status 2 before READY=1 either way.
        authority = app_mod.authority_from_conf(conf)
        realms.Realms.load(conf.sync.realms_conf)

        def build_app() -> app_mod.Application:
            return app_mod.make_app(conf, authority=authority)

        return daemon.run(conf, build_app, notifier)

    return config.run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
