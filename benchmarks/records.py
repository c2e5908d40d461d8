"""Step records shared by every training variant, free of Lightning so the vanilla loop can use them.

A step's time is the interval between the starts of two consecutive training batches of the same epoch, so
it includes everything that happens once per step: the data fetch, forward, backward, optimiser step, every
callback's hooks, logging and the progress bar. The first ``warmup`` steps and intervals that span an epoch
boundary or a validation run are left out.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["StepRecord", "peak_rss_bytes", "reset_peak_rss", "rss_bytes", "step_stats"]

def rss_bytes() -> int | None:
    """The resident set size of this process (``VmRSS``), or ``None`` off Linux."""
    return _status_field("VmRSS")


def peak_rss_bytes() -> int | None:
    """The peak resident set size of this process since start or the last :func:`reset_peak_rss`."""
    return _status_field("VmHWM")


def reset_peak_rss() -> bool:
    """Reset the peak resident set size to the current one (Linux >= 4.0); ``False`` if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _status_field(name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class StepRecord:
    """Timestamps of the training steps of one run, written to a JSON file at the end.

    Args:
        output: The JSON file.
        warmup: Steps left out of the statistics; also the step at which the memory peak is reset.
        track_memory: Record the peak resident memory of the measured steps.
        count_from: Count the Python and C function calls of the main thread (``sys.setprofile``) from the
            start of this step on, for ``count_steps`` steps; the timed steps end where counting starts, since
            the profile hook slows the counted ones down.
        count_steps: How many steps to count.
    """

    def __init__(
        self,
        output: str,
        warmup: int = 5,
        track_memory: bool = False,
        count_from: int | None = None,
        count_steps: int = 0,
    ) -> None:
        self.output = output
        self.warmup = warmup
        self.track_memory = track_memory
        self.count_from = count_from
        self.count_steps = count_steps
        self.calls = 0
        self.counted_steps = 0
        self.starts: list[float] = []
        self.cpu_starts: list[float] = []
        self.ends: list[float] = []
        self.index: list[int] = []
        self.first_step_wall: float | None = None
        self.rss_before: int | None = None
        self.extra: dict[str, Any] = {}
        self.gc_objects: int | None = None
        self.gc_time = [0.0, 0.0, 0.0]
        self.gc_count = [0, 0, 0]
        self._gc_start: float | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._gc_start is not None:
            generation = info.get("generation", 0)
            self.gc_time[generation] += time.perf_counter() - self._gc_start
            self.gc_count[generation] += 1
            self._gc_start = None

    def _count(self, frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            self.calls += 1

    def start(self, batch_idx: int) -> None:
        """Record the start of a training step."""
        if self.first_step_wall is None:
            self.first_step_wall = time.time()
        if self.count_from is not None and self.count_steps > 0:
            step = len(self.starts)
            if step == self.count_from + self.count_steps:
                sys.setprofile(None)
                self.counted_steps = self.count_steps
            elif step == self.count_from:
                sys.setprofile(self._count)
        if len(self.starts) == self.warmup:
            self.gc_objects = len(gc.get_objects())
            gc.callbacks.append(self._on_gc)
            if self.track_memory:
                self.rss_before = rss_bytes()
                reset_peak_rss()
        self.index.append(batch_idx)
        self.cpu_starts.append(time.process_time())
        self.starts.append(time.perf_counter())

    def end(self) -> None:
        """Record the end of a training step's own work."""
        self.ends.append(time.perf_counter())

    def write(self, final_loss: float | None) -> None:
        """Write the record with the final training loss."""
        import torch

        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if sys.getprofile() == self._count:
            sys.setprofile(None)
        data = {
            "starts": self.starts,
            "cpu_starts": self.cpu_starts,
            "ends": self.ends,
            "index": self.index,
            "warmup": self.warmup,
            "first_step_wall": self.first_step_wall,
            "final_loss": final_loss,
            "torch_threads": torch.get_num_threads(),
            "pid": os.getpid(),
            "count_from": self.count_from,
            "calls_per_step": self.calls / self.counted_steps if self.counted_steps else None,
            "gc_objects": self.gc_objects,
            "gc_time_s": self.gc_time,
            "gc_count": self.gc_count,
            **self.extra,
        }
        if self.track_memory:
            peak = peak_rss_bytes()
            data["rss_before"] = self.rss_before
            data["peak_rss"] = peak
            data["peak_rss_increase"] = (
                peak - self.rss_before if peak is not None and self.rss_before is not None else None
            )
        Path(self.output).parent.mkdir(parents=True, exist_ok=True)
        Path(self.output).write_text(json.dumps(data), encoding="utf-8")


def step_stats(record: dict[str, Any]) -> dict[str, Any]:
    """Statistics of one run's step times.

    Args:
        record: The JSON written by :class:`StepRecord`.

    Returns:
        ``median_s``, ``mean_s``, ``p10_s`` and ``p90_s`` of the wall-clock step intervals after the warm-up,
        ``n`` intervals, ``cpu_median_s`` and ``cpu_mean_s`` of the same intervals in CPU time of the process (all
        its threads: robust to other processes competing for the cores), and ``compute_median_s``, the
        median wall time from a step's start to the end of its own work.
    """
    import statistics

    starts, index, ends = record["starts"], record["index"], record.get("ends") or []
    cpu = record.get("cpu_starts") or []
    warmup = record.get("warmup", 0)
    last = len(starts) - 1 if record.get("count_from") is None else min(len(starts) - 1, record["count_from"])
    kept = [i for i in range(warmup, last) if index[i + 1] == index[i] + 1]
    intervals = [starts[i + 1] - starts[i] for i in kept]
    cpu_intervals = [cpu[i + 1] - cpu[i] for i in kept] if len(cpu) == len(starts) else []
    compute = [ends[i] - starts[i] for i in range(warmup, min(last, len(ends)))]
    out: dict[str, Any] = {"n": len(intervals)}
    if intervals:
        ordered = sorted(intervals)
        out.update(
            median_s=statistics.median(intervals),
            mean_s=statistics.fmean(intervals),
            p10_s=ordered[int(0.1 * (len(ordered) - 1))],
            p90_s=ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        )
    else:
        out.update(median_s=None, mean_s=None, p10_s=None, p90_s=None)
    out["cpu_median_s"] = statistics.median(cpu_intervals) if cpu_intervals else None
    out["cpu_mean_s"] = statistics.fmean(cpu_intervals) if cpu_intervals else None
    out["compute_median_s"] = statistics.median(compute) if compute else None
    out["calls_per_step"] = record.get("calls_per_step")
    return out
