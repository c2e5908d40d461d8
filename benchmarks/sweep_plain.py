"""The plain Optuna script that ``enhtrain sweep run`` replaces: every trial in this one process.

``python -m benchmarks.sweep_plain [--trials 8] [--epochs 2] [--out FILE]``

The search of ``configs/sweeps/lr.yaml`` (learning rate, width, batch size; TPE with seed 0, median pruner) on
``configs/quickstart.yaml``'s model and data (an MLP on scikit-learn's digits, ``seed_everything: 42``), each
trial a Lightning ``Trainer.fit`` with a pruning callback that reports ``val/acc`` after every validation.
Prints one JSON object: each trial's values, state and ``val/acc``, and the best trial.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import optuna

from enhtrain.data import DatasetDataModule
from enhtrain.models import MLPClassifier

WIDTHS = [[64], [128, 64], [256, 128]]
BATCHES = [32, 64, 128]


class _Pruning(pl.Callback):
    """Report ``val/acc`` after each validation; stop the trial when Optuna prunes it."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.step = 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/acc" not in trainer.callback_metrics:
            return
        self.trial.report(float(trainer.callback_metrics["val/acc"]), self.step)
        self.step += 1
        if self.trial.should_prune():
            raise optuna.TrialPruned()


def objective(trial: optuna.Trial, epochs: int) -> float:
    """Train one trial's config; return its final ``val/acc``."""
    lr = trial.suggest_float("model.init_args.lr", 1e-4, 1e-1, log=True)
    widths = json.loads(trial.suggest_categorical("model.init_args.hidden_dims", [json.dumps(w) for w in WIDTHS]))
    batch = trial.suggest_categorical("data.init_args.batch_size", BATCHES)
    pl.seed_everything(42, verbose=False)
    model = MLPClassifier(input_dim=64, hidden_dims=widths, num_classes=10, lr=lr, micro_batch_size=32)
    data = DatasetDataModule(dataset="digits", batch_size=batch, seed=42)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, log_every_n_steps=10, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[_Pruning(trial)])
    trainer.fit(model, datamodule=data)
    return float(trainer.callback_metrics["val/acc"])


def main(argv: list[str] | None = None) -> int:
    """Run the study and print its JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_plain", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.MedianPruner())
    study.optimize(lambda t: objective(t, args.epochs), n_trials=args.trials)
    trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
              for t in study.trials]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value) if complete else None
    result = {"trials": trials, "best": None if best is None else {"number": best.number, "value": best.value},
              "study_s": round(time.perf_counter() - start, 3)}
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
