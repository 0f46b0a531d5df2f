"""Progress lines only on a terminal; sizes and tables for people."""

from __future__ import annotations

import io

from storaged.manage import output


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal_and_for_large_transfers():
    pipe = io.StringIO()
    p = output.Progress("put x", 100 * 1024 * 1024, stream=pipe)
    p.advance(50 * 1024 * 1024)
    p.finish()
    assert pipe.getvalue() == "" and not p.enabled

    small = Tty()
    p = output.Progress("put x", 1024, stream=small, tty=True)
    p.advance(1024)
    p.finish()
    assert small.getvalue() == ""

    tty = Tty()
    p = output.Progress("put x", 16 * 1024 * 1024, stream=tty, tty=True)
    data = b"x" * (1024 * 1024)
    assert b"".join(p.wrap([data] * 16)) == data * 16
    p.finish()
    text = tty.getvalue()
    assert text.startswith("\rput x: ")
    assert "100%|" in text and "16.0M/16.0M" in text
    assert text.endswith("\n")


def test_no_progress_with_json_or_without_a_terminal_on_stdout(monkeypatch):
    assert not output.interactive("json", Tty())
    monkeypatch.setattr(output.sys, "stdout", io.StringIO())  # a pipe
    assert not output.interactive("human", Tty())
    monkeypatch.setattr(output.sys, "stdout", Tty())
    assert output.interactive("human", Tty())
    assert not output.interactive("human", io.StringIO())
    tty = Tty()
    p = output.Progress("put x", 100 * 1024 * 1024, stream=tty, fmt="json")
    p.advance(1)
    p.finish()
    assert tty.getvalue() == ""


def test_counted_progress_learns_its_total():
    tty = Tty()
    p = output.Progress("prune", None, stream=tty, unit="entry", tty=True)
    p.update_to(0, 40)
    p.update_to(40)
    p.finish()
    assert p.done == 40
    assert "prune: 100%|" in tty.getvalue() and "40/40" in tty.getvalue()


def test_progress_reader_counts_bytes():
    tty = Tty()
    p = output.Progress("get", None, stream=tty, tty=True)
    reader = output.ProgressReader(io.BytesIO(b"a" * 5000), p)
    while reader.read(1000):
        pass
    p.finish()
    assert p.done == 5000


def test_human_size_and_table():
    assert output.human_size(0) == "0 B"
    assert output.human_size(1536) == "1.5 KiB"
    assert output.human_size(3 * 1024**3) == "3.0 GiB"
    out = io.StringIO()
    output.table([("A", "BB"), ("ccc", "d")], out)
    assert out.getvalue() == "A    BB\nccc  d\n"
