"""Tests of enhtrain's callbacks with real Lightning ``Trainer`` runs on CPU."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from enhtrain.callbacks import GradNormMonitor, MemoryMonitor, NaNGuard, RunSummary, StepThroughput
from enhtrain.callbacks.throughput import _infer_batch_size
from enhtrain.models import MLPClassifier

IN_DIM = 6
BATCH = 8
N_SAMPLES = 64
THROUGHPUT_KEYS = ("train/samples_per_sec", "train/steps_per_sec", "train/step_time", "train/data_time_share")
LAYER_NAMES = ("net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias")


class AutoModule(pl.LightningModule):
    """A binary classifier with automatic optimisation; can poison the loss or gradients at one step."""

    def __init__(
        self,
        lr: float = 0.1,
        optimizer: str = "sgd",
        nan_at_step: int | None = None,
        nan_kind: str = "loss_and_grads",
        use_manual_backward: bool = True,
        return_loss: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(IN_DIM, 8), nn.Tanh(), nn.Linear(8, 1))

    def loss_fn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.net(x).squeeze(-1), y.float())

    def poison(self, loss: torch.Tensor) -> torch.Tensor:
        if self.global_step != self.hparams.nan_at_step:
            return loss
        if self.hparams.nan_kind == "loss_and_grads":
            return loss * float("nan")
        if self.hparams.nan_kind == "loss":
            # The gradient of ``loss + c`` does not depend on ``c``: only the loss is non-finite.
            return loss + float("nan")
        return loss

    def on_after_backward(self) -> None:
        if self.hparams.nan_kind == "grads" and self.global_step == self.hparams.nan_at_step:
            self.net[0].weight.grad[0, 0] = float("inf")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.poison(self.loss_fn(x, y))
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x).squeeze(-1)
        self.log("val/loss", F.binary_cross_entropy_with_logits(logits, y.float()))
        self.log("val/acc", ((logits > 0).float() == y.float()).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class ManualModule(AutoModule):
    """The same classifier with manual optimisation: two micro-batches, one optimizer step per batch."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        opt = self.optimizers()
        x, y = batch
        total = torch.zeros(())
        for micro_x, micro_y in zip(x.chunk(2), y.chunk(2), strict=True):
            loss = self.poison(self.loss_fn(micro_x, micro_y) / 2)
            if self.hparams.use_manual_backward:
                self.manual_backward(loss)
            else:
                loss.backward()
            total += loss.detach()
        opt.step()
        opt.zero_grad()
        self.log("train/loss", total)
        return total if self.hparams.return_loss else None


class Recorder(Callback):
    """Snapshots the weights and the batch at the start of every training batch, keyed by global step."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.batches: dict[int, list[torch.Tensor]] = {}
        self.accumulated: dict[int, list[list[torch.Tensor]]] = {}
        self.final: dict[str, torch.Tensor] = {}

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.weights[trainer.global_step] = _weights(pl_module)
        self.batches[trainer.global_step] = [t.clone() for t in batch]
        self.accumulated.setdefault(trainer.global_step, []).append(self.batches[trainer.global_step])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.final = _weights(pl_module)


class SlowDataset(Dataset):
    """Wraps a dataset and sleeps on every item, to make the loader the bottleneck."""

    def __init__(self, data: Dataset, delay: float) -> None:
        self.data = data
        self.delay = delay

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        time.sleep(self.delay)
        return self.data[index]


MODULES = pytest.mark.parametrize("module_cls", [AutoModule, ManualModule], ids=["auto", "manual"])


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _dataset(n: int = N_SAMPLES, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN_DIM, generator=generator)
    return TensorDataset(x, (x.sum(dim=1) > 0).float())


def _fit(
    module: pl.LightningModule,
    tmp_path: Path,
    callbacks: list[Callback],
    max_steps: int = 6,
    train_data: Dataset | None = None,
    val_data: Dataset | None = None,
    **trainer_kwargs: Any,
) -> pl.Trainer:
    trainer_kwargs.setdefault("enable_checkpointing", False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=CSVLogger(tmp_path, name="logs", version=0),
        callbacks=callbacks,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        limit_val_batches=2 if val_data is not None else 0,
        **trainer_kwargs,
    )
    train_loader = DataLoader(train_data if train_data is not None else _dataset(), batch_size=BATCH)
    val_loader = DataLoader(val_data, batch_size=BATCH) if val_data is not None else None
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    return trainer


def _metrics(trainer: pl.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _series(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    return {int(row["step"]): float(row[key]) for row in rows if row.get(key)}


# --------------------------------------------------------------------------------------------- throughput


@MODULES
def test_throughput_logs_positive_rates_every_step(module_cls: type[AutoModule], tmp_path: Path) -> None:
    trainer = _fit(module_cls(), tmp_path, [StepThroughput()])
    rows = _metrics(trainer)
    series = {key: _series(rows, key) for key in THROUGHPUT_KEYS}
    for key, values in series.items():
        assert sorted(values) == [1, 2, 3, 4, 5, 6], key
    for step in range(1, 7):
        assert series["train/samples_per_sec"][step] > 0
        assert series["train/steps_per_sec"][step] > 0
        assert series["train/step_time"][step] > 0
        assert 0.0 <= series["train/data_time_share"][step] <= 1.0
        # Samples per step is the inferred batch size.
        ratio = series["train/samples_per_sec"][step] / series["train/steps_per_sec"][step]
        assert ratio == pytest.approx(BATCH)


def test_throughput_own_interval_and_explicit_batch_size(tmp_path: Path) -> None:
    trainer = _fit(AutoModule(), tmp_path, [StepThroughput(log_every_n_steps=3, batch_size=5)])
    rows = _metrics(trainer)
    samples, steps = _series(rows, "train/samples_per_sec"), _series(rows, "train/steps_per_sec")
    assert sorted(samples) == sorted(steps) == [3, 6]
    assert all(samples[s] / steps[s] == pytest.approx(5) for s in samples)


def test_throughput_measures_data_wait(tmp_path: Path) -> None:
    slow = SlowDataset(_dataset(), delay=0.004)  # ~32 ms of loading per batch of 8, against ~1 ms of compute
    trainer = _fit(AutoModule(), tmp_path, [StepThroughput()], max_steps=4, train_data=slow)
    share = _series(_metrics(trainer), "train/data_time_share")
    # The first batch of an epoch has no previous batch to wait after; later ones are dominated by loading.
    assert all(share[step] > 0.5 for step in (2, 3, 4)), share


def test_throughput_leaves_validation_out_of_data_time(tmp_path: Path) -> None:
    class ValidationClock(Callback):
        def __init__(self) -> None:
            self.seconds = 0.0

        def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            self._start = time.perf_counter()

        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.global_step < 6:  # the validation after the last logged step is outside the window
                self.seconds += time.perf_counter() - self._start

    clock = ValidationClock()
    slow_val = SlowDataset(_dataset(16, seed=1), delay=0.01)  # ~160 ms per validation run
    trainer = _fit(
        AutoModule(),
        tmp_path,
        [StepThroughput(log_every_n_steps=6), clock],
        val_data=slow_val,
        val_check_interval=2,
    )
    rows = _metrics(trainer)
    (steps_per_sec,) = _series(rows, "train/steps_per_sec").values()
    # One window of six batches with two validation runs inside it: the window's time is the training's only.
    window_seconds = 6 / steps_per_sec
    assert clock.seconds > 0.3
    assert window_seconds < clock.seconds / 2
    assert 0.0 <= _series(rows, "train/data_time_share")[6] < 1.0


def test_infer_batch_size() -> None:
    x = torch.zeros(7, 3)
    assert _infer_batch_size(x) == 7
    assert _infer_batch_size((x, torch.zeros(7))) == 7
    assert _infer_batch_size([torch.tensor(1.0), x]) == 7
    assert _infer_batch_size({"meta": "a", "inputs": {"x": x}}) == 7
    assert _infer_batch_size(["no", "tensors"]) is None
    with pytest.raises(ValueError, match="batch_size"):
        StepThroughput(batch_size=0)


# ------------------------------------------------------------------------------------------------ memory


@MODULES
def test_memory_logs_rss(module_cls: type[AutoModule], tmp_path: Path) -> None:
    trainer = _fit(module_cls(), tmp_path, [MemoryMonitor(log_every_n_steps=2)])
    rows = _metrics(trainer)
    rss = _series(rows, "train/rss_mb")
    assert sorted(rss) == [2, 4, 6]
    # A Python process with torch loaded holds well over 10 MiB.
    assert all(value > 10 for value in rss.values())
    assert not any(key.startswith("train/cuda") for key in rows[0])


# --------------------------------------------------------------------------------------------- grad norm


def _reference_grads(module_cls: type[AutoModule], weights: dict, batch: list) -> dict[str, torch.Tensor]:
    """Gradients of the whole-batch loss at ``weights``, computed independently of the training run."""
    reference = module_cls()
    reference.load_state_dict(weights)
    x, y = batch
    reference.loss_fn(x, y).backward()
    return {name: p.grad for name, p in reference.named_parameters()}


@MODULES
def test_grad_norm_equals_norm_of_applied_gradients(module_cls: type[AutoModule], tmp_path: Path) -> None:
    recorder = Recorder()
    trainer = _fit(module_cls(), tmp_path, [GradNormMonitor(every_n_steps=1), recorder], max_steps=4)
    rows = _metrics(trainer)
    total = _series(rows, "train/grad_norm")
    assert sorted(total) == [1, 2, 3, 4]
    for step in range(4):
        grads = _reference_grads(module_cls, recorder.weights[step], recorder.batches[step])
        # For the manual module the norm is of the two accumulated micro-batches, i.e. the whole batch.
        expected = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads.values()])).item()
        assert total[step + 1] == pytest.approx(expected, rel=1e-5)
        for name in LAYER_NAMES:
            layer = _series(rows, f"train/grad_norm/{name}")
            assert layer[step + 1] == pytest.approx(grads[name].norm().item(), rel=1e-5)


@MODULES
def test_grad_norm_interval_no_layers_inf_norm(module_cls: type[AutoModule], tmp_path: Path) -> None:
    recorder = Recorder()
    callback = GradNormMonitor(every_n_steps=3, per_layer=False, norm_type=float("inf"))
    trainer = _fit(module_cls(), tmp_path, [callback, recorder])
    rows = _metrics(trainer)
    total = _series(rows, "train/grad_norm")
    assert sorted(total) == [3, 6]
    assert not any(key.startswith("train/grad_norm/") for key in rows[0])
    grads = _reference_grads(module_cls, recorder.weights[2], recorder.batches[2])
    expected = max(g.abs().max().item() for g in grads.values())
    assert total[3] == pytest.approx(expected, rel=1e-5)


def test_monitors_with_gradient_accumulation(tmp_path: Path) -> None:
    recorder = Recorder()
    callbacks = [GradNormMonitor(every_n_steps=1), StepThroughput(), MemoryMonitor(), recorder]
    trainer = _fit(AutoModule(), tmp_path, callbacks, max_steps=3, accumulate_grad_batches=2)
    rows = _metrics(trainer)
    # One row per optimizer step, not per batch.
    assert [int(row["step"]) for row in rows if row.get("train/steps_per_sec")] == [1, 2, 3]
    assert [int(row["step"]) for row in rows if row.get("train/rss_mb")] == [1, 2, 3]
    total = _series(rows, "train/grad_norm")
    for step in range(3):
        # Lightning scales each batch's loss by 1/2: the applied gradient is the mean over both batches.
        batches = recorder.accumulated[step]
        assert len(batches) == 2
        per_batch = [_reference_grads(AutoModule, recorder.weights[step], batch) for batch in batches]
        grads = [(a + b) / 2 for a, b in zip(*(g.values() for g in per_batch), strict=True)]
        expected = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item()
        assert total[step + 1] == pytest.approx(expected, rel=1e-5)


def test_grad_norm_validates_arguments() -> None:
    with pytest.raises(ValueError, match="every_n_steps"):
        GradNormMonitor(every_n_steps=0)
    with pytest.raises(ValueError, match="norm_type"):
        GradNormMonitor(norm_type=0)


# ---------------------------------------------------------------------------------------------- NaN guard


@MODULES
@pytest.mark.parametrize("nan_kind", ["loss_and_grads", "loss", "grads"])
def test_nan_guard_skip_leaves_weights_and_adam_state_unchanged(
    module_cls: type[AutoModule], nan_kind: str, tmp_path: Path
) -> None:
    recorder = Recorder()
    guard = NaNGuard(action="skip")
    module = module_cls(optimizer="adam", lr=0.05, nan_at_step=2, nan_kind=nan_kind)
    trainer = _fit(module, tmp_path, [guard, recorder])

    assert trainer.global_step == 6
    assert guard.skipped == 1
    assert _same(recorder.weights[2], recorder.weights[3])  # step 2 was a no-op ...
    assert not _same(recorder.weights[3], recorder.weights[4])  # ... and training went on
    assert all(torch.isfinite(w).all() for w in recorder.final.values())
    # Adam took five real steps: the skipped one did not advance its moments or step count.
    state = trainer.optimizers[0].state[module.net[0].weight]
    assert int(state["step"]) == 5
    assert _series(_metrics(trainer), "train/nan_skipped") == {3: 1.0}


@MODULES
def test_nan_guard_stop_saves_loadable_checkpoint(module_cls: type[AutoModule], tmp_path: Path) -> None:
    recorder = Recorder()
    module = module_cls(nan_at_step=2)
    trainer = _fit(module, tmp_path, [NaNGuard(action="stop"), recorder], enable_checkpointing=True)

    # Training ended with the batch of step 2 (whose update was dropped), not at max_steps.
    assert trainer.should_stop
    assert trainer.global_step == 3
    assert max(recorder.weights) == 2
    path = Path(trainer.checkpoint_callback.dirpath) / "nan-step=2.ckpt"
    assert path.is_file()
    loaded = module_cls.load_from_checkpoint(path)
    # The checkpoint holds the last finite weights, those that produced the non-finite loss.
    assert _same(_weights(loaded), recorder.weights[2])
    assert torch.load(path, weights_only=False)["global_step"] == 3


def test_nan_guard_stop_without_checkpoint_callback_uses_root_dir(tmp_path: Path) -> None:
    trainer = _fit(AutoModule(nan_at_step=1, nan_kind="grads"), tmp_path, [NaNGuard()])
    assert trainer.global_step == 2
    assert (tmp_path / "checkpoints" / "nan-step=1.ckpt").is_file()


@MODULES
def test_nan_guard_raise(module_cls: type[AutoModule], tmp_path: Path) -> None:
    with pytest.raises(FloatingPointError, match=r"non-finite loss.* at step 2\."):
        _fit(module_cls(nan_at_step=2), tmp_path, [NaNGuard(action="raise")])


def test_nan_guard_raise_names_non_finite_gradient(tmp_path: Path) -> None:
    module = ManualModule(nan_at_step=1, nan_kind="grads")
    with pytest.raises(
        FloatingPointError, match=r"^NaNGuard: non-finite gradients in net\.0\.weight at step 1\."
    ):
        _fit(module, tmp_path, [NaNGuard(action="raise")])


@pytest.mark.parametrize("return_loss", [True, False], ids=["returned", "logged"])
def test_nan_guard_sees_loss_not_passed_to_manual_backward(return_loss: bool, tmp_path: Path) -> None:
    # ``loss.backward()`` bypasses Lightning's hooks, and ``loss + nan`` leaves the gradients finite: only the
    # returned loss, or else the logged ``train/loss``, shows the problem.
    module = ManualModule(nan_at_step=2, nan_kind="loss", use_manual_backward=False, return_loss=return_loss)
    with pytest.raises(FloatingPointError, match=r"non-finite loss \(nan\) at step 2\."):
        _fit(module, tmp_path, [NaNGuard(action="raise")])


def test_nan_guard_checks_every_n_steps(tmp_path: Path) -> None:
    # Step 2 is not checked; its NaN update poisons the weights and the check at step 4 catches it.
    with pytest.raises(FloatingPointError, match=r"at step 4\."):
        _fit(AutoModule(nan_at_step=2), tmp_path, [NaNGuard(action="raise", check_every_n_steps=4)])


def test_nan_guard_validates_arguments() -> None:
    with pytest.raises(ValueError, match="action"):
        NaNGuard(action="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="check_every_n_steps"):
        NaNGuard(check_every_n_steps=0)


# -------------------------------------------------------------------------------------------- run summary


@MODULES
def test_run_summary_reports_best_metrics(
    module_cls: type[AutoModule], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary_cb = RunSummary()
    checkpoint = ModelCheckpoint(monitor="val/loss", mode="min", save_last=True)
    trainer = _fit(
        module_cls(lr=0.5),
        tmp_path,
        [summary_cb, checkpoint],
        max_steps=-1,
        max_epochs=4,
        limit_train_batches=3,
        val_data=_dataset(16, seed=1),
        enable_checkpointing=True,
    )
    out = capsys.readouterr().out
    rows = _metrics(trainer)
    val_loss, val_acc = _series(rows, "val/loss"), _series(rows, "val/acc")
    assert len(val_loss) == len(val_acc) == 4

    summary = summary_cb.summary
    json.dumps(summary, allow_nan=False)
    assert summary["status"] == "finished"
    assert summary["run_dir"] == str(tmp_path)
    assert summary["global_step"] == 12
    assert summary["epochs"] == 4
    assert summary["duration_s"] > 0
    loss = summary["metrics"]["val/loss"]
    assert loss["mode"] == "min"
    assert loss["best"] == pytest.approx(min(val_loss.values()), rel=1e-6)
    assert loss["final"] == pytest.approx(val_loss[max(val_loss)], rel=1e-6)
    acc = summary["metrics"]["val/acc"]
    assert acc["mode"] == "max"
    assert acc["best"] == pytest.approx(max(val_acc.values()), rel=1e-6)
    assert summary["monitor"] == "val/loss"
    assert summary["best_model_score"] == pytest.approx(loss["best"], rel=1e-6)
    assert summary["best_model_path"] == checkpoint.best_model_path
    assert Path(summary["last_model_path"]).name == "last.ckpt"

    assert "Run summary" in out
    assert "val/loss" in out and "val/acc" in out
    assert f"{loss['best']:.6g}" in out
    assert f"Run directory: {tmp_path}" in out
    assert f"Best checkpoint: {checkpoint.best_model_path}" in out
    assert all(len(line) <= 100 for line in out.splitlines() if not line.startswith(("Best", "Last", "Run")))


def test_run_summary_explicit_run_dir_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary_cb = RunSummary(run_dir="runs/demo/3", print_summary=False, modes={"val/acc": "min"})
    _fit(
        AutoModule(), tmp_path, [summary_cb], max_steps=4, val_data=_dataset(16, seed=1), val_check_interval=2
    )
    assert "Run summary" not in capsys.readouterr().out
    assert summary_cb.summary["run_dir"] == "runs/demo/3"
    assert summary_cb.summary["metrics"]["val/acc"]["mode"] == "min"
    assert summary_cb.summary["best_model_path"] is None


# ----------------------------------------------------------------------------- all together, reference model


# The reference model with manual optimisation and micro-batches of 3 rows, for a 2-class problem.
REFERENCE_KWARGS: dict[str, Any] = {
    "input_dim": IN_DIM,
    "hidden_dims": [8],
    "num_classes": 2,
    "micro_batch_size": 3,
    "manual_optimization": True,
    "lr": 0.05,
}


def _classification_dataset(n: int, seed: int, nan_rows: slice | None = None) -> TensorDataset:
    data = _dataset(n, seed)
    x, y = data.tensors
    if nan_rows is not None:
        x = x.clone()
        x[nan_rows] = float("nan")
    return TensorDataset(x, y.long())


def _full_batch_loss(module: pl.LightningModule, batch: list[torch.Tensor]) -> torch.Tensor:
    x, y = batch
    if isinstance(module, AutoModule):
        return module.loss_fn(x, y)
    return F.cross_entropy(module(x), y)


def test_all_callbacks_together_with_reference_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    callbacks = [
        StepThroughput(),
        MemoryMonitor(),
        GradNormMonitor(every_n_steps=1),
        NaNGuard(action="raise"),
        RunSummary(),
        recorder,
    ]
    trainer = _fit(
        MLPClassifier(**REFERENCE_KWARGS),
        tmp_path,
        callbacks,
        max_steps=4,
        train_data=_classification_dataset(N_SAMPLES, 0),
        val_data=_classification_dataset(16, 1),
        val_check_interval=2,
    )
    rows = _metrics(trainer)
    for key in (*THROUGHPUT_KEYS, "train/rss_mb", "train/grad_norm"):
        assert sorted(_series(rows, key)) == [1, 2, 3, 4], key

    # Micro-batches of 3, 3 and 2 rows: the logged norm is that of the whole-batch gradient.
    for step in range(4):
        reference = MLPClassifier(**REFERENCE_KWARGS)
        reference.load_state_dict(recorder.weights[step])
        _full_batch_loss(reference, recorder.batches[step]).backward()
        expected = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in reference.parameters()]))
        assert _series(rows, "train/grad_norm")[step + 1] == pytest.approx(expected.item(), rel=1e-5)

    summary = callbacks[4].summary
    assert summary["global_step"] == 4
    assert summary["metrics"]["val/loss"]["best"] == pytest.approx(min(_series(rows, "val/loss").values()))
    assert "Run summary" in capsys.readouterr().out


def test_nan_guard_skip_with_reference_model(tmp_path: Path) -> None:
    recorder = Recorder()
    guard = NaNGuard(action="skip")
    # Batch 2 (rows 16..23) holds NaN features: the model itself is untouched.
    train = _classification_dataset(N_SAMPLES, 0, nan_rows=slice(2 * BATCH, 3 * BATCH))
    trainer = _fit(MLPClassifier(**REFERENCE_KWARGS), tmp_path, [guard, recorder], max_steps=5, train_data=train)
    assert guard.skipped == 1
    assert trainer.global_step == 5
    assert _same(recorder.weights[2], recorder.weights[3])
    assert not _same(recorder.weights[3], recorder.weights[4])
    assert all(torch.isfinite(w).all() for w in recorder.final.values())
