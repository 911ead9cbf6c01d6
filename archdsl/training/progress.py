"""A small progress display for training epochs, written to stderr.

On a terminal: one line redrawn in place (at most ten times a second) with a
bar, loss, accuracy, throughput and time left. In a log (not a terminal): a
line every tenth of the epoch. Quiet: nothing but the per-epoch summaries.
"""

from __future__ import annotations

import shutil
import sys
import time


def format_duration(seconds: float) -> str:
    """``75`` → ``1:15``; ``3725`` → ``1:02:05``."""
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress of one epoch of ``total`` batches."""

    def __init__(self, total: int, label: str, stream=None, quiet: bool = False):
        self.total, self.label = max(1, total), label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.quiet = quiet
        self.start = self.last = time.perf_counter()
        self.next_line = 0.1  # fraction of the epoch at which a log line is due
        self.drawn = False

    def due(self, done: int) -> bool:
        """Whether an update after ``done`` batches would be shown (cheap: call every step)."""
        if self.quiet:
            return False
        if self.tty:
            return time.perf_counter() - self.last >= 0.1 or done == self.total
        return done / self.total >= self.next_line

    def update(self, done: int, images: int, loss: float, accuracy: float) -> None:
        """Show ``done`` of ``total`` batches, ``images`` seen so far, running loss and accuracy."""
        now = time.perf_counter()
        self.last = now
        elapsed = now - self.start
        rate = images / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.total - done) if done else 0.0
        stats = (f"{done}/{self.total} loss {loss:.4f} acc {accuracy:6.2%} "
                 f"{rate:,.0f} img/s eta {format_duration(eta)}")
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            room = max(10, min(30, width - len(self.label) - len(stats) - 5))
            filled = int(room * done / self.total)
            bar = "=" * filled + (">" if filled < room else "") + " " * (room - filled - 1)
            line = f"{self.label} [{bar}] {stats}"[:width]
            self.stream.write("\r" + line.ljust(width))
            self.drawn = True
        else:
            while self.next_line <= done / self.total:
                self.next_line += 0.1
            self.stream.write(f"{self.label} {stats}\n")
        self.stream.flush()

    def close(self, summary: str | None = None) -> None:
        """Clear the bar and print ``summary`` (printed even when quiet)."""
        if self.drawn:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + " " * width + "\r")
        if summary:
            self.stream.write(summary + "\n")
        self.stream.flush()
