"""The callback that marks a process's first training step (see :mod:`benchmarks.first_step`).

Kept apart from the harness so that the measured processes import nothing but this module and Lightning's
``Callback``, which both CLIs have imported by the time they read their config.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["FirstStepMark"]

_before_exit: list[Any] = []  # called at the first step, before the process ends (profile dumps)


class FirstStepMark(Callback):
    """Writes the wall time of ``on_fit_start`` and of the first ``on_train_batch_start`` into a JSON file.

    Args:
        output: The JSON file to write.
        exit_after: End the process right after the first step's mark (``os._exit(0)``): what comes after the
            first step is not measured, so it need not be run.
    """

    def __init__(self, output: str, exit_after: bool = True) -> None:
        super().__init__()
        self.output = output
        self.exit_after = exit_after
        self._fit_start_wall: float | None = None
        self._written = False

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Note when ``fit`` started."""
        self._fit_start_wall = time.time()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        """Write the mark at the first step (and end the process when asked)."""
        if self._written:
            return
        first = time.time()
        record = {
            "first_step_wall": first,
            "fit_start_wall": self._fit_start_wall,
            "cpu_s": time.process_time() + os.times().children_user + os.times().children_system,
            "modules": len(sys.modules),
            "callbacks": [type(c).__name__ for c in trainer.callbacks],
            "loggers": [type(lg).__name__ for lg in trainer.loggers],
            "pid": os.getpid(),
        }
        with open(self.output, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        self._written = True
        for hook in _before_exit:
            hook()
        if self.exit_after:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

