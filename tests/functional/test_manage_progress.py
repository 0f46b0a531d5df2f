"""storaged-manage shows progress on a terminal (tqdm), and none otherwise.

The commands run under a pseudo-terminal (python's ``pty``) as a person
runs them, and with pipes as a script or cron runs them.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, STORAGED_CONCURRENCY_BACKEND="eventlet")
MiB = 1024 * 1024


@pytest.fixture
def manage(tmp_path):
    conf = tmp_path / "storaged.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\n" % (tmp_path / "state"))
    argv = [sys.executable, "-m", "storaged.manage.cli", "--config-file", str(conf)]

    def piped(*args):
        proc = subprocess.run([*argv, *args], cwd=ROOT, env=ENV, capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout.decode(), proc.stderr.decode()

    def on_tty(*args):
        """Run with stdin, stdout and stderr on a terminal; return what it showed."""
        master, slave = pty.openpty()
        # 24 rows of 100 columns, as a terminal window has.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        try:
            proc = subprocess.Popen([*argv, *args], cwd=ROOT, env=ENV, stdin=slave,
                                    stdout=slave, stderr=slave, close_fds=True)
        finally:
            os.close(slave)
        shown = b""
        try:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not data:
                    break
                shown += data
        finally:
            os.close(master)
        assert proc.wait(timeout=120) == 0, shown.decode(errors="replace")
        return shown.decode(errors="replace")

    piped("container", "create", "AUTH_demo/big")
    return piped, on_tty


def _bar(text):
    """Tell whether a progress bar was drawn (a terminal ends lines with \\r\\n)."""
    text = text.replace("\r\n", "\n")
    return "%|" in text or "\r" in text


def test_a_large_put_and_get_show_progress_on_a_terminal_only(manage, tmp_path):
    piped, on_tty = manage
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * MiB))
    shown = on_tty("object", "put", "AUTH_demo/big", "o1", str(src))
    assert "put o1: 100%|" in shown and "12.0M/12.0M" in shown
    assert "Stored AUTH_demo/big/o1" in shown
    out, err = piped("object", "put", "AUTH_demo/big", "o2", str(src))
    assert "Stored AUTH_demo/big/o2" in out and not _bar(out + err)
    dst = tmp_path / "copy.bin"
    shown = on_tty("object", "get", "AUTH_demo/big", "o1", "-o", str(dst))
    assert "get o1: 100%|" in shown
    assert dst.read_bytes() == src.read_bytes()
    out, err = piped("object", "get", "AUTH_demo/big", "o1", "-o", str(dst))
    assert not _bar(out + err)


def test_json_output_has_no_progress_even_on_a_terminal(manage, tmp_path):
    _piped, on_tty = manage
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(9 * MiB))
    shown = on_tty("object", "put", "AUTH_demo/big", "o", str(src), "--format", "json")
    assert not _bar(shown)
    assert json.loads(shown)["bytes"] == 9 * MiB
    shown = on_tty("store", "scrub", "--format", "json")
    assert not _bar(shown)
    assert json.loads(shown)[0]["checked"] == 1


def test_store_verify_scrub_and_cache_prune_clean(manage, tmp_path):
    piped, on_tty = manage
    for name in ("one", "two"):
        piped("object", "put", "AUTH_demo/big", name, "/dev/null")
    shown = on_tty("store", "verify")
    assert "verify: 100%|" in shown and "back end" in shown, shown
    # A scrub counts the objects of each back end as it checks them.
    shown = on_tty("store", "scrub")
    assert re.search(r"scrub \S+: 2 objects", shown), shown
    for args in (("store", "verify"), ("store", "scrub")):
        out, err = piped(*args)
        assert not _bar(out + err)
    for args, label in ((("cache", "prune"), "prune"), (("cache", "clean"), "clean")):
        shown = on_tty(*args)
        assert "%s: " % label in shown and _bar(shown), shown
        out, err = piped(*args)
        assert not _bar(out + err)


def test_listing_every_page_shows_progress_on_a_terminal_only(manage, tmp_path):
    piped, on_tty = manage
    src = tmp_path / "small"
    src.write_bytes(b"x")
    for name in ("a", "b", "c"):
        piped("object", "put", "AUTH_demo/big", name, str(src))
    shown = on_tty("object", "list", "AUTH_demo/big", "--all")
    assert "list: 100%|" in shown and "3/3" in shown
    assert shown.count("LAST MODIFIED") == 1
    out, err = piped("object", "list", "AUTH_demo/big", "--all")
    assert not _bar(out + err)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["a", "b", "c"]
    shown = on_tty("container", "list", "AUTH_demo", "--all")
    assert "list: 100%|" in shown and "1/1" in shown
