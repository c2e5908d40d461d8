"""A multi-layer perceptron that trains with manual optimisation and micro-batching."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

_TASKS = ("classification", "regression")
_CLIP_ALGORITHMS = ("norm", "value")
_DEFAULT_PLATEAU_MONITOR = "val/loss"


class MLPClassifier(LightningModule):
    """A fully connected network for classification or regression of flat (or flattened) features.

    With ``manual_optimization=True`` (the default) every training batch is split into micro-batches of
    ``micro_batch_size`` rows. Each micro-batch loss is scaled by its share of the batch's rows and
    back-propagated with :meth:`~lightning.pytorch.core.LightningModule.manual_backward`, so the accumulated
    gradient equals the gradient of the whole-batch mean loss; then the gradients are optionally clipped and
    the optimiser takes one step per batch. Learning-rate schedulers are stepped as Lightning would step them
    in automatic optimisation (their ``interval`` and ``frequency`` are honoured, and ``ReduceLROnPlateau``
    receives its monitored metric).

    With ``manual_optimization=False`` the model uses Lightning's automatic optimisation, so the Trainer's
    ``gradient_clip_val`` and ``accumulate_grad_batches`` apply.

    Metrics are logged as ``stage/metric``: ``train/loss``, ``val/loss``, ``test/loss``, plus ``val/acc`` and
    ``test/acc`` for classification or ``val/mae`` and ``test/mae`` for regression.

    Args:
        input_dim: Number of input features (inputs are flattened from the second dimension on).
        hidden_dims: Width of each hidden layer; ``None`` means ``(128, 64)``; an empty sequence gives a
            linear model.
        num_classes: Number of classes for classification; ignored for regression, which has one output.
        task: ``"classification"`` (cross-entropy on integer targets) or ``"regression"`` (mean squared error
            on float targets).
        dropout: Dropout probability after each hidden activation.
        lr: Learning rate of the default AdamW optimiser.
        weight_decay: Weight decay of the default AdamW optimiser.
        micro_batch_size: Rows per micro-batch in manual optimisation; ``None`` uses the whole batch.
        manual_optimization: Whether to use manual optimisation (micro-batching) or Lightning's automatic one.
        gradient_clip_val: Clip gradients at this value before each step in manual optimisation; ``None``
            disables clipping. In automatic optimisation use ``Trainer(gradient_clip_val=...)`` instead.
        gradient_clip_algorithm: ``"norm"`` to clip the total gradient norm, ``"value"`` to clip each element.

    Raises:
        ValueError: If an argument is out of range, or ``gradient_clip_val`` is set in automatic optimisation.

    """

    def __init__(
        self,
        input_dim: int = 64,
        hidden_dims: Sequence[int] | None = (128, 64),
        num_classes: int = 10,
        task: Literal["classification", "regression"] = "classification",
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        micro_batch_size: int | None = None,
        manual_optimization: bool = True,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: Literal["norm", "value"] = "norm",
    ) -> None:
        super().__init__()
        hidden_dims = [128, 64] if hidden_dims is None else [int(width) for width in hidden_dims]
        _validate_args(
            input_dim=input_dim,
            hidden_dims=hidden_dims,
            num_classes=num_classes,
            task=task,
            dropout=dropout,
            lr=lr,
            weight_decay=weight_decay,
            micro_batch_size=micro_batch_size,
            manual_optimization=manual_optimization,
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm,
        )
        self.save_hyperparameters()
        # A list keeps the saved hyper-parameters plain YAML (tuples would need a Python tag).
        self.hparams["hidden_dims"] = hidden_dims
        self.automatic_optimization = not manual_optimization

        if not manual_optimization and micro_batch_size is not None:
            rank_zero_warn(
                f"`MLPClassifier(micro_batch_size={micro_batch_size})` is ignored in automatic optimisation;"
                " use `Trainer(accumulate_grad_batches=...)` or `manual_optimization=True`."
            )

        out_dim = num_classes if task == "classification" else 1
        layers: list[nn.Module] = []
        width = input_dim
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.example_input_array = torch.zeros(2, input_dim)

    @property
    def is_classification(self) -> bool:
        """Whether the model solves a classification task (otherwise regression)."""
        return self.hparams.task == "classification"

    @override
    def forward(self, x: Tensor) -> Tensor:
        """Return the logits (classification) or the predictions (regression, shape ``(N,)``).

        Args:
            x: Inputs of shape ``(N, ...)``; everything after the first dimension is flattened.

        """
        out = self.net(x.flatten(1).to(self.dtype))
        return out if self.is_classification else out.squeeze(-1)

    @override
    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        """Compute the training loss; in manual optimisation also back-propagate and step the optimiser.

        Args:
            batch: A ``(x, y)`` pair.
            batch_idx: Index of the batch in the epoch.

        Returns:
            The whole-batch loss in automatic optimisation, ``None`` in manual optimisation.

        """
        x, y = batch
        if self.automatic_optimization:
            loss = self._loss(self(x), y)
            self._log_train_loss(loss, x.shape[0])
            return loss

        rows = x.shape[0]
        chunk = self.hparams.micro_batch_size or rows
        micro_batches = list(zip(x.split(chunk), y.split(chunk), strict=True))
        total = torch.zeros((), device=self.device)
        for index, (micro_x, micro_y) in enumerate(micro_batches):
            # The micro mean loss weighted by its share of rows makes the summed gradient equal the
            # whole-batch mean-loss gradient, whatever the split.
            loss = self._loss(self(micro_x), micro_y) * (micro_x.shape[0] / rows)
            # Gradients are only synchronised across processes on the last micro-batch.
            sync = index == len(micro_batches) - 1
            with contextlib.nullcontext() if sync else self._no_backward_sync():
                self.manual_backward(loss)
            total += loss.detach()

        optimizers = self._optimizers_list()
        for optimizer in optimizers:
            if self.hparams.gradient_clip_val is not None:
                self.clip_gradients(
                    optimizer,
                    gradient_clip_val=self.hparams.gradient_clip_val,
                    gradient_clip_algorithm=self.hparams.gradient_clip_algorithm,
                )
            optimizer.step()
        for optimizer in optimizers:
            optimizer.zero_grad()

        self._step_lr_schedulers("step", batch_idx + 1)
        self._log_train_loss(total, rows)
        return None

    @override
    def on_train_epoch_end(self) -> None:
        """Step the per-epoch learning-rate schedulers in manual optimisation."""
        if not self.automatic_optimization:
            self._step_lr_schedulers("epoch", self.current_epoch + 1)

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log ``val/loss`` and ``val/acc`` (classification) or ``val/mae`` (regression).

        Args:
            batch: A ``(x, y)`` pair.
            batch_idx: Index of the batch.

        """
        self._evaluate(batch, "val")

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Log ``test/loss`` and ``test/acc`` (classification) or ``test/mae`` (regression).

        Args:
            batch: A ``(x, y)`` pair.
            batch_idx: Index of the batch.

        """
        self._evaluate(batch, "test")

    @override
    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Return class probabilities (classification) or predictions (regression).

        Args:
            batch: A ``(x, y)`` pair or the inputs alone.
            batch_idx: Index of the batch.
            dataloader_idx: Index of the dataloader.

        """
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        out = self(x)
        return out.softmax(dim=-1) if self.is_classification else out

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Return an AdamW optimiser with the model's ``lr`` and ``weight_decay``."""
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        if self.is_classification:
            return F.cross_entropy(out, y.long())
        return F.mse_loss(out, y.to(out.dtype).reshape(out.shape))

    def _evaluate(self, batch: Any, stage: str) -> None:
        x, y = batch
        out = self(x)
        rows = x.shape[0]
        self.log(f"{stage}/loss", self._loss(out, y), on_epoch=True, batch_size=rows, sync_dist=True)
        if self.is_classification:
            acc = (out.argmax(dim=-1) == y).float().mean()
            self.log(
                f"{stage}/acc", acc, on_epoch=True, prog_bar=stage == "val", batch_size=rows, sync_dist=True
            )
        else:
            mae = (out - y.to(out.dtype).reshape(out.shape)).abs().mean()
            self.log(f"{stage}/mae", mae, on_epoch=True, batch_size=rows, sync_dist=True)

    def _log_train_loss(self, loss: Tensor, rows: int) -> None:
        # Per-step value of this process only: a cross-process reduction every step would cost a collective.
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=rows)

    def _optimizers_list(self) -> list[Any]:
        optimizers = self.optimizers()
        return list(optimizers) if isinstance(optimizers, (list, tuple)) else [optimizers]

    @contextlib.contextmanager
    def _no_backward_sync(self) -> Iterator[None]:
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        with block() if block is not None else contextlib.nullcontext():
            yield

    def _step_lr_schedulers(self, interval: str, index: int) -> None:
        """Step the schedulers of this ``interval`` every ``frequency`` steps or epochs, as Lightning does."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval or index % config.frequency != 0:
                continue
            metric = None
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                # Lightning drops the ``monitor`` key of scheduler dicts in manual optimisation; the CLI's
                # ``ReduceLROnPlateau`` keeps it on the scheduler itself.
                monitor = (
                    config.monitor or getattr(config.scheduler, "monitor", None) or _DEFAULT_PLATEAU_MONITOR
                )
                metric = self.trainer.callback_metrics.get(monitor)
                if metric is None:
                    rank_zero_warn(
                        f"ReduceLROnPlateau monitors {monitor!r}, which has not been logged;"
                        " skipping the learning-rate update. Logged metrics:"
                        f" {sorted(self.trainer.callback_metrics)}.",
                        category=RuntimeWarning,
                    )
                    continue
            self.lr_scheduler_step(config.scheduler, metric)


def _validate_args(
    *,
    input_dim: int,
    hidden_dims: list[int],
    num_classes: int,
    task: str,
    dropout: float,
    lr: float,
    weight_decay: float,
    micro_batch_size: int | None,
    manual_optimization: bool,
    gradient_clip_val: float | None,
    gradient_clip_algorithm: str,
) -> None:
    if not _is_positive_int(input_dim):
        raise ValueError(f"`input_dim` must be a positive integer, got {input_dim!r}.")
    if not all(width > 0 for width in hidden_dims):
        raise ValueError(f"`hidden_dims` must be positive integers, got {hidden_dims!r}.")
    if task not in _TASKS:
        raise ValueError(f"`task` must be one of {_TASKS}, got {task!r}.")
    if task == "classification" and not (_is_positive_int(num_classes) and num_classes >= 2):
        raise ValueError(f"`num_classes` must be an integer >= 2 for classification, got {num_classes!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}.")
    if lr <= 0:
        raise ValueError(f"`lr` must be positive, got {lr!r}.")
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be non-negative, got {weight_decay!r}.")
    if micro_batch_size is not None and not _is_positive_int(micro_batch_size):
        raise ValueError(
            f"`micro_batch_size` must be a positive integer or None (whole batch), got {micro_batch_size!r}."
        )
    if gradient_clip_algorithm not in _CLIP_ALGORITHMS:
        raise ValueError(
            f"`gradient_clip_algorithm` must be one of {_CLIP_ALGORITHMS}, got {gradient_clip_algorithm!r}."
        )
    if gradient_clip_val is not None:
        if not manual_optimization:
            raise ValueError(
                "`MLPClassifier(gradient_clip_val=...)` applies to manual optimisation only;"
                " with `manual_optimization=False` set `trainer.gradient_clip_val` instead."
            )
        if gradient_clip_val <= 0:
            raise ValueError(f"`gradient_clip_val` must be positive or None, got {gradient_clip_val!r}.")


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
