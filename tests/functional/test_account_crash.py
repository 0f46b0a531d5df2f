"""SIGKILL a writer of account metadata: no acknowledged update is lost.

A child process updates account metadata in a loop, moving to a new account
every third update, so that the kill also lands while an account's
database is being made.  It prints each update only after the call returned
(the commit).  The test kills it after a random delay, several times over
the same catalog, then reopens the catalog as a new process would: every
acknowledged update is there, the update in flight is either there or not,
and every account database is whole (never a half-made one in place).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from storaged import concurrency
from storaged import exception
from storaged.catalog import Catalog

TRIALS = 6  # per concurrency backend
STEP = "X-Account-Meta-Step"

CHILD = r"""
import sys
from storaged import concurrency
concurrency.setup()  # from STORAGED_CONCURRENCY_BACKEND
from storaged.catalog import Catalog

path, trial = sys.argv[1], int(sys.argv[2])
catalog = Catalog(path)
out = sys.stdout
out.write("ready\n")
out.flush()
i = 0
while True:
    account = "AUTH_t%d-%05d" % (trial, i // 3)
    with catalog.account(account) as broker:
        broker.update_metadata({"X-Account-Meta-Step": str(i)})
    out.write("%s %d\n" % (account, i))
    out.flush()
    i += 1
"""


def account_of(trial, i):
    return "AUTH_t%d-%05d" % (trial, i // 3)


def run_trial(path, trial, rng, backend):
    """Run one child, kill it; return ({account: last acked step}, in-flight)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, path, str(trial)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, STORAGED_CONCURRENCY_BACKEND=backend),
    )
    try:
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read()
        time.sleep(rng.uniform(0.01, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    acked: dict[str, int] = {}
    steps = 0
    for line in out.decode().split("\n")[:-1]:
        account, step = line.split()
        assert (account, int(step)) == (account_of(trial, steps), steps)
        acked[account] = steps
        steps += 1
    return acked, (account_of(trial, steps), steps)


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_sigkill_loses_no_acknowledged_update(tmp_path, backend):
    path = str(tmp_path / "catalog")
    rng = random.Random(int(os.environ.get("CATALOG_CRASH_SEED", "4343")))
    accounts = 0
    for trial in range(TRIALS):
        acked, (flying, step) = run_trial(path, trial, rng, backend)
        accounts += len(acked)
        check(path, acked, flying, step)
    # The runs did real work (the test would prove nothing otherwise).
    assert accounts > 20, accounts


def check(path, acked, flying, step):
    catalog = Catalog(path)
    try:
        for account, last in acked.items():
            with catalog.account(account) as broker:
                value = broker.info().metadata[STEP]
            allowed = {str(last)} | ({str(step)} if account == flying else set())
            assert value in allowed, f"{account}: acknowledged step {last} lost"
        if flying not in acked:
            with catalog.account(flying) as broker:
                try:
                    value = broker.info().metadata.get(STEP)
                except exception.AccountNotFound:
                    value = None  # killed before its database was in place
            assert value in (None, str(step))
    finally:
        catalog.close()
    # Every database in place is whole.
    for root, _dirs, files in os.walk(os.path.join(path, "accounts")):
        for name in files:
            if not name.endswith(".db"):
                continue
            conn = sqlite3.connect(os.path.join(root, name))
            try:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                rows = conn.execute("SELECT count(*) FROM account_info").fetchone()
                assert rows == (1,)
            finally:
                conn.close()
