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
    assert pipe.getvalue() == ""

    small = Tty()
    p = output.Progress("put x", 1024, stream=small)
    p.advance(1024)
    p.finish()
    assert small.getvalue() == ""

    tty = Tty()
    p = output.Progress("put x", 16 * 1024 * 1024, stream=tty)
    data = b"x" * (1024 * 1024)
    assert b"".join(p.wrap([data] * 16)) == data * 16
    p.finish()
    text = tty.getvalue()
    assert text.startswith("\rput x: ")
    assert "100% 16.0 MiB at" in text
    assert text.endswith("\n")


def test_progress_reader_counts_bytes():
    tty = Tty()
    p = output.Progress("get", None, stream=tty)
    reader = output.ProgressReader(io.BytesIO(b"a" * 5000), p)
    while reader.read(1000):
        pass
    assert p.done == 5000


def test_human_size_and_table():
    assert output.human_size(0) == "0 B"
    assert output.human_size(1536) == "1.5 KiB"
    assert output.human_size(3 * 1024**3) == "3.0 GiB"
    out = io.StringIO()
    output.table([("A", "BB"), ("ccc", "d")], out)
    assert out.getvalue() == "A    BB\nccc  d\n"
