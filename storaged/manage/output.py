"""Output helpers of ``storaged-manage``: formats, tables, progress (tqdm)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
import json
import sys
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


def interactive(fmt: str = "human", stream: TextIO | None = None) -> bool:
    """Tell whether progress may be drawn: people watch a terminal.

    Not with ``--format json``, nor when standard output or ``stream``
    (standard error by default) is not a terminal: a script, a pipe, cron.
    """
    if fmt == "json":
        return False
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty() and sys.stdout.isatty())
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


class Progress:
    """A progress bar (tqdm) on standard error, only for people at a terminal.

    :param label: what is being done (``put NAME``, ``scrub fs``).
    :param total: how much there is to do, or None when unknown.
    :param stream: where the bar goes (standard error).
    :param fmt: the command's ``--format``: ``json`` shows none.
    :param unit: ``B`` (bytes: sizes scaled by 1024) or what is counted
        (``entry``, ``back end``...).
    :param tty: whether to draw (default: :func:`interactive`).
    :param min_total: below this total nothing is shown (a small transfer
        ends before a bar says anything); bytes only.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None = None,
        *,
        fmt: str = "human",
        unit: str = "B",
        tty: bool | None = None,
        min_total: int | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.total = total
        self.done = 0
        if min_total is None:
            min_total = PROGRESS_MIN_BYTES if unit == "B" else 0
        shown = interactive(fmt, self.stream) if tty is None else tty
        self.enabled = shown and (total is None or total >= min_total)
        self._bar: Any = None
        if self.enabled:
            import tqdm  # only for a bar shown: a tenth of --help's start-up

            self._bar = tqdm.tqdm(
                total=total, desc=label, file=self.stream, unit=unit,
                unit_scale=unit == "B", unit_divisor=1024 if unit == "B" else 1000,
                mininterval=0.1, dynamic_ncols=True, leave=True,
            )

    def advance(self, n: int) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def update_to(self, done: int, total: int | None = None) -> None:
        """Set how much is done (and the total, once known)."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        self.advance(done - self.done)

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

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
