"""SIGKILL a process adding a large object to Swift; nothing partial shows.

A child process adds a 640 KiB object through the ``swift`` driver, as a
static large object of ten 64 KiB segments, from 16 KiB blocks it asks the
parent for one at a time (so the parent knows where the add is).  The
parent kills it with SIGKILL a few milliseconds after a chosen block: while
a segment is being sent, between segments, or while the last one goes out.
The Swift cluster is the real one of :mod:`tests.swift_cluster`.  After
each kill:

* no object is visible under the id (the manifest is written last);
* the segments the child wrote are in ``<container>_segments`` under the
  upload's prefix, and a scrub with reclaim (``orphan_grace = 0``) deletes
  them all: a listing of the segments container under the object id is then
  empty, and a second scrub is clean.

Trials alternate the child's concurrency backend (eventlet, threading).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from storaged import exception
from tests.unit.objectstore import harness_swift as hs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KiB = 1024
BLOCK = 16 * KiB
BLOCKS = 40  # 640 KiB: ten segments of 64 KiB
OPTIONS = {
    "chunk_size": 16 * KiB,
    "large_object_size": "64K",
    "large_object_chunk_size": "64K",
}

CHILD = (
    textwrap.dedent(
        """
    import sys
    from storaged import concurrency
    concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
    from oslo_config import cfg
    from storaged.conf import default
    from storaged.objectstore import backend as store_conf
    from storaged.objectstore.drivers.swift import SwiftStore

    conf = cfg.ConfigOpts()
    default.register_opts(conf)
    store_conf.register_opts(conf)
    conf(["--config-file", sys.argv[1]])
    store_conf.register_dynamic_opts(conf)
    store = SwiftStore(conf, "obj")

    def blocks():
        for i in range(BLOCKS):
            print("block", i, flush=True)
            sys.stdin.readline()  # in step with the parent
            yield bytes([i % 251]) * BLOCK

    print("ready", flush=True)
    result = store.add(sys.argv[2], blocks(), None)
    print("done", result.location, flush=True)
    """
    )
    .replace("BLOCKS", str(BLOCKS))
    .replace("BLOCK", str(BLOCK))
)


def _write_config(tmp_path, cluster, container: str) -> str:
    options = hs.options(cluster, container=container, **OPTIONS)
    lines = ["[DEFAULT]", f"state_path = {tmp_path}", "enabled_backends = obj:swift"]
    lines += ["[obj]"] + [f"{k} = {v}" for k, v in options.items()]
    path = tmp_path / "storaged.conf"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _run(config: str, object_id: str, block: int, delay: float, backend: str) -> str:
    """Run one child; SIGKILL it ``delay`` seconds after it got ``block``."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, config, object_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": backend},
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == b"ready\n"
        while True:
            line = child.stdout.readline()
            if not line.startswith(b"block "):
                break
            child.stdin.write(b"go\n")
            child.stdin.flush()
            if int(line.split()[1]) == block:
                time.sleep(delay)
                child.send_signal(signal.SIGKILL)
                child.wait(30)
                out = child.stdout.read()
                return "completed" if b"done" in out else "killed"
        return "completed" if line.startswith(b"done ") else f"failed: {line!r}"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _late_manifest(store, location, patience=30.0):
    """Return "completed" if the object appears within ``patience`` seconds.

    Three times the proxy's ``node_timeout`` (10 s), the longest any of the
    manifest PUT's requests to the servers may wait on one.
    """
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            store.get_size(location)
        except exception.ObjectNotFound:
            time.sleep(0.2)
            continue
        return "completed"
    return None


#: (block after which the child dies, milliseconds later, backend)
TRIALS = [
    (2, 0.0, "eventlet"),  # before the first segment went out
    (5, 0.005, "threading"),  # around the second segment's PUT
    (15, 0.02, "eventlet"),
    (23, 0.0, "threading"),
    (39, 0.01, "eventlet"),  # the last block handed out: the tail of the add
]


def test_killed_large_add_leaves_no_object_and_scrub_reclaims(
    tmp_path,
    swift_cluster,
):
    container = hs.new_container()
    config = _write_config(tmp_path, swift_cluster, container)
    store = hs.build(tmp_path, swift_cluster, container=container, orphan_grace=0,
                     **OPTIONS)  # fmt: skip
    try:
        kept_data = b"k" * (3 * 64 * KiB)
        kept = store.add("kept-" + uuid.uuid4().hex, io.BytesIO(kept_data), None)
        segments = container + "_segments"
        rng = random.Random(15)
        outcomes = []
        for block, delay, backend in TRIALS:
            object_id = uuid.uuid4().hex
            outcome = _run(
                config, object_id, block, delay + rng.random() / 1000, backend
            )
            location = f"swift://{container}/{object_id}"
            if outcome == "killed" and block == BLOCKS - 1:
                # Killed at the tail, the child may have sent its manifest
                # PUT: Swift's proxy finishes a request whose body it has
                # (checking each segment first), and the object appears
                # whole after the kill.  Scrub with orphan_grace = 0 must
                # not race that request: wait for it.
                outcome = _late_manifest(store, location) or outcome
            outcomes.append(outcome)
            if outcome == "completed":
                # Killed too late to matter: the object is whole and verifies.
                expected = b"".join(bytes([i % 251]) * BLOCK for i in range(BLOCKS))
                chunks, _n = store.get(location, verify=True)
                assert hashlib.sha256(b"".join(chunks)).digest() == (
                    hashlib.sha256(expected).digest()
                )
                continue
            assert outcome == "killed", outcome
            with pytest.raises(exception.ObjectNotFound):
                store.get_size(location)
            left = hs.names(swift_cluster, segments, object_id + "/")
            if block >= 5:
                assert left, "the child should have written segments by then"
            report = store.scrub(reclaim=True)
            assert not report.corrupt and not report.errors, report
            if left:
                prefix = left[0].rsplit("/", 1)[0]
                assert report.reclaimed == [f"swift://{segments}/{prefix}/"], report
            assert hs.names(swift_cluster, segments, object_id + "/") == []
            again = store.scrub()
            assert again.clean, again
            assert again.checked == 1 + outcomes.count("completed")
        assert outcomes.count("killed") >= 4, outcomes
        assert b"".join(store.get(kept.location, verify=True)[0]) == kept_data
    finally:
        store.close()
