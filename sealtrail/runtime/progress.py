"""The one progress line every long-running command shows on stderr.

A single line redrawn in place (``\\r``): a label, a bar when the total is known, how
many units are done, their rate and the time left, and whatever the caller adds (replay:
how many records it wrote). Redrawn at most every ``interval`` seconds, always when the
work is complete; closed with a newline when anything was drawn. Whether to show it at all
is the caller's decision (a terminal on stderr, or asked for).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressLine"]

BAR_WIDTH = 30


class ProgressLine:
    """A one-line progress report: ``label [####......] done/total unit, rate/s, ETA``.

    ``min_total``: totals below it are not worth a line (nothing is drawn). ``clock`` and
    ``stream`` are for tests."""

    def __init__(self, label: str, *, enabled: bool, total: int | None = None,
                 unit: str = "", min_total: int = 0, interval: float = 0.5,
                 stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.enabled = enabled
        self.total = total
        self.unit = unit
        self.min_total = min_total
        self.interval = interval
        self.shown = False
        self._stream = stream
        self._clock = clock
        self._start = clock()
        self._last: float | None = None

    def __call__(self, done: int, total: int | None = None) -> None:
        """``update(done, total=total)``: usable as an ``on_unit(done, total)`` callback."""
        self.update(done, total=total)

    def update(self, done: int, *, total: int | None = None, note: str = "",
               force: bool = False) -> None:
        """Redraw with ``done`` units complete (of ``total``, when given, else the total
        given before); ``note`` is appended after the rate."""
        if total is not None:
            self.total = total
        if not self.enabled or (self.total is not None and self.total < self.min_total):
            return
        now = self._clock()
        complete = self.total is not None and done >= self.total
        if not (force or complete) and self._last is not None \
                and now - self._last < self.interval:
            return
        self._last = now
        stream = self._stream or sys.stderr
        stream.write("\r" + self.render(done, now - self._start, note) + " ")
        stream.flush()
        self.shown = True

    def render(self, done: int, elapsed: float, note: str = "") -> str:
        """The text of the line for ``done`` units after ``elapsed`` seconds."""
        unit = f" {self.unit}" if self.unit else ""
        rate = done / max(elapsed, 1e-6)
        if self.total:
            filled = BAR_WIDTH * min(done, self.total) // self.total
            left = max(self.total - done, 0)
            eta = f", ETA {left / rate:.0f} s" if rate and left else ""
            head = (f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                    f"{done}/{self.total}{unit}")
        else:
            eta, head = "", f"{self.label} {done}{unit}"
        return f"{head}, {rate:,.0f}/s{eta}{note}"

    def close(self) -> None:
        """End the line (a newline) when anything was drawn."""
        if self.shown:
            (self._stream or sys.stderr).write("\n")
            self.shown = False
