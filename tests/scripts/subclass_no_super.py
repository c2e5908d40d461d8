"""A ``LightningCLI`` subclass whose ``add_arguments_to_parser`` does not call ``super()``: it links
arguments and adds a callback's arguments with ``add_lightning_class_args``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from scripts._parts import TinyData, TinyModel


def make_cli(cli_class: type[LightningCLI], call_super: bool) -> type[LightningCLI]:
    """The script's CLI class on top of ``cli_class``."""

    class ScriptCLI(cli_class):  # type: ignore[misc, valid-type]
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            if call_super:
                super().add_arguments_to_parser(parser)
            parser.link_arguments("data.size", "model.in_features")
            parser.add_lightning_class_args(EarlyStopping, "early_stopping")
            parser.set_defaults({"early_stopping.monitor": "val_loss", "early_stopping.patience": 5})

    return ScriptCLI


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""
    return make_cli(cli_class, call_super=False)(TinyModel, TinyData, args=args)
