"""A plain progress bar on stderr: redrawn in place on a terminal, a few lines in a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Without a terminal, a line is printed at most at every this many percent.
LOG_STEP_PERCENT = 25


class Progress:
    """One phase at a time: ``phase(name, total)``, then ``update(done)``, then ``finish()``.

    ``total`` may be unknown (None): the bar then shows the count only.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 30,
                 tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty() if tty is None else tty
        self.name = ""
        self.total: float | None = None
        self.done = 0.0
        self.detail = ""
        self._started_s = time.monotonic()
        self._logged_step = -1

    def phase(self, name: str, total: float | None = None, detail: str = "") -> None:
        self.name, self.total, self.done, self.detail = name, total, 0.0, detail
        self._started_s = time.monotonic()
        self._logged_step = -1
        self._draw(force=True)

    def update(self, done: float, total: float | None = None, detail: str | None = None,
               ) -> None:
        if total is not None:
            self.total = total
        if detail is not None:
            self.detail = detail
        self.done = done
        self._draw()

    def finish(self, detail: str | None = None) -> float:
        """End the phase at 100 %; returns its duration in seconds."""
        if detail is not None:
            self.detail = detail
        if self.total:
            self.done = self.total
        self._draw(force=True, final=True)
        return time.monotonic() - self._started_s

    def line(self) -> str:
        elapsed = time.monotonic() - self._started_s
        if self.total:
            fraction = max(0.0, min(1.0, self.done / self.total))
            filled = round(fraction * self.width)
            bar = "#" * filled + "." * (self.width - filled)
            head = f"{self.name:<8} [{bar}] {fraction * 100:5.1f}%"
        else:
            head = f"{self.name:<8} [{'?' * self.width}] {self.done:,.0f}"
        detail = f" {self.detail}" if self.detail else ""
        return f"{head} {elapsed:6.1f} s{detail}"

    def _draw(self, force: bool = False, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.line() + ("\n" if final else ""))
            self.stream.flush()
            return
        step = -1
        if self.total:
            step = int(min(1.0, self.done / self.total) * 100) // LOG_STEP_PERCENT
        if force or final or step > self._logged_step:
            self._logged_step = max(step, self._logged_step)
            self.stream.write(self.line() + "\n")
            self.stream.flush()
