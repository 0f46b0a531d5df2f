"""Concurrent first fills never commit a corrupt entry (Glance committed zeros).

Six processes (eventlet and threads) read twenty uncached objects at once,
in different orders: each object is fetched once and every entry holds
exactly its object.  Then the same with a rogue thread scribbling over every
fill in ``incomplete/`` while it is written, as Glance's second writer
truncated the first one's file: a scribbled fill fails its check and goes to
``invalid/``; a file scribbled over after its check passed (the rogue opened
it before the commit) fails every verified read; and no reader is ever
handed wrong bytes without an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading

import pytest

from storaged import exception
from storaged.cache import CacheRef
from storaged.cache import daemon as cache_daemon
from storaged.cache import entry_id_for
from tests.functional.cache import tools


def _check_entries(conf, sources, exact=True):
    """Every committed entry holds its object's bytes, or is never served.

    A rogue process can scribble over a file it opened before the fill was
    committed; such an entry must then fail every verified read.
    """
    cache = cache_daemon.open_cache(conf)
    try:
        by_id = {entry_id_for("mirror", url): (url, data)
                 for url, data in sources.values()}
        committed = cache.entries()
        for info in committed:
            with open(cache.entry_path(info.id), "rb") as f:
                body = f.read()
            url, data = by_id[info.id]
            if exact or body == data:
                assert body == data
                assert info.digest == "sha256:" + hashlib.sha256(body).hexdigest()
                continue
            ref = CacheRef("mirror", url, len(data),
                           {"md5": hashlib.md5(data).hexdigest()})
            chunks, _n = cache.read(ref, _no_fetch, verify=True)
            with pytest.raises(exception.CorruptObject):
                b"".join(chunks)
        return committed
    finally:
        cache.close()


def _no_fetch(offset, length, verify):
    raise AssertionError("a hit must not reach the back end")


def _run_readers(tmp_path, path, names, tamper=None):
    go = tmp_path / "go"
    ready, procs, logs = [], [], []
    rng = random.Random(7)
    for i in range(6):
        order = list(names)
        rng.shuffle(order)
        ready.append(tmp_path / ("ready-%d" % i))
        # Output to files, not pipes: a reader blocked on a full pipe while
        # it writes a fill would stall every follower of that fill.
        logs.append(open(tmp_path / ("reader-%d.out" % i), "w+"))
        procs.append(tools.spawn(
            "tests.functional.cache.reader", "--config-file", path,
            "--objects", ",".join(order), "--threads", "2",
            "--ready", str(ready[-1]), "--go", str(go),
            backend="eventlet" if i % 2 else "threading", stdout=logs[-1]))
    tools.wait_for(lambda: all(r.exists() for r in ready), "readers ready",
                   procs=procs)
    stop = threading.Event()
    thread = None
    if tamper is not None:
        thread = threading.Thread(target=tamper, args=(stop,))
        thread.start()
    go.touch()
    try:
        for p in procs:
            p.wait(timeout=180)
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
    assert [p.returncode for p in procs] == [0] * 6, outputs
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


@pytest.mark.parametrize("rogue", [False, True], ids=["clean", "rogue-writer"])
def test_concurrent_first_fills(tmp_path, rogue):
    rng = random.Random(3)
    with tools.CountingServer(delay=0.002) as server:
        path = tools.write_conf(tmp_path)
        conf = tools.load_conf(path)
        sources = {}
        for i in range(20):
            data = os.urandom(rng.choice([1024, 65 * 1024, 300 * 1024, 1 << 20]))
            sources["o%d" % i] = (server.put("o%d" % i, data), data)
        tools.add_rows(conf, {n: ("mirror", url, d) for n, (url, d) in sources.items()})
        incomplete = os.path.join(conf.cache.cache_dir, "incomplete")

        def scribble(stop):
            while not stop.is_set():
                for name in os.listdir(incomplete):
                    try:
                        with open(os.path.join(incomplete, name), "r+b") as f:
                            f.write(b"\0" * 4096)
                    except OSError:
                        pass
                stop.wait(0.001)

        results = _run_readers(tmp_path, path, sorted(sources),
                               scribble if rogue else None)
        gets = {name: server.gets(name) for name in sources}
    expected = {"%s:%s" % (n, hashlib.sha256(d).hexdigest())
                for n, (_u, d) in sources.items()}
    delivered = [d for r in results for d in r["digests"]]
    errors = [e for r in results for e in r["errors"]]
    # Every body handed out in full is the right one...
    assert set(delivered) <= expected
    committed = _check_entries(conf, sources, exact=not rogue)
    if not rogue:
        assert errors == [] and len(delivered) == 6 * 2 * 20
        assert gets == {name: 1 for name in sources}  # single flight
        assert len(committed) == 20
    else:
        # ...and a reader that streamed a scribbled fill got an error, never
        # wrong bytes; scribbled fills went to invalid/, not into place.
        assert all("CorruptObject" in e for e in errors), errors
        assert len(delivered) + len(errors) == 6 * 2 * 20
