"""The Lightning callback that times each training step (see :mod:`benchmarks.records`)."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from benchmarks.records import StepRecord

__all__ = ["StepTimer"]


class StepTimer(Callback):
    """Records the wall time of every training step and the final ``train/loss`` into a JSON file.

    Added to ``trainer.callbacks`` of every Lightning variant (through the config for the CLIs), so that the
    components under test are left exactly as their defaults make them.

    Args:
        output: The JSON file to write when training ends.
        warmup: Steps left out of the statistics (and, with ``track_memory``, of the memory peak).
        track_memory: Record the peak resident memory of the steps after the warm-up.
        count_from: Count function calls per step from this step on (see :class:`StepRecord`).
        count_steps: How many steps to count.
        loss_key: The logged metric reported as the final loss.
    """

    def __init__(
        self,
        output: str,
        warmup: int = 5,
        track_memory: bool = False,
        count_from: int | None = None,
        count_steps: int = 0,
        loss_key: str = "train/loss",
    ) -> None:
        super().__init__()
        self.record = StepRecord(output, warmup, track_memory, count_from, count_steps)
        self.loss_key = loss_key
        self._fit_start_wall: float | None = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Note when ``fit`` started."""
        self._fit_start_wall = time.time()

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Record the start of the step."""
        self.record.start(batch_idx)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Record the end of the step."""
        self.record.end()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write the record."""
        value = trainer.callback_metrics.get(self.loss_key)
        self.record.extra["fit_start_wall"] = self._fit_start_wall
        self.record.extra["global_step"] = trainer.global_step
        self.record.extra["callbacks"] = [type(c).__name__ for c in trainer.callbacks]
        self.record.extra["loggers"] = [type(lg).__name__ for lg in trainer.loggers]
        self.record.extra["checkpoint_io"] = type(trainer.strategy.checkpoint_io).__name__
        self.record.write(None if value is None else float(value))
