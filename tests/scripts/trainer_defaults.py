"""Subcommands, with callbacks and ``logger: False`` in ``trainer_defaults`` (a progress bar among them)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.cli import LightningCLI

from scripts._parts import TinyData, TinyModel


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""
    return cli_class(
        TinyModel,
        TinyData,
        trainer_defaults={
            "callbacks": [TQDMProgressBar(refresh_rate=1), ModelCheckpoint(save_last=True, monitor="val_loss")],
            "logger": False,
        },
        args=args,
    )
