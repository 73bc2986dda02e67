"""Progress of long jobs (issue 22): per-case lines with elapsed time and an ETA in the job's log, and a progress
bar on the terminal when the job has one (a local run; never on SLURM, whose jobs have no terminal).

At the paper's sizes one perturbation job runs for hours; its log used to say nothing until a method ended. A line
is written for the first and the last case and otherwise at most every `every` seconds, so a log stays readable
for thousands of cases.
"""

from __future__ import annotations

import logging
import sys
import time

EVERY_SECONDS = 30.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts done items of `total`; `update(n)` logs "<label>: k/total cases, elapsed, ETA" when due."""

    def __init__(self, total: int, label: str, log: logging.Logger, unit: str = "cases",
                 every: float = EVERY_SECONDS, bar: bool | None = None, clock=time.perf_counter):
        self.total, self.label, self.log, self.unit, self.every = int(total), label, log, unit, every
        self.clock = clock
        self.done, self.start = 0, clock()
        self.last = -float("inf")
        terminal = sys.__stderr__
        use_bar = bar if bar is not None else bool(terminal is not None and terminal.isatty())
        self.bar = None
        if use_bar and self.total > 1:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=label, unit=unit[:-1] if unit.endswith("s") else unit,
                            file=terminal, leave=False, dynamic_ncols=True)

    def line(self) -> str:
        elapsed = self.clock() - self.start
        text = f"{self.label}: {self.done}/{self.total} {self.unit}, elapsed {_clock(elapsed)}"
        if 0 < self.done < self.total:
            text += f", ETA {_clock(elapsed / self.done * (self.total - self.done))}"
        return text

    def update(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.bar is not None:
            self.bar.update(n)
        now = self.clock()
        if self.done == 1 or self.done >= self.total or now - self.last >= self.every:
            self.last = now
            self.log.info(self.line())
        if self.done >= self.total and self.bar is not None:
            self.bar.close()
            self.bar = None
