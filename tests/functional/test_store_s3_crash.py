"""SIGKILL a process adding a large object to S3: nothing partial, nothing billed.

A child process adds a 16 MiB object of unknown size through the ``s3``
driver (multipart above 5 MiB, 5 MiB parts, two in flight), asking the
parent for each 1 MiB block.  The S3 service is Swift's ``s3api`` in the
session's Swift cluster (:mod:`tests.swift_cluster`).  The parent kills the
child with SIGKILL:

* while parts are being sent: once the service holds at least one part of
  the upload (``list_parts``), or
* in the add's tail, a random moment after the last block: the last part,
  the digest record, the completion; the tail's length is measured by a
  first add that runs to its end.

After each kill the object either does not exist, or is complete and
verifies; a killed add leaves an incomplete multipart upload (and maybe a
digest record of no object) that a scrub with ``orphan_grace = 0`` and
reclaim removes: then no upload, no key and no Swift segment is left.  The
child runs on each concurrency backend.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from storaged import concurrency
from storaged import exception
from storaged.objectstore.drivers import s3 as s3_driver
from tests.unit.objectstore import harness_s3
from tests.unit.objectstore.conftest import make_conf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1024 * 1024
BLOCKS = 16
OPTIONS = {
    "multipart_threshold": "5M",
    "multipart_chunk_size": "5M",
    "max_concurrency": 2,
    "chunk_size": MiB,
}

CHILD = (
    textwrap.dedent(
        """
    import random, sys
    from storaged import concurrency
    concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
    from oslo_config import cfg
    from storaged.conf import default
    from storaged.objectstore import backend as store_conf
    from storaged.objectstore.drivers.s3 import S3Store

    conf = cfg.ConfigOpts()
    default.register_opts(conf)
    store_conf.register_opts(conf)
    conf(["--config-file", sys.argv[1]])
    store_conf.register_dynamic_opts(conf)
    store = S3Store(conf, "obj")

    def blocks(seed):
        rng = random.Random(seed)
        for i in range(BLOCKS):
            print("block", i, flush=True)
            # in step with the parent; waiting as a green socket would, so
            # that under eventlet the parts in flight go on meanwhile
            concurrency.run_blocking(sys.stdin.readline)
            yield rng.randbytes(MiB)

    print("ready", flush=True)
    result = store.add(sys.argv[2], blocks(sys.argv[2]), None)
    print("done", result.location, flush=True)
    """
    )
    .replace("BLOCKS", str(BLOCKS))
    .replace("MiB", str(MiB))
)


def _expected(object_id: str) -> str:
    rng = random.Random(object_id)
    h = hashlib.sha256()
    for _ in range(BLOCKS):
        h.update(rng.randbytes(MiB))
    return h.hexdigest()


def _has_parts(raw, bucket: str, key: str) -> bool:
    uploads = raw.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for upload in uploads:
        if upload["Key"] == key:
            parts = raw.list_parts(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            if parts.get("Parts"):
                return True
    return False


def _run(config, raw, bucket, object_id, kill, backend):
    """Run one child; ``kill`` is ``("parts", block)``, ``("tail", delay)`` or None.

    :returns: ("completed" or "killed", seconds from the last block to the end).
    """
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, config, object_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": backend, "PYTHONPATH": REPO},
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == b"ready\n"
        while True:
            line = child.stdout.readline()
            if not line.startswith(b"block "):
                break
            block = int(line.split()[1])
            if kill is not None and kill[0] == "parts" and block == kill[1]:
                # The child is stopped between blocks, its parts in flight:
                # wait until the service holds one of them.
                deadline = time.monotonic() + 30
                while not _has_parts(raw, bucket, object_id):
                    assert time.monotonic() < deadline, "no part arrived"
                    time.sleep(0.05)
                child.send_signal(signal.SIGKILL)
                child.wait(30)
                return "killed", 0.0
            child.stdin.write(b"go\n")
            child.stdin.flush()
            started = time.monotonic()
            if kill is not None and kill[0] == "tail" and block == BLOCKS - 1:
                time.sleep(kill[1])
                child.send_signal(signal.SIGKILL)
                child.wait(30)
                out = child.stdout.read()
                return ("completed" if b"done" in out else "killed"), 0.0
        assert line.startswith(b"done "), line
        child.wait(30)
        return "completed", time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _segments(cluster, bucket: str) -> list:
    """The Swift segments s3api keeps for the bucket's uploads."""
    conn = http.client.HTTPConnection("127.0.0.1", cluster.proxy_port, timeout=10)
    try:
        conn.request(
            "GET",
            f"/v1/AUTH_test/{bucket}+segments?format=json",
            headers={"X-Auth-Token": cluster.token()},
        )
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status == 404:
        return []
    assert resp.status == 200, resp.status
    return json.loads(body)


def _assert_gone(store, location: str, *, late: bool) -> None:
    """The object is gone; with ``late``, one that turns up is deleted.

    A child SIGKILLed at the end of an add may have sent its completion
    request: the service finishes it on its own, so the object can appear
    after the test first looked (whole: the completion is all or nothing).
    Such an object is deleted like any other; nothing else may appear.
    """
    deadline = time.monotonic() + 15.0
    while True:
        try:
            store.get_size(location)
        except exception.ObjectNotFound:
            return
        assert late and time.monotonic() < deadline, f"{location} still there"
        store.delete(location)
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_sigkill_during_multipart_adds(tmp_path, swift_cluster, backend):
    options = harness_s3.options(swift_cluster, orphan_grace=0, **OPTIONS)
    bucket = options["bucket"]
    text = "[DEFAULT]\nenabled_backends = obj:s3\n[obj]\n"
    text += "".join(f"{k} = {v}\n" for k, v in options.items())
    config = tmp_path / "storaged.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n" + text)
    store = s3_driver.S3Store(make_conf(tmp_path, text), "obj")
    raw = harness_s3.raw_client(swift_cluster)
    store.add("first", io.BytesIO(b"creates the bucket"), 18)
    seed = int(os.environ.get("STORE_CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"seed {seed} (STORE_CRASH_SEED to repeat)")

    outcome, tail = _run(str(config), raw, bucket, "calibrate", None, backend)
    assert outcome == "completed"
    store.delete(store.location("calibrate"))

    kills = [("parts", rng.randrange(6, BLOCKS)) for _ in range(2)]
    kills += [("tail", rng.uniform(0, tail * 1.2)) for _ in range(3)]
    outcomes = []
    for trial, kill in enumerate(kills, start=1):
        object_id = f"object-{trial}"
        outcome, _ = _run(str(config), raw, bucket, object_id, kill, backend)
        outcomes.append(outcome)
        location = store.location(object_id)
        found = False
        if outcome == "completed" or kill[0] == "tail":
            try:
                chunks, n = store.get(location, verify=True)
            except exception.ObjectNotFound:
                assert outcome == "killed", (trial, kill)
            else:
                # Killed after its completion request: the object is whole.
                found = True
                h = hashlib.sha256()
                for chunk in chunks:
                    h.update(chunk)
                assert (n, h.hexdigest()) == (BLOCKS * MiB, _expected(object_id))
        else:
            with pytest.raises(exception.ObjectNotFound):
                store.get_size(location)
            uploads = raw.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            assert [u["Key"] for u in uploads] == [object_id]
            assert _segments(swift_cluster, bucket) != []

        report = store.scrub(reclaim=True)
        assert report.corrupt == [] and report.errors == [], (trial, kill, report)
        assert len(report.reclaimed) == len(report.orphans), report
        if outcome == "killed" and kill[0] == "parts":
            assert len(report.reclaimed) == 1, report
        assert raw.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert store.scrub().clean
        if found:
            store.delete(location)
        _assert_gone(store, location, late=kill is not None and kill[0] == "tail")
        keys = [o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == ["first"], (trial, kill)
        # nothing billed: s3api's segments of the upload are gone too
        assert _segments(swift_cluster, bucket) == [], (trial, kill)
    print(f"{backend}: {outcomes}")
    assert outcomes[:2] == ["killed", "killed"]
