"""Step Throughput
===============

Logs how fast training runs and how much of the wall time is spent outside the training step.

"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from typing_extensions import override

from enhtrain.callbacks._logging import is_logging_step


class StepThroughput(Callback):
    r"""Log training throughput every ``log_every_n_steps`` optimizer steps.

    Logged metrics, averaged over the batches since the previous log:

    - ``train/samples_per_sec``: samples processed per second by this process.
    - ``train/steps_per_sec``: training batches per second.
    - ``train/step_time``: mean seconds spent inside a training batch (from ``on_train_batch_start`` to
      ``on_train_batch_end``: forward, backward and optimizer step).
    - ``train/data_time_share``: fraction of the wall time spent between the end of one batch and the start of
      the next one, which is mostly waiting for data. Epoch boundaries and validation runs are left out.

    Metrics go straight to ``trainer.loggers`` with ``step=trainer.global_step``, so the callback does nothing
    when the trainer has no logger. Each batch costs two ``time.perf_counter()`` calls and finding the batch
    size; the rates are computed only on logging steps.

    Args:
        log_every_n_steps: Log every this many optimizer steps. ``None`` follows
            ``trainer.log_every_n_steps``; ``0`` disables logging.
        batch_size: Samples per batch. ``None`` infers it from the batch: the length of the first tensor found
            in it, searching tuples, lists and dict values in order. If no tensor is found,
            ``train/samples_per_sec`` is not logged.
        sync_cuda: When the module is on a CUDA device, synchronise at the end of each batch so that the step
            and data times measure the device's work rather than the host's queueing of it. Set ``False`` to
            avoid the per-batch synchronisation at the cost of less exact ``step_time`` and
            ``data_time_share``. Has no effect on other devices.

    Raises:
        ValueError: If ``log_every_n_steps`` is negative or ``batch_size`` is not positive.

    Example::

        # config.yaml
        experiment:
          callbacks:
            throughput: {log_every_n_steps: 20}

        # or, with Lightning's own syntax
        trainer:
          callbacks:
            - class_path: enhtrain.callbacks.StepThroughput
              init_args: {log_every_n_steps: 20, batch_size: 64}

    """

    def __init__(
        self, log_every_n_steps: int | None = None, batch_size: int | None = None, sync_cuda: bool = True
    ) -> None:
        if log_every_n_steps is not None and log_every_n_steps < 0:
            raise ValueError(f"`log_every_n_steps` must be >= 0 or None, got {log_every_n_steps}.")
        if batch_size is not None and batch_size <= 0:
            raise ValueError(f"`batch_size` must be a positive integer or None, got {batch_size}.")
        self.log_every_n_steps = log_every_n_steps
        self.batch_size = batch_size
        self.sync_cuda = sync_cuda
        self._batch_start: float | None = None
        self._last_end: float | None = None
        self._last_logged_step = -1
        self._reset_window()

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset_window()
        self._last_logged_step = trainer.global_step

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # An epoch's first fetch includes creating the loader's iterator (and workers): not a per-step cost.
        self._last_end = None

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self._data_time += now - self._last_end
        self._batch_start = now

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._batch_start is None:
            return
        if self.sync_cuda and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        now = time.perf_counter()
        self._compute_time += now - self._batch_start
        self._batches += 1
        if self._samples is not None:
            size = self.batch_size if self.batch_size is not None else _infer_batch_size(batch)
            self._samples = None if size is None else self._samples + size

        if self._should_log(trainer):
            self._log(trainer)
        # Taken after logging so that the logging itself does not count as data time of the next batch.
        self._last_end = time.perf_counter()

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Validation (and the checkpointing after it) runs between two training batches: not data time.
        self._last_end = None

    def _should_log(self, trainer: pl.Trainer) -> bool:
        return is_logging_step(trainer, self.log_every_n_steps, self._last_logged_step)

    def _log(self, trainer: pl.Trainer) -> None:
        elapsed = self._compute_time + self._data_time
        if elapsed <= 0.0:
            return
        metrics = {
            "train/steps_per_sec": self._batches / elapsed,
            "train/step_time": self._compute_time / self._batches,
            "train/data_time_share": self._data_time / elapsed,
        }
        if self._samples is not None:
            metrics["train/samples_per_sec"] = self._samples / elapsed
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self._last_logged_step = trainer.global_step
        self._reset_window()

    def _reset_window(self) -> None:
        self._batches = 0
        self._samples: int | None = 0
        self._compute_time = 0.0
        self._data_time = 0.0


def _infer_batch_size(batch: Any) -> int | None:
    """Length of the first tensor with at least one dimension found depth-first in ``batch``."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.ndim > 0 else None
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            size = _infer_batch_size(item)
            if size is not None:
                return size
    return None
