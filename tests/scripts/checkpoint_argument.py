"""A subclass that adds a ``ModelCheckpoint``'s arguments with ``add_lightning_class_args``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from scripts._parts import TinyData, TinyModel


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""

    class ScriptCLI(cli_class):  # type: ignore[misc, valid-type]
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_lightning_class_args(ModelCheckpoint, "model_checkpoint")
            parser.set_defaults({"model_checkpoint.save_last": True, "model_checkpoint.every_n_train_steps": 1})

    return ScriptCLI(TinyModel, TinyData, args=args)
