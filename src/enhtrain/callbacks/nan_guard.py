"""NaN Guard
=========

Detects a non-finite loss or non-finite gradients and skips the step, stops training or raises.

"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.callback import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch.optim import Optimizer
from typing_extensions import override

_Action = Literal["skip", "stop", "raise"]
_ACTIONS = ("skip", "stop", "raise")


class NaNGuard(Callback):
    r"""Act on a non-finite (NaN or infinite) loss or gradient before the optimizer applies it.

    Where it looks, on every ``check_every_n_steps``-th optimizer step:

    1. Every loss passed to backward, in ``on_before_backward``: the loss of each batch in automatic
       optimisation (including accumulated batches) and of each micro-batch given to ``manual_backward`` in
       manual optimisation. This costs one element-wise check of a scalar and no synchronisation.
    2. Every gradient the optimizer is about to apply, in ``on_before_optimizer_step``, which Lightning calls
       inside each optimizer step in automatic and in manual optimisation (inside the ``step()`` of an
       optimizer from ``self.optimizers()``). This is the one host-device synchronisation the check costs,
       together with the losses of step 1. The gradient check is left out when a gradient scaler is active
       (``precision: 16-mixed``): the scaler already skips steps whose scaled gradients overflow, and those
       overflows are routine.
    3. If no loss went through backward hooks in a batch (a manual module calling ``loss.backward()`` itself),
       at the end of the batch: the loss the training step returned, or else the logged ``loss_key`` metric in
       ``trainer.callback_metrics``. By then the optimizer step has been taken, so ``"skip"`` can only warn.

    Actions:

    - ``"skip"``: the gradients of the step are set to ``None``. PyTorch optimizers leave a parameter without
      a gradient untouched, moments and step counts included, so the step is a true no-op (zeroing the
      gradients instead would still move the weights of momentum-based optimizers such as Adam). The
      learning-rate scheduler and ``trainer.global_step`` still advance. Skipped steps are counted and the
      running count is logged as ``train/nan_skipped`` whenever it grows.
    - ``"stop"``: the step is dropped the same way, so the weights stay finite; at the end of the batch a
      checkpoint ``nan-step=<step>.ckpt`` is saved in ``trainer.checkpoint_callback.dirpath`` (or
      ``<trainer.default_root_dir>/checkpoints`` without one), where ``<step>`` is the optimizer step whose
      loss or gradients were non-finite, and ``trainer.should_stop`` is set with a warning.
    - ``"raise"``: raises :class:`FloatingPointError` naming the step and what was non-finite.

    Under a distributed strategy the decision is reduced across processes (one small all-reduce per checked
    step), so every process skips, stops or raises together.

    Args:
        action: What to do on a non-finite loss or gradient: ``"skip"``, ``"stop"`` or ``"raise"``.
        check_every_n_steps: Check the optimizer steps whose ``trainer.global_step`` (counted before the step)
            is a multiple of this.
        loss_key: The logged metric to check when no loss passes through backward hooks (case 3 above).

    Raises:
        ValueError: If ``action`` is unknown or ``check_every_n_steps`` < 1.

    Example::

        # config.yaml
        experiment:
          callbacks:
            nan_guard: {action: skip}

        # or, with Lightning's own syntax
        trainer:
          callbacks:
            - class_path: enhtrain.callbacks.NaNGuard
              init_args: {action: stop, check_every_n_steps: 10}

    """

    def __init__(
        self, action: _Action = "stop", check_every_n_steps: int = 1, loss_key: str = "train/loss"
    ) -> None:
        if action not in _ACTIONS:
            raise ValueError(f"`action` must be one of {', '.join(map(repr, _ACTIONS))}, got {action!r}.")
        if check_every_n_steps < 1:
            raise ValueError(f"`check_every_n_steps` must be >= 1, got {check_every_n_steps}.")
        self.action = action
        self.check_every_n_steps = check_every_n_steps
        self.loss_key = loss_key
        self.skipped = 0
        self._names: dict[int, str] = {}
        self._loss_bad: torch.Tensor | None = None
        self._saw_loss = False
        self._batch_step = 0
        self._handled = False
        self._skipped_in_batch = False
        self._stop_reason: str | None = None
        self._stop_step = 0

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._names = {id(param): name for name, param in pl_module.named_parameters()}

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_step = trainer.global_step
        self._saw_loss = False
        self._handled = False
        self._skipped_in_batch = False

    @override
    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        self._saw_loss = True
        if not self._should_check(trainer.global_step):
            return
        # Kept on the device and folded across micro-batches: read once, in ``on_before_optimizer_step``.
        bad = ~torch.isfinite(loss.detach()).all()
        self._loss_bad = bad if self._loss_bad is None else self._loss_bad | bad.to(self._loss_bad.device)

    @override
    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Optimizer
    ) -> None:
        loss_bad, self._loss_bad = self._loss_bad, None
        step = trainer.global_step
        if not self._should_check(step):
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        # A gradient scaler skips overflowing steps itself; its overflows are not a diverging run.
        check_grads = getattr(trainer.precision_plugin, "scaler", None) is None
        flags: list[torch.Tensor] = []
        if loss_bad is not None:
            flags.append(loss_bad)
        if check_grads and params:
            flags.append(~torch.isfinite(_max_abs([p.grad for p in params])))
        if not flags:
            return
        device = flags[0].device
        local_bad = bool(torch.stack([flag.to(device) for flag in flags]).any())
        if not trainer.strategy.reduce_boolean_decision(local_bad, all=False):
            return

        what = self._describe(loss_bad is not None and bool(loss_bad), params if check_grads else [])
        self._handled = True
        if self.action == "raise":
            raise FloatingPointError(f"NaNGuard: {what} at step {step}.")
        # Parameters without a gradient are left untouched by torch optimizers, moments included.
        for param in params:
            param.grad = None
        if self.action == "skip":
            self.skipped += 1
            self._skipped_in_batch = True
            rank_zero_warn(f"NaNGuard: {what} at step {step}; skipped the optimizer step.")
        else:
            self._stop_reason = f"{what} at step {step}"
            self._stop_step = step

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._saw_loss and not self._handled and self._should_check(self._batch_step):
            self._check_reported_loss(trainer, outputs)
        if self._skipped_in_batch:
            for logger in trainer.loggers:
                logger.log_metrics({"train/nan_skipped": float(self.skipped)}, step=trainer.global_step)
        if self._stop_reason is not None:
            self._save_and_stop(trainer)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped = int(state_dict.get("skipped", 0))

    def _should_check(self, step: int) -> bool:
        return step % self.check_every_n_steps == 0

    def _check_reported_loss(self, trainer: pl.Trainer, outputs: Any) -> None:
        value = _loss_from_outputs(outputs)
        if value is None:
            value = trainer.callback_metrics.get(self.loss_key)
        local_bad = value is not None and not bool(torch.isfinite(torch.as_tensor(value)).all())
        if not trainer.strategy.reduce_boolean_decision(local_bad, all=False):
            return
        step = self._batch_step
        what = f"non-finite loss ({_format(value)})" if local_bad else "non-finite loss on another process"
        if self.action == "raise":
            raise FloatingPointError(f"NaNGuard: {what} at step {step}.")
        if self.action == "stop":
            self._stop_reason = f"{what} at step {step}"
            self._stop_step = step
        else:
            rank_zero_warn(
                f"NaNGuard: {what} at step {step}, seen only after the optimizer step was applied, so it"
                " could not be skipped. Pass the loss to `self.manual_backward` so NaNGuard sees it in time."
            )

    def _save_and_stop(self, trainer: pl.Trainer) -> None:
        callback = trainer.checkpoint_callback
        dirpath = getattr(callback, "dirpath", None) or os.path.join(trainer.default_root_dir, "checkpoints")
        path = os.path.join(dirpath, f"nan-step={self._stop_step}.ckpt")
        trainer.save_checkpoint(path)
        trainer.should_stop = True
        rank_zero_warn(f"NaNGuard: {self._stop_reason}; saved {path} and stopped training.")
        self._stop_reason = None

    def _describe(self, loss_bad: bool, params: list[torch.nn.Parameter]) -> str:
        """Name what was non-finite; runs only once something was, so its cost does not matter."""
        bad_names = [
            self._names.get(id(p), "<unnamed>")
            for p in params
            if p.grad is not None and not bool(torch.isfinite(_max_abs([p.grad])))
        ]
        parts = []
        if loss_bad:
            parts.append("non-finite loss")
        if bad_names:
            shown = ", ".join(bad_names[:5]) + (
                f" (+{len(bad_names) - 5} more)" if len(bad_names) > 5 else ""
            )
            parts.append(f"non-finite gradients in {shown}")
        return " and ".join(parts) or "non-finite loss or gradients on another process"


def _max_abs(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Largest absolute value over ``tensors``: NaN if any is NaN, inf if any is infinite; cannot overflow."""
    dense = [t.detach().coalesce().values() if t.is_sparse else t.detach() for t in tensors]
    dense = [t for t in dense if t.numel()]
    if not dense:
        return torch.tensor(0.0)
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if get_total_norm is not None:
        # Groups by device and dtype and uses fused kernels where available.
        return get_total_norm(dense, norm_type=math.inf)
    device = dense[0].device
    return torch.stack([torch.linalg.vector_norm(t, math.inf).to(device) for t in dense]).amax()


def _loss_from_outputs(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        return outputs.get("loss")
    return None


def _format(value: Any) -> str:
    tensor = torch.as_tensor(value)
    return f"{tensor.item():g}" if tensor.numel() == 1 else "tensor with non-finite values"
