"""The locking side of the leftovers test, in a process of its own.

Run with ``-m`` on the concurrency backend of ``--concurrency``.  It starts a
coordinator, joins a group and reports ``ready``; then follows the test's
lines on stdin: ``go`` (take and release ``--names`` distinct locks from
``--threads`` threads, green ones under eventlet; report ``locked``),
``hashed`` (hold a lock whose name is too long to store as it is; report
``holding``), ``release`` (report ``released``) and ``stop``.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--state-path", required=True)
    parser.add_argument("--uid", required=True)
    parser.add_argument("--concurrency", required=True)
    parser.add_argument("--names", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()

    from storaged import concurrency

    concurrency.setup(args.concurrency)

    import json
    import threading

    from storaged.coordination import Coordinator
    from tests.functional.coordination.helpers import make_conf

    def emit(event: str, **fields: object) -> None:
        fields["event"] = event
        sys.stdout.write(json.dumps(fields, default=str) + "\n")
        sys.stdout.flush()

    def expect(line: str) -> None:
        got = sys.stdin.readline().strip()
        if got != line:
            raise SystemExit("expected %r, got %r" % (line, got))

    uid = args.uid
    conf = make_conf(args.state_path, initial_reconnect_backoff=0.1, settle_time=0.0)
    coordinator = Coordinator(conf, "node1:leaks-" + uid, backend_url=args.url)
    coordinator.start()
    coordinator.join_group("leaks-" + uid, {})
    emit("ready")

    expect("go")
    prefix = "leak-" + uid
    counts = [0] * args.threads
    errors: list[str] = []

    def work(index: int) -> None:
        try:
            for n in range(index, args.names, args.threads):
                with coordinator.lock("%s-%05d" % (prefix, n), blocking=False):
                    counts[index] += 1
        except Exception as err:  # reported, and the test fails on it
            errors.append(repr(err))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(args.threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    emit("locked", total=sum(counts), errors=errors[:5],
         held=coordinator.list_locks())

    expect("hashed")
    lock = coordinator.lock("x" * 300)
    emit("holding", acquired=lock.acquire())
    expect("release")
    emit("released", released=lock.release())
    expect("stop")
    coordinator.stop()
    emit("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
