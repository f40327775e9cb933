"""Progress of a run: a rich bar on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    """Counts of finished, failed and skipped work, shown as the run goes.

    Parameters
    ----------
    total
        Batches to run in this invocation.
    skipped
        Batches already finished by an earlier run (not rerun).
    stream
        Where to write; a rich bar is used only when it is a terminal.
    interval
        Seconds between plain log lines.
    """

    def __init__(
        self, total: int, skipped: int, stream: TextIO | None = None, interval: float = 10.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.skipped, self.interval = total, skipped, interval
        self.done = self.failed_fits = self.fits = 0
        self._start = self._last = time.monotonic()
        self._bar: Progress | None = None
        if self.stream.isatty():
            self._bar = Progress(
                TextColumn("[bold]batches"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed fits {task.fields[failed]}  skipped {task.fields[skipped]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task("run", total=total, failed=0, skipped=skipped)
            self._bar.start()

    def update(self, batches: int, fits: int, failed_fits: int) -> None:
        """Record finished batches and their fits."""
        self.done += batches
        self.fits += fits
        self.failed_fits += failed_fits
        if self._bar is not None:
            self._bar.update(self._task, advance=batches, failed=self.failed_fits)
            return
        now = time.monotonic()
        if now - self._last >= self.interval or self.done == self.total:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self._start
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        print(
            f"[simstudy] batches {self.done}/{self.total} done, {self.skipped} skipped "
            f"(finished earlier), fits {self.fits} ({self.failed_fits} failed), "
            f"elapsed {elapsed:.0f}s, ETA {eta:.0f}s",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()
