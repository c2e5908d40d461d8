"""Tests of the reference LightningModule, MLPClassifier."""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import ReduceLROnPlateau
from torch.utils.data import DataLoader, TensorDataset

from enhtrain.models import MLPClassifier

BATCH, FEATURES, CLASSES = 10, 6, 3


class _GradCapture(pl.Callback):
    """Record the gradients the optimiser is about to apply, after any clipping."""

    def __init__(self) -> None:
        self.grads: list[dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        self.grads.append({name: p.grad.detach().clone() for name, p in pl_module.named_parameters()})


class _SGDModel(MLPClassifier):
    """Plain SGD: the one-step update reveals the gradient exactly."""

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class _SchedulerModel(MLPClassifier):
    """An optimiser with a configurable scheduler, recording every scheduler step."""

    def __init__(self, scheduler_factory: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scheduler_factory = scheduler_factory
        self.scheduler_calls: list[Any] = []

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        self.scheduler_calls.append(metric)
        super().lr_scheduler_step(scheduler, metric)


def _data(rows: int = BATCH, regression: bool = False, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, FEATURES, generator=generator)
    y = (
        torch.randn(rows, generator=generator)
        if regression
        else torch.randint(0, CLASSES, (rows,), generator=generator)
    )
    return TensorDataset(x, y)


def _trainer(**kwargs: Any) -> pl.Trainer:
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**defaults, **kwargs})


def _model(cls: type[MLPClassifier] = MLPClassifier, **kwargs: Any) -> MLPClassifier:
    torch.manual_seed(0)
    return cls(input_dim=FEATURES, hidden_dims=[16, 8], num_classes=CLASSES, **kwargs)


def _reference_grads(model: MLPClassifier, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def _count_backward_calls(model: MLPClassifier) -> list[int]:
    calls: list[int] = []
    original = model.manual_backward

    def counting(loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        original(loss, *args, **kwargs)

    model.manual_backward = counting  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize(
    ("micro_batch_size", "expected_micro_batches"),
    [(None, 1), (BATCH, 1), (5, 2), (4, 3)],
    ids=["whole-batch", "one-micro-batch", "two-equal", "uneven-4-4-2"],
)
def test_micro_batched_step_matches_whole_batch(
    micro_batch_size: int | None, expected_micro_batches: int
) -> None:
    data = _data()
    x, y = data.tensors
    model = _model(_SGDModel, lr=0.1, micro_batch_size=micro_batch_size)
    reference = copy.deepcopy(model)
    calls = _count_backward_calls(model)
    capture = _GradCapture()

    _trainer(max_steps=1, callbacks=[capture]).fit(model, DataLoader(data, batch_size=BATCH))

    assert len(calls) == expected_micro_batches
    assert len(capture.grads) == 1
    expected_grads = _reference_grads(reference, x, y)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(capture.grads[0][name], grad, rtol=1e-5, atol=1e-7, msg=name)
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.1 * p.grad
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("micro_batch_size", [None, 3])
def test_micro_batched_adamw_step_matches_plain_torch(micro_batch_size: int | None) -> None:
    data = _data()
    x, y = data.tensors
    model = _model(lr=0.01, weight_decay=0.1, micro_batch_size=micro_batch_size)
    reference = copy.deepcopy(model)

    _trainer(max_steps=1).fit(model, DataLoader(data, batch_size=BATCH))

    optimizer = torch.optim.AdamW(reference.parameters(), lr=0.01, weight_decay=0.1)
    _reference_grads(reference, x, y)
    optimizer.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_logged_train_loss_is_whole_batch_mean() -> None:
    data = _data()
    model = _model(micro_batch_size=4)
    reference = copy.deepcopy(model)
    trainer = _trainer(max_steps=1)
    trainer.fit(model, DataLoader(data, batch_size=BATCH))

    expected = F.cross_entropy(reference(data.tensors[0]), data.tensors[1])
    torch.testing.assert_close(trainer.callback_metrics["train/loss"], expected.detach())


@pytest.mark.parametrize(("algorithm", "clip_val"), [("norm", 0.05), ("value", 0.01)])
def test_manual_gradient_clipping(algorithm: str, clip_val: float) -> None:
    data = _data()
    x, y = data.tensors
    model = _model(
        _SGDModel, micro_batch_size=4, gradient_clip_val=clip_val, gradient_clip_algorithm=algorithm
    )
    reference = copy.deepcopy(model)
    capture = _GradCapture()

    _trainer(max_steps=1, callbacks=[capture]).fit(model, DataLoader(data, batch_size=BATCH))

    expected = _reference_grads(reference, x, y)
    if algorithm == "norm":
        total_norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), clip_val)
        assert total_norm > clip_val, "the test must exercise clipping"
    else:
        assert max(g.abs().max() for g in expected.values()) > clip_val, "the test must exercise clipping"
        torch.nn.utils.clip_grad_value_(reference.parameters(), clip_val)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(capture.grads[0][name], p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_epoch_scheduler_is_stepped_in_manual_mode() -> None:
    model = _model(
        _SchedulerModel,
        lr=0.1,
        micro_batch_size=4,
        scheduler_factory=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
    )
    trainer = _trainer(max_epochs=3)
    trainer.fit(model, DataLoader(_data(rows=20), batch_size=BATCH))

    assert len(model.scheduler_calls) == 3
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)


def test_step_scheduler_honours_interval_and_frequency() -> None:
    model = _model(
        _SchedulerModel,
        lr=0.1,
        scheduler_factory=lambda opt: {
            "scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
            "interval": "step",
            "frequency": 2,
        },
    )
    trainer = _trainer(max_epochs=2)
    # Four batches per epoch and a step every second batch: four scheduler steps in two epochs.
    trainer.fit(model, DataLoader(_data(rows=40), batch_size=BATCH))

    assert len(model.scheduler_calls) == 4
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**4)


def test_plateau_scheduler_receives_monitored_metric() -> None:
    model = _model(
        _SchedulerModel,
        lr=0.1,
        scheduler_factory=lambda opt: ReduceLROnPlateau(opt, monitor="val/acc", mode="max", patience=0),
    )
    trainer = _trainer(max_epochs=2, limit_val_batches=1)
    loader = DataLoader(_data(rows=20), batch_size=BATCH)
    trainer.fit(model, loader, loader)

    assert len(model.scheduler_calls) == 2
    assert all(isinstance(metric, torch.Tensor) for metric in model.scheduler_calls)
    assert model.scheduler_calls[-1] == trainer.callback_metrics["val/acc"]


def test_no_scheduler_is_fine() -> None:
    model = _model(micro_batch_size=4)
    trainer = _trainer(max_epochs=2)
    trainer.fit(model, DataLoader(_data(rows=20), batch_size=BATCH))
    assert model.lr_schedulers() is None
    assert trainer.global_step == 4


def test_automatic_optimization_trains_and_logs() -> None:
    data = _data(rows=40)
    model = _model(manual_optimization=False, lr=0.05)
    assert model.automatic_optimization
    trainer = _trainer(max_epochs=5, gradient_clip_val=1.0, accumulate_grad_batches=2)
    loader = DataLoader(data, batch_size=BATCH)
    before = trainer.validate(model, loader, verbose=False)[0]["val/loss"]
    trainer.fit(model, loader, loader)

    assert trainer.global_step == 10
    assert {"train/loss", "val/loss", "val/acc"} <= set(trainer.callback_metrics)
    assert trainer.callback_metrics["val/loss"] < before


def test_automatic_optimization_warns_about_micro_batch_size() -> None:
    with pytest.warns(UserWarning, match="micro_batch_size"):
        _model(manual_optimization=False, micro_batch_size=4)


def test_gradient_clip_val_in_automatic_mode_raises() -> None:
    with pytest.raises(ValueError, match=r"trainer\.gradient_clip_val"):
        _model(manual_optimization=False, gradient_clip_val=1.0)


def test_regression_trains() -> None:
    data = _data(rows=40, regression=True)
    model = _model(task="regression", micro_batch_size=3, lr=0.01)
    trainer = _trainer(max_epochs=3)
    loader = DataLoader(data, batch_size=BATCH)
    before = trainer.validate(model, loader, verbose=False)[0]
    trainer.fit(model, loader, loader)
    after = trainer.callback_metrics

    assert set(before) == {"val/loss", "val/mae"}
    assert after["val/loss"] < before["val/loss"]
    predictions = torch.cat(trainer.predict(model, loader))
    assert predictions.shape == (40,)
    assert predictions.dtype == torch.float32


def test_predict_returns_probabilities_and_test_logs_metrics() -> None:
    data = _data(rows=20)
    model = _model()
    trainer = _trainer()
    probabilities = torch.cat(trainer.predict(model, DataLoader(data, batch_size=BATCH)))
    assert probabilities.shape == (20, CLASSES)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(20))
    assert set(trainer.test(model, DataLoader(data, batch_size=BATCH), verbose=False)[0]) == {
        "test/loss",
        "test/acc",
    }


def test_forward_flattens_images() -> None:
    model = MLPClassifier(input_dim=64)
    assert model(torch.rand(5, 8, 8)).shape == (5, 10)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4"])
def test_bad_micro_batch_size_raises(bad: Any) -> None:
    with pytest.raises(ValueError, match="micro_batch_size"):
        MLPClassifier(micro_batch_size=bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "ranking"}, "task"),
        ({"num_classes": 1}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"gradient_clip_algorithm": "l1"}, "gradient_clip_algorithm"),
        ({"gradient_clip_val": 0.0}, "gradient_clip_val"),
        ({"hidden_dims": [8, 0]}, "hidden_dims"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**kwargs)


def test_hyperparameters_are_saved_as_plain_values() -> None:
    model = MLPClassifier(hidden_dims=(32,), micro_batch_size=8)
    assert model.hparams.hidden_dims == [32]
    assert model.hparams.micro_batch_size == 8
    assert not model.automatic_optimization
