"""``storaged-manage cache list|stats|queue|delete|prune|clean``, run for real."""

from __future__ import annotations

import json
import os
import time

from storaged.cache import ObjectCache
from storaged.cache import entry_id_for
from tests.functional.cache import tools
from tests.unit.cache.support import entry_name
from tests.unit.cache.support import seed_entries

NOW = time.time_ns()


def manage(path, *args):
    return tools.run("tests.functional.cache.manage", "--config-file", path, *args)


def manage_json(path, *args):
    proc = manage(path, *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _setup(tmp_path):
    objects = {"o1": os.urandom(3000), "o2": os.urandom(2000)}
    server = tools.CountingServer().__enter__()
    path = tools.write_conf(tmp_path, cache={"max_size": "6000",
                                             "low_watermark": "0.5"})
    conf = tools.load_conf(path)
    urls = {n: server.put(n, d) for n, d in objects.items()}
    tools.add_rows(conf, {n: ("mirror", urls[n], d) for n, d in objects.items()})
    return server, path, conf, urls


def test_cache_commands(tmp_path):
    server, path, conf, urls = _setup(tmp_path)
    try:
        empty = manage(path, "cache", "list")
        assert empty.returncode == 0 and "The cache is empty." in empty.stdout
        # queue, twice, then prefetch with the daemon's own code
        assert manage_json(path, "cache", "queue", "AUTH_t/c/o1", "AUTH_t/c/o2") \
            == {"queued": {"AUTH_t/c/o1": True, "AUTH_t/c/o2": True}}
        assert manage_json(path, "cache", "queue", "AUTH_t/c/o1") \
            == {"queued": {"AUTH_t/c/o1": False}}
        listed = manage_json(path, "cache", "queue")
        assert [i["target"]["object"] for i in listed] == ["AUTH_t/c/o1",
                                                            "AUTH_t/c/o2"]
        human = manage(path, "cache", "queue")
        assert "AUTH_t/c/o2" in human.stdout and "ATTEMPTS" in human.stdout
        tools.run("storaged.cmd.cache", "--once", "--config-file", path, check=True)
        assert manage_json(path, "cache", "queue") == []
        entries = manage_json(path, "cache", "list")
        assert {e["source"] for e in entries} == {"mirror:AUTH_t/c/o1",
                                                  "mirror:AUTH_t/c/o2"}
        human = manage(path, "cache", "list", "--sort", "size")
        assert human.stdout.splitlines()[0].split() == [
            "ID", "BYTES", "HITS", "LAST", "READ", "SOURCE"]
        stats = manage_json(path, "cache", "stats")
        assert stats["entries"] == 2 and stats["entry_bytes"] == 5000
        assert stats["max_size"] == 6000 and stats["target_size"] == 3000
        assert stats["metadata_store"] == "xattr"
        assert "Size limit:" in manage(path, "cache", "stats").stdout
        # delete: by name, dry run first
        o1 = entry_id_for("mirror", urls["o1"])
        dry = manage_json(path, "cache", "delete", "AUTH_t/c/o1", "--dry-run")
        assert dry == {"dry_run": True, "deleted": {"AUTH_t/c/o1": True}}
        assert os.path.exists(os.path.join(conf.cache.cache_dir, o1))
        assert manage_json(path, "cache", "delete", o1)["deleted"] == {o1: True}
        assert not os.path.exists(os.path.join(conf.cache.cache_dir, o1))
        assert manage_json(path, "cache", "delete", o1)["deleted"] == {o1: False}
        assert manage_json(path, "cache", "delete", "--all")["deleted"] != {}
        assert manage_json(path, "cache", "list") == []
    finally:
        server.__exit__()


def test_prune_and_clean_commands(tmp_path):
    server, path, conf, _urls = _setup(tmp_path)
    server.__exit__()
    cache = ObjectCache(conf.cache.cache_dir)
    ids = seed_entries(cache, [NOW + i for i in range(10)], 1000)
    failed = os.path.join(cache.cache_dir, "invalid", entry_name(50) + ".7")
    cache.close()
    with open(failed, "wb") as f:
        f.write(b"x")
    os.utime(failed, (1, 1))
    dry = manage_json(path, "cache", "prune", "--dry-run")
    assert dry["dry_run"] and dry["pruned"] == 7
    assert [v["name"] for v in dry["victims"] if v["kind"] == "entry"] == ids[:7]
    human = manage(path, "cache", "prune", "--dry-run")
    assert "would prune 7 entries" in human.stdout
    assert len(os.listdir(conf.cache.cache_dir)) >= 10
    result = manage_json(path, "cache", "prune")
    assert result["pruned"] == 7 and result["total_after"] <= 3000
    failed = os.path.join(conf.cache.cache_dir, "invalid", entry_name(51) + ".7")
    with open(failed, "wb") as f:
        f.write(b"x")
    os.utime(failed, (1, 1))
    assert manage_json(path, "cache", "clean", "--dry-run")["invalid_removed"] == 1
    assert os.path.exists(failed)
    assert manage_json(path, "cache", "clean")["invalid_removed"] == 1
    assert not os.path.exists(failed)


def test_hostile_ids_and_usage_errors_are_one_line(tmp_path):
    path = tools.write_conf(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for bad in ("../../victim", "..", "0" * 65, "a" * 63 + "\x01"):
        proc = manage(path, "cache", "delete", bad)
        assert proc.returncode == 1
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith("storaged-manage: Invalid")
    assert victim.read_text() == "keep"
    proc = manage(path, "cache", "delete")
    assert proc.returncode == 1 and "nothing to delete" in proc.stderr
    proc = manage(path, "cache", "queue", "not-an-object")
    assert proc.returncode == 1 and "ACCOUNT/CONTAINER/OBJECT" in proc.stderr
    proc = manage(path, "cache", "frobnicate")
    assert proc.returncode == 2
