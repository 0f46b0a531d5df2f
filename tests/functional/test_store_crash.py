"""SIGKILL a process adding a large object; nothing partial ever shows.

A child process adds a 64 MiB object, generated on the fly, through the
``file`` driver, asking for each block in step with the parent.  The parent
kills it with SIGKILL a few milliseconds after a random block, or at a random
moment of the add's tail after the last block (last write, fsync, publish),
whose length a first, uninterrupted add measures.  After each kill:

* the object's final name either does not exist, or holds the complete
  object and it verifies (size and sha256 against the recorded digest, and
  against the digest of the generated data);
* a scrub with reclaim removes what the dead writer left in ``.tmp``, after
  which nothing is left there and the store scrubs clean.

Trials run with xattr metadata and with sidecar metadata, with the child on
each concurrency backend (the trials are split between the two: a 64 MiB add
per trial is the slow part of the suite).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from oslo_config import cfg
import pytest

from storaged import concurrency
from storaged import exception
from storaged.conf import default as default_conf
from storaged.objectstore import backend as store_conf
from storaged.objectstore.drivers.file import FileStore
from storaged.objectstore.drivers.file import fanout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1024 * 1024
SIZE = 64 * MiB
BLOCK = MiB
#: Trials per concurrency backend.
TRIALS = {"xattr": 10, "sidecar": 3}

CHILD = textwrap.dedent(
    """
    import random, sys
    from storaged import concurrency
    concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
    from oslo_config import cfg
    from storaged.conf import default
    from storaged.objectstore import backend as store_conf
    from storaged.objectstore.drivers.file import FileStore

    conf = cfg.ConfigOpts()
    default.register_opts(conf)
    store_conf.register_opts(conf)
    conf(["--config-file", sys.argv[1]])
    store_conf.register_dynamic_opts(conf)
    store = FileStore(conf, "crash")

    def blocks(seed, size, block):
        rng = random.Random(seed)
        for i in range(size // block):
            print("block", i, flush=True)
            sys.stdin.readline()  # in step with the parent
            yield rng.randbytes(block)

    print("ready", flush=True)
    result = store.add(sys.argv[2], blocks(sys.argv[2], SIZE, BLOCK), None)
    print("done", result.location, flush=True)
    """
).replace("SIZE, BLOCK", f"{SIZE}, {BLOCK}")


def _expected_digest(object_id: str) -> str:
    rng = random.Random(object_id)
    h = hashlib.sha256()
    for _ in range(SIZE // BLOCK):
        h.update(rng.randbytes(BLOCK))
    return h.hexdigest()


def _store(config: str) -> FileStore:
    conf = cfg.ConfigOpts()
    default_conf.register_opts(conf)
    store_conf.register_opts(conf)
    conf(["--config-file", config])
    store_conf.register_dynamic_opts(conf)
    return FileStore(conf, "crash")


def _run(
    config: str, object_id: str, kill_at: tuple[int, float] | None, backend: str
) -> tuple[str, float]:
    """Run one child; kill it ``delay`` seconds after it got block ``k``.

    The child asks for each block and waits for the parent's answer, so the
    parent knows where the add is when it starts counting the delay.

    :returns: the outcome, and (when not killed) the seconds from the last
        block to the end of the add.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, config, object_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "STORAGED_CONCURRENCY_BACKEND": backend},
    )
    block, delay = kill_at if kill_at is not None else (-1, 0.0)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == b"ready\n"
        while True:
            line = child.stdout.readline()
            if not line.startswith(b"block "):
                break
            child.stdin.write(b"go\n")
            child.stdin.flush()
            started = time.monotonic()
            if int(line.split()[1]) == block:
                time.sleep(delay)
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


@pytest.mark.slow
@pytest.mark.parametrize("backend", concurrency.BACKENDS)
@pytest.mark.parametrize("metadata", sorted(TRIALS))
def test_sigkill_during_large_adds(tmp_path, metadata, backend):
    data_dir = tmp_path / "data"
    config = tmp_path / "storaged.conf"
    config.write_text(
        f"[DEFAULT]\nstate_path = {tmp_path}\nenabled_backends = crash:file\n"
        f"[crash]\ndata_dirs = {data_dir}\nmetadata_store = {metadata}\n"
        "reclaim_age = 0\n"
    )
    seed = int(os.environ.get("STORE_CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    print(f"seed {seed} (STORE_CRASH_SEED to repeat)")

    # Trial 0 runs to the end: it tells how long the end of an add (the
    # last block, fsync, publish) takes here.
    outcome, tail = _run(str(config), "calibrate", None, backend)
    assert outcome == "completed"
    store = _store(str(config))
    calibrate = store.find("calibrate")
    assert calibrate is not None
    assert store.get_size(calibrate) == SIZE
    store.delete(calibrate)

    outcomes = []
    reclaimed = 0
    deadline = time.monotonic() + 50
    # Kill points: anywhere while writing (seven trials in ten: those always
    # interrupt the add), or in the last block's tail (may come too late).
    n = TRIALS[metadata]
    kinds = ["writing"] * (n - n * 3 // 10) + ["tail"] * (n * 3 // 10)
    rng.shuffle(kinds)
    for trial, kind in enumerate(kinds, start=1):
        if time.monotonic() > deadline:
            break
        object_id = f"object-{trial}"
        blocks = SIZE // BLOCK
        if kind == "writing":
            when = (rng.randrange(blocks - 1), rng.uniform(0, 0.01))
        else:
            when = (blocks - 1, rng.uniform(0, tail * 1.2))
        outcome, _ = _run(str(config), object_id, when, backend)
        outcomes.append(outcome)

        location = store.find(object_id)
        if outcome == "completed":
            assert location is not None
        if location is not None:
            # Under its final name, an object is complete and verifies.
            h = hashlib.sha256()
            chunks, n = store.get(location, verify=True)
            for chunk in chunks:
                h.update(chunk)
            assert n == SIZE
            assert h.hexdigest() == _expected_digest(object_id), (trial, when)

        report = store.scrub(reclaim=True)
        reclaimed += len(report.reclaimed)
        assert report.corrupt == [], (trial, when, report)
        assert report.errors == []
        assert report.in_progress == 0
        assert os.listdir(data_dir / ".tmp") == [], (trial, when)
        after = store.scrub()
        assert after.clean, (trial, when, after)
        # Keep the store small, so that each scrub reads one object at most.
        location = store.find(object_id)
        if location is not None:
            assert outcome == "completed" or metadata == "xattr" or location
            store.delete(location)
        with pytest.raises(exception.ObjectNotFound):
            store.get_size(f"file://{data_dir}/{fanout(object_id)}/{object_id}")

    print(f"{metadata}: {outcomes.count('killed')} killed, "
          f"{outcomes.count('completed')} completed, {reclaimed} files reclaimed")
    assert len(outcomes) == TRIALS[metadata]
    # The kills really interrupted adds, and left files that were reclaimed.
    assert outcomes.count("killed") >= len(outcomes) // 2
    assert reclaimed > 0
