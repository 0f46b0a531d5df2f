"""``storaged-manage`` with only its ``cache`` commands, for these tests.

The same parsing and dispatch as :mod:`storaged.manage.cli`, over
:mod:`storaged.manage.cache` alone, so that the commands are tested as an
operator runs them: ``python -m tests.functional.cache.manage --config-file
F cache list --format json``.
"""

from __future__ import annotations

import sys

import storaged.cmd  # noqa: F401  (concurrency bootstrap first)


def main() -> int:
    from oslo_config import cfg

    from storaged import exception
    from storaged.common import config
    from storaged.conf import cache as cache_conf
    from storaged.manage import cache as manage_cache

    prog = "storaged-manage"
    args = sys.argv[1:]
    command = cfg.SubCommandOpt("command", handler=manage_cache.add_parsers)

    def body() -> int:
        conf = config.prepare_service(
            args, prog=prog, cli_opts=[command], register=cache_conf.register_opts,
            setup_logging=False,
        )
        key = (conf.command.name, conf.command.action)
        try:
            return int(manage_cache.COMMANDS[key](conf))
        except exception.ConfigError:
            raise
        except exception.StoragedError as err:
            print("%s: %s" % (prog, err), file=sys.stderr)
            return 1

    return config.run_command(prog, body)


if __name__ == "__main__":
    sys.exit(main())
