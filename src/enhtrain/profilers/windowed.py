"""Lightning's PyTorch profiler with a window: profile training steps ``start_step`` to ``end_step`` only."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.profilers import PyTorchProfiler

__all__ = ["WindowedPyTorchProfiler"]


class WindowedPyTorchProfiler(PyTorchProfiler):
    """``PyTorchProfiler`` that records only the steps in ``[start_step, end_step)``.

    Example::

        experiment:
          profiler: {name: pytorch, start_step: 5, end_step: 10}

    Args:
        dirpath: Where reports are written (the run's ``profiler/`` by default).
        filename: Report file name prefix.
        start_step: First profiled step (0-based); ``None`` with ``end_step`` unset profiles every step.
        end_step: Step at which profiling stops (exclusive).
        **kwargs: Passed to :class:`~lightning.pytorch.profilers.PyTorchProfiler`.

    Raises:
        ValueError: If the window is empty or negative.
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str | None = None,
        start_step: int | None = None,
        end_step: int | None = None,
        **kwargs: Any,
    ) -> None:
        if start_step is not None or end_step is not None:
            import torch

            start = start_step or 0
            if end_step is None or end_step <= start or start < 0:
                raise ValueError(
                    f"profiler window start_step={start_step}, end_step={end_step} is empty: "
                    "give 0 <= start_step < end_step"
                )
            # One warm-up step before the window keeps torch.profiler from warning and measures steadily.
            warmup = 1 if start >= 1 else 0
            kwargs["schedule"] = torch.profiler.schedule(
                skip_first=start - warmup, wait=0, warmup=warmup, active=end_step - start, repeat=1
            )
        self.start_step, self.end_step = start_step, end_step
        super().__init__(dirpath=dirpath, filename=filename, **kwargs)
