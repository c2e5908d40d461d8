"""Train the digits MLP with a plain Lightning script configured by a flat OmegaConf YAML file.

This is the kind of script a project has before it adopts enhtrain: it builds the model, the data, the
loggers and the callbacks by hand from one YAML file.

Usage::

    python examples/train_script.py [--config examples/legacy.yaml] [key=value ...]

Each ``key=value`` override is a dotted OmegaConf path, e.g. ``trainer.max_epochs=2`` or
``logging.csv_dir=/tmp/run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from enhtrain.data import DatasetDataModule
from enhtrain.models import MLPClassifier

DEFAULT_CONFIG = Path(__file__).with_name("legacy.yaml")


def load_config(config: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """Load the YAML file, apply the dotted overrides and resolve the interpolations.

    Args:
        config: Path of the YAML file.
        overrides: ``key=value`` strings.

    Returns:
        The resolved configuration as plain containers.

    """
    cfg = OmegaConf.merge(OmegaConf.load(config), OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def train(cfg: dict[str, Any]) -> pl.Trainer:
    """Build the model, data, logger and callbacks from ``cfg`` and fit.

    Args:
        cfg: A resolved configuration with ``model``, ``data``, ``trainer``, ``logging`` and ``callbacks``.

    Returns:
        The trainer after fitting.

    """
    pl.seed_everything(cfg.get("seed", 42), workers=True)
    datamodule = DatasetDataModule(**cfg["data"])
    model = MLPClassifier(**cfg["model"])

    logging = cfg["logging"]
    logger = CSVLogger(save_dir=logging["csv_dir"], name=logging.get("name", "lightning_logs"))
    callbacks = cfg["callbacks"]
    trainer = pl.Trainer(
        **cfg["trainer"],
        logger=logger,
        callbacks=[
            ModelCheckpoint(**callbacks["checkpoint"]),
            EarlyStopping(**callbacks["early_stopping"]),
            LearningRateMonitor(**callbacks["lr_monitor"]),
        ],
    )
    trainer.fit(model, datamodule=datamodule)
    return trainer


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, train, and print the best checkpoint and the final validation accuracy.

    Args:
        argv: Command-line arguments; ``None`` reads ``sys.argv``.

    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)"
    )
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. trainer.max_epochs=2")
    args = parser.parse_args(argv)

    trainer = train(load_config(args.config, args.overrides))
    val_acc = trainer.callback_metrics.get("val/acc")
    print(f"best checkpoint: {trainer.checkpoint_callback.best_model_path}")
    print(f"final val/acc: {float(val_acc):.4f}" if val_acc is not None else "final val/acc: n/a")


if __name__ == "__main__":
    main()
