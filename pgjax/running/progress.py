"""Progress of a sweep, fed by `pgjax.running.sweep`'s per-segment reports: a live bar, or plain lines.

On a terminal a rich progress bar; elsewhere (a pipe, a log file) one plain line
every `every_seconds` or so. Either way, once the first of several chunks is
done, one line says how long the rest should take.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pgjax.running.segments import SegmentReport

PLAIN_EVERY_SECONDS = 30.0



def return_text(value: float) -> str:
    """A return for the progress line: one decimal from 10 up (500.0, 21.6), else three significant digits with
    a decimal point (0.96 on a 0-1 reward, not 1.0; 5.9, 1.0, -0.028)."""
    if not math.isfinite(value) or abs(value) >= 10:
        return f"{value:.1f}"
    text = f"{value:.3g}"
    return text if "." in text or "e" in text else f"{text}.0"

def format_duration(seconds: float) -> str:
    """0.34 -> "0.3 s", 12.3 -> "12 s", 754 -> "12 min 34 s", 45296 -> "12 h 34 min"."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def format_rate(steps_per_second: float) -> str:
    """Env steps per second in the unit that shows them: 1.234e6 -> "1.23 M steps/s", 4321 -> "4.3 k steps/s",
    500 -> "500 steps/s" (a slow environment's rate is never "0.00 M"); not finite -> "? steps/s"."""
    if not math.isfinite(steps_per_second):
        return "? steps/s"
    if steps_per_second >= 1e6:
        return f"{steps_per_second / 1e6:.2f} M steps/s"
    if steps_per_second >= 1e3:
        return f"{steps_per_second / 1e3:.1f} k steps/s"
    return f"{steps_per_second:.0f} steps/s"


class SweepProgress:
    """Work done of the total, env steps per second, mean return and time left.

    Work is counted in run-updates (one update of one run), so that chunks of
    different sizes, and the updates of several chunks, add up to what is left
    to train: `--num-updates 100` over 4 chunks is 100 updates of each run, not
    400. Use as a context manager and pass `report` as `train_sweep(on_segment=...)`.

    Args:
      work: the run-updates to train: each chunk's real runs times its updates, added up.
      console: where to print.
      mode: "bar" (a live rich bar: a terminal), "lines" (a plain line every
        `every_seconds` at most, and after the last segment), "off" (nothing).
      enabled: False turns any mode off (`--quiet`).
      every_seconds: least time between two plain lines.
      clock: seconds, monotonic (for tests).
    """

    def __init__(self, work: int, console: Console, mode: Literal["bar", "lines", "off"] = "bar", *,
                 enabled: bool = True, every_seconds: float = PLAIN_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        mode = mode if enabled else "off"
        self.mode, self.console, self.total = mode, console, max(1, work)
        self.every_seconds, self.clock = every_seconds, clock
        self.done, self.started, self.last_line = 0, clock(), None
        self.trained_work, self.trained_seconds = 0, 0.0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[speed]}"),
            TextColumn("return {task.fields[mean_return]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=mode != "bar",
        )
        self._task = self._progress.add_task("compiling", total=self.total, speed="", mean_return="-")

    def __enter__(self) -> SweepProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def seconds_left(self) -> float:
        """Time the work left should take at the speed trained so far (compiles left out)."""
        return self.trained_seconds / max(1, self.trained_work) * (self.total - self.done)

    def report(self, report: SegmentReport) -> None:
        work = len(report.chunk.positions) * report.new_updates
        self.done += work
        if report.restored:
            self._progress.update(self._task, advance=work)
            return
        self.trained_work += work
        self.trained_seconds += report.seconds
        speed = report.env_steps / report.seconds if report.seconds > 0 else math.nan
        several = report.num_chunks > 1
        # where the training is: a chunk's updates, and the return of that chunk's runs (it restarts low in
        # the next chunk, whose runs start afresh)
        where = (f"chunk {report.chunk.index + 1}/{report.num_chunks} at update {report.updates_done}/"
                 f"{report.num_updates}" if several else "training")
        mean_return = return_text(report.mean_return) + (f" (chunk {report.chunk.index + 1})" if several else "")
        bar_text = where if several else f"updates {report.updates_done}/{report.num_updates}"
        self._progress.update(self._task, advance=work, description=bar_text, speed=format_rate(speed),
                              mean_return=mean_return)
        first_chunk_done = report.chunk.index == 0 and report.updates_done == report.num_updates
        if first_chunk_done and several and self.mode != "off":
            self.console.print(
                f"chunk 1 of {report.num_chunks} trained in {format_duration(self.trained_seconds)}; the other "
                f"{report.num_chunks - 1} should take about {format_duration(self.seconds_left())}", soft_wrap=True)
        now = self.clock()
        due = self.last_line is None or now - self.last_line >= self.every_seconds
        if self.mode == "lines" and (due or self.done == self.total):
            self.last_line = now
            elapsed = now - self.started
            time_left = f", about {format_duration(self.seconds_left())} left" if self.done < self.total else ""
            share = f"{self.done / self.total:.0%}"
            done = (f"{share} of the runs' updates" if several else
                    f"{report.updates_done:,}/{report.num_updates:,} updates ({share})")
            self.console.print(
                f"progress: {done} | {where} | {format_rate(speed)} | return {mean_return} | "
                f"{format_duration(elapsed)} elapsed{time_left}", soft_wrap=True)


def rung_progress(console: Console, mode: str, plan, num_seeds: int):
    """`train_halving`'s rung_progress for the rungs of `plan` (a `pgjax.running.halving.HalvingPlan`): a line per
    rung, then `SweepProgress` over the rung's chunks (`mode` as its)."""
    @contextlib.contextmanager
    def progress(rung: int, configurations: int, num_chunks: int, work: int, note: str = ""):
        if mode != "off":
            packing = f" | {note}" if note else f" ({num_chunks} chunk{'s' * (num_chunks > 1)})"
            console.print(f"rung {rung + 1}/{plan.rungs}: {configurations} configuration"
                          f"{'s' * (configurations > 1)} x {num_seeds} seeds to {plan.rung_updates[rung]} updates"
                          f"{packing}", soft_wrap=True)
        with SweepProgress(work, console, mode) as bar:
            yield bar.report

    return progress
