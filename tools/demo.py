#!/usr/bin/env python3
"""The quick start: storaged on the embedded defaults, no external service.

Run from a source checkout (``tox -e demo`` installs storaged and runs this).
Everything it writes goes under ``.demo/`` in the checkout; run it again to
start over.  Each step prints the command it runs, so an operator can repeat
it by hand.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Protocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, ".demo")
SAMPLE = os.path.join(ROOT, "etc", "storaged", "storaged.conf.sample")


def step(title: str, *cmd: str, expect: int = 0) -> None:
    print("\n### %s\n$ %s" % (title, " ".join(cmd)), flush=True)
    rc = subprocess.call(cmd)
    if rc != expect:
        sys.exit("demo: step %r exited %d (expected %d)" % (title, rc, expect))


def output(*cmd: str) -> str:
    """Run a command quietly and return what it printed (exit 0 expected)."""
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit("demo: %s did not happen within %ds" % (what, timeout))
        time.sleep(0.2)


class Background:
    """A daemon the demo starts, and stops with SIGTERM at the end."""

    def __init__(self, title: str, *cmd: str, log: str) -> None:
        print("\n### %s\n$ %s &" % (title, " ".join(cmd)), flush=True)
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        print("(stopped %s with SIGTERM: exit status %d)" % (self.proc.args[0], rc))
        return rc


def _script(name: str) -> str:
    """The console script installed beside this Python, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.path.exists(beside) else (shutil.which(name) or name)


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    os.makedirs(DEMO)
    conf = os.path.join(DEMO, "storaged.conf")
    port = free_port()
    key = secrets.token_urlsafe(18)
    realms = os.path.join(DEMO, "container-sync-realms.conf")
    with open(realms, "w") as f:
        f.write("[demo]\nkey = %s\ncluster_local = http://127.0.0.1:%d/v1/\n"
                % (secrets.token_urlsafe(18), port))
    with open(conf, "w") as f:
        f.write(textwrap.dedent("""\
            [DEFAULT]
            state_path = %s
            node_id = demo-node

            [kvs]
            # the embedded default, spelled out
            backend_url = sqlite:///$state_path/state.sqlite

            [local]
            # reads of the default back end go through the object cache
            cache = true

            [cache]
            max_size = 67108864

            [coordination]
            # the embedded default, spelled out
            backend_url = file://$state_path/coordination

            [heartbeat]
            publish_interval = 1

            [api]
            bind_host = 127.0.0.1
            bind_port = %d
            user_demo_admin = %s .admin

            [sync]
            realms_conf = %s
            """ % (os.path.join(DEMO, "state"), port, key, realms)))
    manage = _script("storaged-manage")
    # What a newcomer needs first is what this configuration changes, not
    # every option ("config check" without --changed prints them all).
    step("the shipped sample configuration is valid (every option commented "
         "out, at its default)",
         manage, "--config-file", SAMPLE, "config", "check", "--changed")
    step("validate the demo configuration and show what it changes from the "
         "defaults (secrets masked)",
         manage, "--config-file", conf, "config", "check", "--changed")
    bad = os.path.join(DEMO, "bad.conf")
    with open(bad, "w") as f:
        f.write("[kvs]\ntimeout = soon\n")
    step("a bad configuration is refused with one line and exit status 2",
         manage, "--config-file", bad, "config", "check", expect=2)
    run = (manage, "--config-file", conf)
    step("create a container", *run, "container", "create", "AUTH_demo/photos",
         "--meta", "owner=demo")
    sample = os.path.join(DEMO, "sample.bin")
    with open(sample, "wb") as f:
        f.write(os.urandom(16 * 1024 * 1024))
    step("store a 16 MiB object (durable: fsync + atomic rename; sha256 recorded)",
         *run, "object", "put", "AUTH_demo/photos", "holiday/beach.raw", sample)
    step("store this README too", *run, "object", "put", "AUTH_demo/photos",
         "docs/README.rst", os.path.join(ROOT, "README.rst"))
    step("list the container, rolled up at '/'", *run, "object", "list",
         "AUTH_demo/photos", "--delimiter", "/")
    copy = os.path.join(DEMO, "beach.copy")
    step("read it back, verifying its digest", *run, "object", "get",
         "AUTH_demo/photos", "holiday/beach.raw", "-o", copy)
    with open(sample, "rb") as a, open(copy, "rb") as b:
        same = a.read() == b.read()
    print("read back %s the original" % ("is identical to" if same else "DIFFERS from"))
    if not same:
        return 1
    step("object metadata", *run, "object", "head", "AUTH_demo/photos",
         "holiday/beach.raw")
    step("container counts and metadata", *run, "container", "show",
         "AUTH_demo/photos")
    step("a hostile name is refused before anything is written", *run, "object",
         "put", "AUTH_demo/photos", "../../etc/passwd", sample, expect=1)
    step("scrub: re-read every object of every back end against its digest",
         *run, "store", "scrub")
    cache_demo(run, conf, sample)
    agent = Background("start the node agent (joins the storaged group)",
                       _script("storaged-heartbeat"), "--config-file", conf,
                       log=os.path.join(DEMO, "heartbeat.log"))
    api = Background("start the Swift-compatible API on port %d" % port,
                     _script("storaged-api"), "--config-file", conf,
                     log=os.path.join(DEMO, "api.log"))
    try:
        wait_until("the node agent joining", lambda: agent.alive() and "demo-node"
                   in output(*run, "cluster", "members", "--format", "json"))
        step("the cluster's members, from the coordination back end", *run,
             "cluster", "members")
        wait_until("the API listening", lambda: api.alive() and _listening(port))
        swift = swift_demo(port, key, sample)
        sync_demo(run, conf, swift)
        step("every daemon of every node, from the state store", *run, "status")
    finally:
        rc = api.stop() | agent.stop()
    step("the agent left the group on SIGTERM: no ghost member", *run,
         "cluster", "members")
    print("\nDemo finished; its files are in %s" % DEMO)
    return rc


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def cache_demo(run: tuple[str, ...], conf: str, sample: str) -> None:
    """Objects read through the cache: a fill, a hit, then a prune."""
    copy = os.path.join(DEMO, "beach.again")
    step("read the object again: this time it is served by the cache", *run,
         "object", "get", "AUTH_demo/photos", "holiday/beach.raw", "-o", copy)
    step("the cache's entries: filled by the first read, one hit since", *run,
         "cache", "list")
    small = os.path.join(DEMO, "small-cache.conf")
    with open(small, "w") as f:
        f.write("[cache]\n# a limit smaller than what the cache holds\n"
                "max_size = 1048576\n")
    step("prune the cache (as cron would) with a 1 MiB limit",
         _script("storaged-cache-prune"), "--config-file", conf, "--config-file",
         small)
    step("the cache after the prune", *run, "cache", "stats")


def sync_demo(run: tuple[str, ...], conf: str, swift: SwiftStep) -> None:
    """A container synced to another one through the API, deletes included."""
    sync_key = secrets.token_urlsafe(12)
    swift("create the target container with its sync key", "post", "photos-copy",
          "-k", sync_key)
    swift("sync photos to it through the realm 'demo' (signed requests)", "post",
          "photos", "-t", "//demo/local/AUTH_demo/photos-copy", "-k", sync_key)
    sync = (_script("storaged-sync"), "--config-file", conf, "--once")
    step("one sync pass (as the storaged@sync daemon runs every interval)", *sync)
    swift("the target now holds every object", "list", "photos-copy")
    swift("delete an object at the source", "delete", "photos", "docs/README.rst")
    step("the next sync pass sends the delete", *sync)
    swift("the target follows", "list", "photos-copy")
    step("sync progress per container, from the state store", *run, "sync",
         "status")


class SwiftStep(Protocol):
    def __call__(self, title: str, *args: str) -> None: ...


def swift_demo(port: int, key: str, sample: str) -> SwiftStep:
    """The API with Swift's own command-line client."""
    swift = (_script("swift"), "-A", "http://127.0.0.1:%d/auth/v1.0" % port,
             "-U", "demo:admin", "-K", key)
    shown = (swift[0], "-A", swift[2], "-U", "demo:admin", "-K", "<key>")
    print("\n(swift commands below run as: %s ...)" % " ".join(shown))

    def swift_step(title: str, *args: str) -> None:
        print("\n### %s\n$ swift %s" % (title, " ".join(args)), flush=True)
        rc = subprocess.call((*swift, *args), cwd=DEMO)
        if rc != 0:
            sys.exit("demo: swift %s exited %d" % (" ".join(args), rc))

    swift_step("the containers the manage commands created, seen through the API",
               "list")
    swift_step("upload with the swift client", "upload", "--object-name",
               "via-api/sample.bin", "photos", os.path.basename(sample))
    swift_step("list the container", "list", "photos")
    swift_step("container statistics", "stat", "photos")
    swift_step("download it back (the client checks the ETag)", "download",
               "photos", "via-api/sample.bin", "-o", "sample.downloaded")
    with open(sample, "rb") as a, open(os.path.join(DEMO, "sample.downloaded"),
                                       "rb") as b:
        if a.read() != b.read():
            sys.exit("demo: the downloaded object differs from the original")
    print("downloaded object is identical to the original")
    return swift_step


if __name__ == "__main__":
    sys.exit(main())
