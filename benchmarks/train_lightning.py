"""Variants 2 and 4, and the monitoring-callback pair: the model trained by a ``Trainer`` built in a script.

``python -m benchmarks.train_lightning VARIANT SPEC.json OUT.json`` where ``VARIANT`` is one of:

- ``bare``: no logger, no checkpointing, no progress bar.
- ``same_components``: the loggers and callbacks ``python -m enhtrain fit`` turns on by default, built by hand:
  Lightning's ``CSVLogger`` and ``TensorBoardLogger``, enhtrain's ``StepThroughput``, ``RunSummary`` and
  ``PlainProgressBar`` (its progress output when stdout is not a terminal), and a ``ModelCheckpoint`` with
  enhtrain's default settings (newest checkpoint plus ``last.ckpt``).
- ``csv_tb``: CSV and TensorBoard loggers only (no checkpointing, no progress bar).
- ``csv_tb_monitors``: ``csv_tb`` plus enhtrain's ``StepThroughput`` and ``MemoryMonitor`` callbacks.
"""

from __future__ import annotations

import json
import sys
from typing import Any

VARIANTS = ("bare", "same_components", "csv_tb", "csv_tb_monitors")


def build_trainer(variant: str, spec: dict[str, Any], output: str) -> Any:
    """Build the ``Trainer`` of a variant, with the step timer first among its callbacks.

    Args:
        variant: One of :data:`VARIANTS`.
        spec: The run's description (see :mod:`benchmarks.training`).
        output: The JSON file of the step record.
    """
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from benchmarks.timing import StepTimer

    timer = StepTimer(
        output,
        warmup=spec["warmup"],
        track_memory=spec.get("track_memory", False),
        count_from=spec.get("count_from"),
        count_steps=spec.get("count_steps", 0),
    )
    kwargs: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": spec["max_steps"],
        "max_epochs": 1,
        **spec.get("trainer", {}),
    }
    callbacks: list[Any] = [timer]
    if variant == "bare":
        kwargs.update(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    elif variant in ("csv_tb", "csv_tb_monitors", "same_components"):
        loggers = [
            CSVLogger(save_dir="logs", name="csv", version=0),
            TensorBoardLogger(save_dir="logs", name="tensorboard", version=0),
        ]
        kwargs["logger"] = loggers
        if variant == "same_components":
            from enhtrain.callbacks.progress import PlainProgressBar
            from enhtrain.callbacks.run_summary import RunSummary
            from enhtrain.callbacks.throughput import StepThroughput

            callbacks += [
                StepThroughput(),
                RunSummary(),
                PlainProgressBar(),
                ModelCheckpoint(
                    dirpath="checkpoints",
                    filename="epoch={epoch}-step={step}",
                    save_top_k=1,
                    save_last=True,
                    auto_insert_metric_name=False,
                ),
            ]
        else:
            kwargs.update(enable_checkpointing=False, enable_progress_bar=False)
            if variant == "csv_tb_monitors":
                from enhtrain.callbacks.memory import MemoryMonitor
                from enhtrain.callbacks.throughput import StepThroughput

                callbacks += [StepThroughput(), MemoryMonitor()]
    else:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return Trainer(callbacks=callbacks, **kwargs)


def train(variant: str, spec: dict[str, Any], output: str) -> None:
    """Seed, build the model and data, and fit.

    Args:
        variant: One of :data:`VARIANTS`.
        spec: The run's description.
        output: The JSON file of the step record.
    """
    from lightning.pytorch import seed_everything

    from enhtrain.data import DatasetDataModule
    from enhtrain.models import MLPClassifier

    seed_everything(spec["seed"])
    model = MLPClassifier(**spec["model"])
    data = DatasetDataModule(**spec["data"])
    trainer = build_trainer(variant, spec, output)
    trainer.fit(model, datamodule=data)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``VARIANT SPEC.json OUT.json``."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    train(args[0], spec, args[2])


if __name__ == "__main__":
    main()
