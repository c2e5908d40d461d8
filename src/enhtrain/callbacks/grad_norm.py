"""Gradient Norm Monitor
=====================

Logs the norm of the gradients each optimizer step applies, in automatic and manual optimisation alike.

"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from torch.optim import Optimizer
from typing_extensions import override


class GradNormMonitor(Callback):
    r"""Log gradient norms every ``every_n_steps`` optimizer steps.

    Logged metrics:

    - ``train/grad_norm``: the norm of all gradients the optimizer is about to apply, taken as one vector.
      With several optimizers each gets its own, ``train/grad_norm_<optimizer index>``.
    - ``train/grad_norm/<parameter name>``: the norm of each parameter's gradient, named as in
      :meth:`~torch.nn.Module.named_parameters` (when ``per_layer`` is true).

    The norms are read in ``on_before_optimizer_step``, which Lightning calls inside every optimizer step: in
    automatic optimisation after the last accumulated batch, and in manual optimisation inside the
    ``step()`` of an optimizer from ``self.optimizers()`` (not one taken with ``use_pl_optimizer=False``).
    They are therefore the norms of the gradients actually applied, summed over all micro-batches or
    accumulated batches, and unscaled under mixed precision. In automatic optimisation they are taken before
    Lightning's own gradient clipping (``trainer.gradient_clip_val``); in manual optimisation after any
    clipping the module does before ``step()``. Parameters without a gradient are left out.

    Norms are computed only on logging steps, with one host-device synchronisation for all of them, and
    logged to ``trainer.loggers`` at the end of the batch with ``step=trainer.global_step``, which then counts
    the step just taken. Nothing is computed when the trainer has no logger.

    Args:
        every_n_steps: Log the norms of every this many optimizer steps (the steps that bring
            ``trainer.global_step`` to a multiple of it).
        per_layer: Also log one norm per parameter.
        norm_type: Order of the norm: ``2.0`` for the L2 norm, ``float("inf")`` for the largest absolute
            value.

    Raises:
        ValueError: If ``every_n_steps`` < 1 or ``norm_type`` <= 0.

    Example::

        # config.yaml
        experiment:
          callbacks:
            grad_norm: {every_n_steps: 25, per_layer: false}

        # or, with Lightning's own syntax
        trainer:
          callbacks:
            - class_path: enhtrain.callbacks.GradNormMonitor
              init_args: {every_n_steps: 25, norm_type: 2.0}

    """

    def __init__(self, every_n_steps: int = 50, per_layer: bool = True, norm_type: float = 2.0) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"`every_n_steps` must be an integer >= 1, got {every_n_steps!r}.")
        norm_type = float(norm_type)
        if not norm_type > 0:
            raise ValueError(f"`norm_type` must be > 0 (or inf), got {norm_type}.")
        self.every_n_steps = every_n_steps
        self.per_layer = per_layer
        self.norm_type = norm_type
        self._names: dict[int, str] = {}
        self._pending: dict[str, float] = {}

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Built once, after the strategy has wrapped the module, so the per-step lookup is a dict access.
        self._names = {id(param): name for name, param in pl_module.named_parameters()}
        self._pending = {}

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        if not trainer.loggers or (trainer.global_step + 1) % self.every_n_steps != 0:
            return
        names: list[str] = []
        norms: list[torch.Tensor] = []
        for group_idx, group in enumerate(optimizer.param_groups):
            for param_idx, param in enumerate(group["params"]):
                if param.grad is None:
                    continue
                names.append(self._names.get(id(param), f"group_{group_idx}.param_{param_idx}"))
                norms.append(_grad_norm(param.grad, self.norm_type))
        if not norms:
            return
        device = norms[0].device
        stacked = torch.stack([norm.to(device) for norm in norms])
        total = torch.linalg.vector_norm(stacked, self.norm_type)
        # A single transfer for every value keeps this to one synchronisation on accelerators.
        *values, total_value = torch.cat([stacked, total.reshape(1)]).tolist()

        self._pending[self._total_key(trainer, optimizer)] = total_value
        if self.per_layer:
            per_layer = zip(names, values, strict=True)
            self._pending.update({f"train/grad_norm/{name}": value for name, value in per_layer})

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._pending:
            return
        for logger in trainer.loggers:
            logger.log_metrics(self._pending, step=trainer.global_step)
        self._pending = {}

    @staticmethod
    def _total_key(trainer: pl.Trainer, optimizer: Optimizer) -> str:
        if len(trainer.optimizers) <= 1:
            return "train/grad_norm"
        index = next((i for i, opt in enumerate(trainer.optimizers) if opt is optimizer), 0)
        return f"train/grad_norm_{index}"


def _grad_norm(grad: torch.Tensor, norm_type: float) -> torch.Tensor:
    """Norm of one gradient, in at least single precision so half-precision norms do not overflow."""
    grad = grad.detach()
    if grad.is_sparse:
        grad = grad.coalesce().values()
    dtype = torch.float32 if grad.dtype in (torch.float16, torch.bfloat16) else None
    return torch.linalg.vector_norm(grad, norm_type, dtype=dtype)
