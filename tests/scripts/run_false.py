"""``run=False``: the script calls ``trainer.fit`` and ``trainer.test`` itself."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI

from scripts._parts import TinyData, TinyModel


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build the CLI, then fit and test."""
    cli = cli_class(TinyModel, TinyData, run=False, args=args)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.test_results = cli.trainer.test(cli.model, datamodule=cli.datamodule)
    return cli
