"""As ``subclass_no_super``, with ``super().add_arguments_to_parser(parser)`` called first."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningCLI

from scripts._parts import TinyData, TinyModel
from scripts.subclass_no_super import make_cli


def main(args: Any, cli_class: type[LightningCLI] = LightningCLI) -> LightningCLI:
    """Build and run the CLI."""
    return make_cli(cli_class, call_super=True)(TinyModel, TinyData, args=args)
