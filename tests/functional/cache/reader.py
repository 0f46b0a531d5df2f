"""A reader process of the cache's functional tests.

Reads catalog objects through the real object service (so through the cache
for back ends with ``cache = true``) from several threads (green threads
under eventlet), then prints one JSON line: the sha256 of every body read
and the cache's counters.  It waits for ``--go FILE`` to exist before
reading, after creating ``--ready FILE``, so that a test can start several
processes at the same moment.

    python -m tests.functional.cache.reader --config-file F --objects a,b \\
        [--threads N] [--repeat N] [--ready F --go F] [--progress F]

``--progress F`` writes the number of bytes read so far of the first body
to F, then sleeps a little between chunks (a slow client the test can kill).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

from storaged import concurrency
import storaged.cmd  # noqa: F401  (concurrency bootstrap first)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--objects", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--ready")
    parser.add_argument("--go")
    parser.add_argument("--progress")
    args = parser.parse_args()

    from oslo_config import cfg

    from storaged.common import config
    from storaged.conf import cache as cache_conf
    from storaged.objects import ObjectRepository

    conf = config.prepare_service(
        ["--config-file", args.config_file], prog="reader", setup_logging=False,
        register=cache_conf.register_opts, conf=cfg.ConfigOpts(),
    )
    svc = ObjectRepository.from_conf(conf)
    names = args.objects.split(",")
    if args.ready:
        open(args.ready, "w").close()
    while args.go and not os.path.exists(args.go):
        concurrency.sleep(0.005)

    digests: list[str] = []
    errors: list[str] = []

    def read(name: str) -> None:
        _info, chunks, n = svc.get_object("AUTH_t", "c", name, verify=True)
        h = hashlib.sha256()
        got = 0
        for chunk in chunks:
            h.update(chunk)
            got += len(chunk)
            if args.progress:
                with open(args.progress + ".tmp", "w") as f:
                    f.write(str(got))
                os.replace(args.progress + ".tmp", args.progress)
                time.sleep(0.05)
        if got != n:
            raise RuntimeError("read %d of %d bytes" % (got, n))
        digests.append("%s:%s" % (name, h.hexdigest()))

    def worker() -> None:
        for _ in range(args.repeat):
            for name in names:
                try:
                    read(name)
                except Exception as err:  # reported to the test
                    errors.append("%s: %s: %s" % (name, type(err).__name__, err))

    tasks = [concurrency.spawn(worker) for _ in range(args.threads)]
    for task in tasks:
        task.wait()
    counters = dict(svc.cache.counters) if svc.cache is not None else {}
    svc.close()
    print(json.dumps({"digests": sorted(digests), "errors": errors,
                      "counters": counters}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
