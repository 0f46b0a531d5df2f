"""Output helpers of ``storaged-manage``: formats, tables, progress."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
import json
import sys
import time
from typing import Any
from typing import TextIO

FORMATS = ("human", "json")

#: below this many bytes a transfer shows no progress line
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


def add_format(parser: Any) -> None:
    """Add ``--format human|json`` to an argparse parser."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="human",
        help="output for people (default) or JSON for scripts",
    )


def emit(fmt: str, data: Any, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to print it for people."""
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        human()


def table(rows: Sequence[Sequence[str]], out: TextIO | None = None) -> None:
    """Print rows as aligned columns (the first row is the header)."""
    out = out or sys.stdout
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                  .rstrip() + "\n")


def human_size(n: float) -> str:
    """Return ``n`` bytes as a short human figure (``12.3 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024
    return "%d B" % n


class Progress:
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0
        self.enabled = self.stream.isatty() and (
            total is None or total >= PROGRESS_MIN_BYTES
        )

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes; redraw at most 10 times a second."""
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-6)
        pct = " %3d%%" % (100 * self.done // self.total) if self.total else ""
        self.stream.write("\r%s:%s %s at %s/s " % (
            self.label, pct, human_size(self.done), human_size(rate)))
        self.stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``chunks`` unchanged, counting them."""
        for chunk in chunks:
            self.advance(len(chunk))
            yield chunk


class ProgressReader:
    """A file-like reader that reports progress as it is read."""

    def __init__(self, raw: Any, progress: Progress) -> None:
        self.raw = raw
        self.progress = progress

    def read(self, size: int = -1, /) -> bytes:
        """Read like the wrapped file, counting the bytes."""
        data: bytes = self.raw.read(size)
        self.progress.advance(len(data))
        return data
