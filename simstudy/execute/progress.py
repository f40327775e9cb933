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
)

from simstudy.execute.eta import BatchTime, remaining_seconds


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
    workers
        Workers the batches run on, for the ETA.

    The ETA is the remaining batches' fitting time (:func:`remaining_seconds`), so that the
    compilation in the first batches does not count as every batch's.
    """

    def __init__(
        self,
        total: int,
        skipped: int,
        stream: TextIO | None = None,
        interval: float = 10.0,
        workers: int = 1,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.skipped, self.interval = total, skipped, interval
        self.workers = workers
        self.times: list[BatchTime] = []
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
                TextColumn("ETA {task.fields[eta]}"),
                console=Console(file=self.stream),
                transient=False,
            )
            self._task = self._bar.add_task(
                "run", total=total, failed=0, skipped=skipped, eta=self.eta_text()
            )
            self._bar.start()

    def update(
        self, batches: int, fits: int, failed_fits: int, timing: BatchTime | None = None
    ) -> None:
        """Record finished batches, their fits and (for the ETA) the time of a batch."""
        self.done += batches
        self.fits += fits
        self.failed_fits += failed_fits
        if timing is not None:
            self.times.append(timing)
        if self._bar is not None:
            self._bar.update(
                self._task, advance=batches, failed=self.failed_fits, eta=self.eta_text()
            )
            return
        now = time.monotonic()
        if now - self._last >= self.interval or self.done == self.total:
            self._last = now
            self._line(now)

    def eta_text(self) -> str:
        """Seconds left, compilation excluded; '?' before a batch is timed."""
        eta = remaining_seconds(self.times, self.total - self.done, self.workers)
        return "?" if eta is None else f"{eta:.0f}s"

    def _line(self, now: float) -> None:
        elapsed = now - self._start
        print(
            f"[simstudy] batches {self.done}/{self.total} done, {self.skipped} skipped "
            f"(finished earlier), fits {self.fits} ({self.failed_fits} failed), "
            f"elapsed {elapsed:.0f}s, ETA {self.eta_text()} (compilation excluded)",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()
