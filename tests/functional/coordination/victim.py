"""A coordinated process for the functional tests (run with ``-m``).

It starts a coordinator, optionally joins a group, takes a lock, reports
``ready``; optionally makes one blocking call that eventlet cannot green (an
unpatched ``time.sleep``, like a hung ``getxattr``) and reports what it
held afterwards; then obeys commands on stdin: ``stats``, ``stop``.
Events are JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--member", required=True)
    parser.add_argument("--state-path", required=True)
    parser.add_argument("--concurrency", default="eventlet")
    parser.add_argument("--group")
    parser.add_argument("--lock")
    parser.add_argument("--block", type=float, default=0.0)
    parser.add_argument("--lock-ttl", type=int, default=4)
    parser.add_argument("--membership-ttl", type=int, default=4)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--partitions", type=int, default=0)
    parser.add_argument("--settle-time", type=float, default=0.0)
    parser.add_argument("--log-file")
    args = parser.parse_args()

    # The concurrency model first, before anything imports socket or threading.
    from storaged import concurrency

    concurrency.setup(args.concurrency)

    import json
    import os

    from oslo_config import cfg
    from oslo_log import log as logging

    from storaged.conf import coordination as coordination_conf
    from storaged.conf import default as default_conf
    from storaged.coordination import Coordinator

    conf = cfg.ConfigOpts()
    default_conf.register_opts(conf)
    coordination_conf.register_opts(conf)
    logging.register_options(conf)
    conf([], project="storaged-victim")
    conf.set_override("state_path", args.state_path)
    conf.set_override("debug", True)
    if args.log_file:
        conf.set_override("log_file", args.log_file)
    logging.setup(conf, "storaged-victim")
    for name, value in (
        ("lock_ttl", args.lock_ttl),
        ("membership_ttl", args.membership_ttl),
        ("heartbeat_interval", args.heartbeat),
        ("settle_time", args.settle_time),
        ("initial_reconnect_backoff", 0.1),
        ("max_reconnect_backoff", 1.0),
    ):
        conf.set_override(name, value, "coordination")

    def emit(event: str, **fields: object) -> None:
        fields["event"] = event
        sys.stdout.write(json.dumps(fields, default=str) + "\n")
        sys.stdout.flush()

    coordinator = Coordinator(conf, args.member, backend_url=args.url)
    coordinator.start()
    partitioner = None
    if args.group:
        coordinator.join_group(args.group, {"pid": os.getpid()})
        if args.partitions:
            partitioner = coordinator.partitioner(args.group, args.partitions)
    lock = None
    if args.lock:
        lock = coordinator.lock(args.lock, timeout=30)
        if not lock.acquire():
            emit("failed", reason="lock not acquired")
            return 1
    emit("ready", pid=os.getpid(), token=lock.token if lock else None)

    if args.block:
        emit("blocking")
        # Unpatched: under eventlet this stalls the hub and every green
        # thread for the whole call.
        concurrency.native_module("time").sleep(args.block)
        lost = lock.lost if lock else None
        still = None
        if lock is not None and not lost:
            try:
                lock.check()
                still = True
            except Exception:
                still = False
        emit(
            "unblocked",
            lost=lost,
            still_valid=still,
            stats=coordinator.stats(),
            member=args.member in coordinator.get_members(args.group)
            if args.group else None,
        )

    for line in sys.stdin:
        command = line.strip()
        if command == "check":
            emit(
                "check",
                lost=lock.lost if lock else None,
                reason=lock.lost_reason if lock else None,
                stats=coordinator.stats(),
            )
        elif command == "stats":
            emit(
                "stats",
                stats=coordinator.stats(),
                owned=partitioner.owned_count if partitioner else None,
            )
        elif command == "stop":
            break
    released = lock.release() if lock is not None else None
    coordinator.stop()
    emit("stopped", released=released)
    return 0


if __name__ == "__main__":
    sys.exit(main())
