"""The ``wall_clock`` profiler: total wall time per action."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

from lightning.pytorch.profilers import Profiler

__all__ = ["WallClockProfiler"]


class WallClockProfiler(Profiler):
    """Record the total wall time and the number of calls of every profiled action.

    Lightning calls :meth:`describe` when a stage ends; the report, one line per action sorted by total
    time, is then written to ``<dirpath>/<stage>-<filename>.txt`` (``fit-wall_clock.txt`` in a run's
    ``profiler/`` folder), or logged when no ``filename`` is set. enhtrain passes ``dirpath`` and
    ``filename``.

    Args:
        dirpath: The folder the report is written to.
        filename: The report's base name; the stage and ``.txt`` are added.
        min_total: Leave out actions whose total time is below this many seconds.
    """

    def __init__(
        self, dirpath: str | Path | None = None, filename: str | None = None, min_total: float = 0.0
    ) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.min_total = min_total
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._started: dict[str, float] = {}

    def start(self, action_name: str) -> None:
        """Start timing ``action_name``."""
        self._started[action_name] = time.perf_counter()

    def stop(self, action_name: str) -> None:
        """Stop timing ``action_name`` and add the time to its total."""
        started = self._started.pop(action_name, None)
        if started is None:
            return
        self.totals[action_name] += time.perf_counter() - started
        self.calls[action_name] += 1

    def summary(self) -> str:
        """Return the report: total seconds, calls and action, longest first."""
        rows = sorted(
            (
                (total, self.calls[action], action)
                for action, total in self.totals.items()
                if total >= self.min_total
            ),
            reverse=True,
        )
        stage = f"{self._stage.upper()} " if self._stage else ""
        lines = [f"{stage}Wall-clock profiler report", f"{'total_s':>12}  {'calls':>7}  action"]
        lines += [f"{total:12.6f}  {calls:7d}  {action}" for total, calls, action in rows]
        return os.linesep.join(lines) + os.linesep
