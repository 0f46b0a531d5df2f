"""The coordinated side of the outage test, in a process of its own.

Run with ``-m`` on the concurrency backend of ``--concurrency``.  It joins a
group and takes a lock, reports ``ready``, then follows the test's lines on
stdin: ``killed`` (the back end is down: wait for the lock to be reported
lost, time three calls, report ``down``) and ``started`` (it is back: wait for
the reconnection, check the group and lock, report ``back``).  What it sees is
reported as JSON lines; the test asserts on them.
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
    parser.add_argument("--heartbeat", type=float, required=True)
    parser.add_argument("--ttl", type=int, required=True)
    parser.add_argument("--max-backoff", type=float, required=True)
    args = parser.parse_args()

    # The concurrency model first, before anything imports socket or threading.
    from storaged import concurrency

    concurrency.setup(args.concurrency)

    import json
    import time

    from storaged.coordination import CoordinationUnavailable
    from storaged.coordination import Coordinator
    from tests.functional.coordination.helpers import make_conf

    def emit(event: str, **fields: object) -> None:
        fields["event"] = event
        sys.stdout.write(json.dumps(fields, default=str) + "\n")
        sys.stdout.flush()

    def wait_for(condition, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def expect(line: str) -> None:
        got = sys.stdin.readline().strip()
        if got != line:
            raise SystemExit("expected %r, got %r" % (line, got))

    uid = args.uid
    conf = make_conf(args.state_path, lock_ttl=args.ttl, membership_ttl=args.ttl,
                     heartbeat_interval=args.heartbeat,
                     max_reconnect_backoff=args.max_backoff,
                     initial_reconnect_backoff=0.1, settle_time=0.0)
    coordinator = Coordinator(conf, "node1:agent-" + uid, backend_url=args.url)
    coordinator.start()
    group, name = "outage-" + uid, "outage-lock-" + uid
    coordinator.join_group(group, {"role": "agent"})
    lock = coordinator.lock(name)
    acquired = lock.acquire()
    lost: list[object] = []
    lock.on_lost(lost.append)
    emit("ready", acquired=acquired)

    expect("killed")
    down = time.monotonic()
    noticed = time.monotonic() - down if wait_for(lambda: lost) else None
    calls = []
    for call in (
        lambda: coordinator.lock("other-" + uid, timeout=60).acquire(),
        lambda: coordinator.get_members(group),
        lambda: coordinator.join_group("another-" + uid, {}),
    ):
        began = time.monotonic()
        try:
            call()
            outcome = "returned"
        except CoordinationUnavailable:
            outcome = "unavailable"
        calls.append((outcome, time.monotonic() - began))
    emit("down", noticed=noticed, lost=lock.lost, connected=coordinator.connected,
         calls=calls)

    expect("started")
    up = time.monotonic()
    back = time.monotonic() - up if wait_for(lambda: coordinator.connected) else None
    members = coordinator.get_members(group)
    another = coordinator.get_members("another-" + uid)
    released = lock.release()
    with coordinator.lock(name, timeout=args.ttl + 5) as again:
        again_lost = again.lost
    emit("back", back=back,
         role=members.get(coordinator.member_id, {}).get("role"),
         remembered=coordinator.member_id in another, released=released,
         again_lost=again_lost, stats=coordinator.stats())
    coordinator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
