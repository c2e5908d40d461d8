"""One ``ModelCheckpoint`` object for every run of the process, as a notebook cell that runs twice has."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from scripts._parts import TinyData, TinyModel

CHECKPOINT = ModelCheckpoint(save_last=True)


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""
    return cli_class(TinyModel, TinyData, trainer_defaults={"callbacks": [CHECKPOINT]}, args=args)
