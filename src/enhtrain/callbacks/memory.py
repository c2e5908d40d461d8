"""Memory Monitor
==============

Logs the training process's host memory and, on CUDA, the device memory held by PyTorch.

"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import psutil
import torch
from lightning.pytorch.callbacks.callback import Callback
from typing_extensions import override

from enhtrain.callbacks._logging import is_logging_step

_MB = float(2**20)


class MemoryMonitor(Callback):
    """Log memory use every ``log_every_n_steps`` optimizer steps.

    Logged metrics, in MiB (1024 * 1024 bytes):

    - ``train/rss_mb``: resident set size of this process, from :mod:`psutil`.
    - ``train/cuda_allocated_mb``: memory occupied by tensors on the module's CUDA device
      (:func:`torch.cuda.memory_allocated`). Only when the module is on a CUDA device, as are the next two.
    - ``train/cuda_reserved_mb``: memory held by PyTorch's caching allocator
      (:func:`torch.cuda.memory_reserved`).
    - ``train/cuda_peak_mb``: the highest ``cuda_allocated_mb`` since the process started or since the last
      :func:`torch.cuda.reset_peak_memory_stats` (:func:`torch.cuda.max_memory_allocated`). The callback never
      resets the peak itself, so other code reading it is not disturbed.

    All of these read counters the OS or the allocator already keeps: no device synchronisation, and nothing
    is read on steps that are not logged. Metrics go to ``trainer.loggers`` with
    ``step=trainer.global_step``.

    Args:
        log_every_n_steps: Log every this many optimizer steps. ``None`` follows
            ``trainer.log_every_n_steps``; ``0`` disables logging.

    Raises:
        ValueError: If ``log_every_n_steps`` is negative.

    Example::

        # config.yaml
        experiment:
          callbacks:
            memory: {log_every_n_steps: 100}

        # or, with Lightning's own syntax
        trainer:
          callbacks:
            - class_path: enhtrain.callbacks.MemoryMonitor
              init_args: {log_every_n_steps: 100}

    """

    def __init__(self, log_every_n_steps: int | None = None) -> None:
        if log_every_n_steps is not None and log_every_n_steps < 0:
            raise ValueError(f"`log_every_n_steps` must be >= 0 or None, got {log_every_n_steps}.")
        self.log_every_n_steps = log_every_n_steps
        self._process: psutil.Process | None = None
        self._last_logged_step = -1

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Not in ``__init__``: a callback created before a fork must read the process it runs in.
        self._process = psutil.Process()

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._should_log(trainer):
            return
        metrics = self.memory_stats(pl_module.device)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self._last_logged_step = trainer.global_step

    def memory_stats(self, device: torch.device) -> dict[str, float]:
        """Read the current memory figures.

        Args:
            device: The device of the module; CUDA figures are included only for a CUDA device.

        Returns:
            The metrics this callback logs, keyed by their names.

        Example::

            >>> stats = MemoryMonitor().memory_stats(torch.device("cpu"))
            >>> stats["train/rss_mb"] > 0
            True

        """
        if self._process is None:
            self._process = psutil.Process()
        metrics = {"train/rss_mb": self._process.memory_info().rss / _MB}
        if device.type == "cuda":
            metrics["train/cuda_allocated_mb"] = torch.cuda.memory_allocated(device) / _MB
            metrics["train/cuda_reserved_mb"] = torch.cuda.memory_reserved(device) / _MB
            metrics["train/cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / _MB
        return metrics

    def _should_log(self, trainer: pl.Trainer) -> bool:
        return is_logging_step(trainer, self.log_every_n_steps, self._last_logged_step)
