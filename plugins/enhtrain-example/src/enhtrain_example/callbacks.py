"""The ``epoch_timer`` callback."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

__all__ = ["EpochTimer"]


class EpochTimer(Callback):
    """Time every training epoch and log it as ``train/epoch_time`` (seconds).

    An epoch's time runs from ``on_train_epoch_start`` to ``on_train_epoch_end``, so it includes the
    validation run at the end of the epoch. Each time is sent to every logger of the trainer with
    ``step=trainer.global_step`` and appended to :attr:`times`, which is saved in checkpoints so that a
    resumed run keeps its history.

    Args:
        metric_name: The name the time is logged under.

    Example::

        experiment:
          callbacks:
            epoch_timer: {}
    """

    def __init__(self, metric_name: str = "train/epoch_time") -> None:
        self.metric_name = metric_name
        self.times: list[float] = []
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock."""
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Stop the clock, keep the time and log it."""
        if self._start is None:
            return
        elapsed = time.perf_counter() - self._start
        self._start = None
        self.times.append(elapsed)
        for logger in trainer.loggers:
            logger.log_metrics({self.metric_name: elapsed}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        """Return the epoch times, for checkpoints."""
        return {"times": list(self.times)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the epoch times of a resumed run."""
        self.times = [float(t) for t in state_dict.get("times", [])]
