"""A test-only periodic daemon, run as a subprocess by the functional tests.

It goes through exactly the code path of a real storaged daemon
(``storaged.cmd`` bootstrap, ``prepare_service``, ``run_daemon``) with a
trivial worker: each pass handles ``[demo] count`` items, each taking
``[demo] item_time`` seconds, and appends ``<pass> <item> done`` to
``[demo] journal`` once an item is complete, so a test can tell whether an item
was cut short.  Items listed in ``[demo] fail_items`` raise.
"""

from __future__ import annotations

import sys

from oslo_config import cfg

from storaged import concurrency
import storaged.cmd  # noqa: F401  (concurrency bootstrap first)
from storaged.common import config

DEMO_GROUP = cfg.OptGroup("demo")
DEMO_OPTS = [
    cfg.FloatOpt("interval", default=1.0, min=0.05, mutable=True),
    cfg.IntOpt("count", default=3, min=0),
    cfg.FloatOpt("item_time", default=0.1, min=0.0),
    cfg.ListOpt("fail_items", default=[]),
    cfg.StrOpt("journal", default=""),
    cfg.BoolOpt("blocking_sleep", default=False,
                help="Sleep in a call that blocks the whole process."),
]


class DemoWorker:
    name = "demo"

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.passes = 0

    def run_pass(self, ctx):  # type: ignore[no-untyped-def]
        self.passes += 1
        ctx.each(range(self.conf.demo.count), self.handle)

    def handle(self, item: int) -> None:
        if str(item) in self.conf.demo.fail_items:
            raise RuntimeError("item %d is broken on purpose" % item)
        if self.conf.demo.blocking_sleep:
            concurrency.native_module("time").sleep(self.conf.demo.item_time)
        else:
            concurrency.sleep(self.conf.demo.item_time)
        if self.conf.demo.journal:
            with open(self.conf.demo.journal, "a") as f:
                f.write("%d %d done\n" % (self.passes, item))


def main() -> int:
    args = sys.argv[1:]

    def register(conf: cfg.ConfigOpts) -> None:
        conf.register_group(DEMO_GROUP)
        conf.register_opts(DEMO_OPTS, group=DEMO_GROUP)

    def body() -> int:
        from storaged import kvs
        from storaged.common import daemon
        from storaged.common import status
        from storaged.common import systemd

        notifier = systemd.Notifier.from_environ()
        conf = config.prepare_service(
            args, prog="storaged-demo", cli_opts=[daemon.ONCE_OPT],
            register=register,
        )
        board = status.StatusBoard(kvs.get_store(conf))
        return daemon.run_daemon(
            conf, DemoWorker(conf), lambda: conf.demo.interval, board, notifier
        )

    return config.run_command("storaged-demo", body)


if __name__ == "__main__":
    sys.exit(main())
