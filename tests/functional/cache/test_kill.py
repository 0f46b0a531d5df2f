"""SIGKILL during a fill: nothing is served from it, the cleaner reaps it.

The writer is a real reader process, a slow client of a slow back end, killed
with SIGKILL half-way through its fill.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal

import pytest

from storaged import concurrency
from storaged.cache import daemon as cache_daemon
from storaged.cache import entry_id_for
from tests.functional.cache import tools

MiB = 1024 * 1024


def _progress(path):
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _start_writer(tmp_path, path, backend, name="big"):
    progress = tmp_path / ("progress-" + name)
    proc = tools.spawn("tests.functional.cache.reader", "--config-file", path,
                       "--objects", name, "--progress", str(progress),
                       backend=backend)
    tools.wait_for(lambda: _progress(progress) >= 256 * 1024, "the fill to begin",
                   procs=[proc])
    return proc


def _kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_a_killed_fill_is_never_served_and_the_cleaner_reaps_it(tmp_path, backend):
    data = os.urandom(2 * MiB)
    with tools.CountingServer() as server:
        url = server.put("big", data)
        path = tools.write_conf(tmp_path, cache={"stall_time": "3600"})
        conf = tools.load_conf(path)
        tools.add_rows(conf, {"big": ("mirror", url, data)})
        writer = _start_writer(tmp_path, path, backend)
        _kill(writer)
        entry_id = entry_id_for("mirror", url)
        cache = cache_daemon.open_cache(conf)
        try:
            assert cache.lookup(entry_id) is None  # nothing in place
            fill = cache.incomplete_path(entry_id)
            assert 0 < os.path.getsize(fill) < len(data)
            # Dead but not stalled yet: kept.
            proc = tools.run("storaged.cmd.cache", "clean", "--config-file", path,
                             backend=backend, check=True)
            assert os.path.exists(fill), proc.stderr
            old = os.stat(fill).st_mtime - 7200  # two hours pass
            os.utime(fill, (old, old))
            tools.run("storaged.cmd.cache", "clean", "--config-file", path,
                      backend=backend, check=True)
            assert not os.path.exists(fill)
            assert os.listdir(os.path.join(cache.cache_dir, "incomplete")) == []
            assert cache.lookup(entry_id) is None
        finally:
            cache.close()
        out = tools.run("tests.functional.cache.reader", "--config-file", path,
                        "--objects", "big", backend=backend, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        assert result["digests"] == ["big:" + hashlib.sha256(data).hexdigest()]
        assert result["counters"]["fills"] == 1
        assert server.gets("big") == 2


@pytest.mark.parametrize("backend", concurrency.BACKENDS)
def test_a_reader_following_a_killed_fill_gets_the_whole_body(tmp_path, backend):
    data = os.urandom(2 * MiB)
    # A slow back end (0.2 s a chunk, 32 chunks): the fill is still running
    # when the follower, a process started after it, asks (under load the
    # fill once ended first, and the follower got a plain hit).
    with tools.CountingServer(delay=0.2) as server:
        url = server.put("big", data)
        path = tools.write_conf(tmp_path)
        conf = tools.load_conf(path)
        tools.add_rows(conf, {"big": ("mirror", url, data)})
        writer = _start_writer(tmp_path, path, backend)
        follower_progress = tmp_path / "progress-follower"
        follower = tools.spawn("tests.functional.cache.reader", "--config-file", path,
                               "--objects", "big", "--progress",
                               str(follower_progress), backend=backend)
        tools.wait_for(lambda: _progress(follower_progress) > 0, "the follower",
                       procs=[follower])
        _kill(writer)
        out = follower.communicate(timeout=120)[0]
        assert follower.returncode == 0, out
        result = json.loads(out.strip().splitlines()[-1])
        assert result["errors"] == []
        assert result["digests"] == ["big:" + hashlib.sha256(data).hexdigest()]
        assert result["counters"].get("followed") == 1
        assert result["counters"].get("follow_fallbacks") == 1
        ranged = [r for m, n, r in server.requests if m == "GET" and r]
        assert len(ranged) == 1  # the rest, read from where the fill stopped
