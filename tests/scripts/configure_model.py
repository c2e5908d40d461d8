"""A model that builds its layers in ``configure_model``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI

from scripts._parts import LazyModel, TinyData


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""
    return cli_class(LazyModel, TinyData, args=args)
